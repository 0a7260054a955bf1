/**
 * The worker protocol's messages and frames (docs/protocol.md, version 1).
 *
 * A frame is one msgpack value: a JSON-RPC 2.0 message. `decodeFrame` checks every rule of the
 * contract and throws a `ProtocolError` carrying the JSON-RPC code the peer must be answered with;
 * `encodeMessage` writes the canonical bytes. The golden frames of `tests/fixtures/protocol` hold
 * both to the same bytes as the host and the Python SDK (`flowhost_worker.protocol`, which this
 * module mirrors rule for rule).
 *
 * Internal to the SDK's child-process runtime: the package does not export it.
 *
 * Why the msgpack is read and written here rather than by msgpackr (1.12): the protocol uses a
 * small subset (nil, booleans, integers, floats, str, bin, array, map) and needs exact control
 * that msgpackr's options do not give:
 * - encoding: msgpackr writes an integer above 2^32 as a float64 and a positive BigInt as int64,
 *   where the canonical form (and the golden `big_id` frame) is uint64 `0xcf`; its output has no
 *   hook to write those bytes differently.
 * - decoding: msgpackr replaces invalid UTF-8 with U+FFFD, decodes 0xC1 as a placeholder object,
 *   decodes its built-in extensions (timestamps as Date, fixext 0 as undefined), turns non-string
 *   map keys into strings, renames a `__proto__` key `__proto_`, and recurses without a depth
 *   limit. Refusing all of that means walking every byte of the frame first, which is the decoder.
 */

import { WorkerError } from './errors.js'
import { formatValue } from './format.js'

export const PROTOCOL_VERSION = 1
export const SUPPORTED_VERSIONS = Object.freeze([PROTOCOL_VERSION])
export const DEFAULT_MAX_FRAME = 8 * 1024 * 1024
/** Ids stay exact as JavaScript numbers: 0 ≤ id ≤ 2^53 - 1. */
export const MAX_ID = Number.MAX_SAFE_INTEGER
/** Arrays and maps nested deeper than this are refused (the Python msgpack reader's limit too). */
export const MAX_DEPTH = 1024

/** Every error code of docs/protocol.md. */
export const ErrorCode = Object.freeze({
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  VERSION_MISMATCH: -32001,
  HANDSHAKE_REQUIRED: -32002,
  NO_JOB_RUNNING: -32003,
  FRAME_TOO_LARGE: -32004,
  BUSY: -32005,
  STEP_FAILED: -32050,
  CANCELLED: -32051,
  STEP_TIMED_OUT: -32052,
  HANDLER_NOT_LOADABLE: -32053,
  ACTION_FAILED: -32054,
})

/**
 * A message, as `decodeFrame` returns it and `encodeMessage` takes it (build one with `request`,
 * `notification`, `result` or `errorResponse`). `kind` tells the four apart; the other fields are
 * the JSON-RPC keys of that kind. Maps with string keys are plain objects; `bin` values are
 * Uint8Arrays; integers beyond ±(2^53 - 1) are BigInts; a map with a non-string key is a `Map`.
 * Bytes and Maps are not JSON data: a receiver that expects JSON data refuses them (-32602).
 *
 * @typedef {Record<string, unknown>} Params
 * @typedef {{kind: 'request', id: number, method: string, params: Params}} Request
 * @typedef {{kind: 'notification', method: string, params: Params}} Notification
 * @typedef {{kind: 'result', id: number, result: unknown}} Result
 * @typedef {{code: number, message: string, data?: unknown}} ErrorObject
 *   `data` absent (never `null`) when there is none, as in the Python SDK.
 * @typedef {{kind: 'error', id: number | null, error: ErrorObject}} ErrorResponse
 *   `id` is `null` when the request's id could not be read.
 * @typedef {Request | Notification | Result | ErrorResponse} Message
 */

/**
 * A frame or call broke the protocol; `code` is what the peer is answered with. `id` is the
 * offending request's id when it could be read (else `null`): the error response carries it.
 */
export class ProtocolError extends WorkerError {
  /**
   * @param {number} code one of `ErrorCode`
   * @param {string} message never the frame's contents beyond a key's name
   * @param {{id?: number | null, data?: unknown}} [options]
   */
  constructor(code, message, { id = null, data } = {}) {
    super(message)
    /** The JSON-RPC error code. */
    this.code = code
    /** The request's id, or `null` if it could not be read. */
    this.id = id
    /** Extra data for the error response, if any. */
    this.data = data
  }

  /** @returns {ErrorResponse} the error response that answers the offending frame */
  toResponse() {
    return errorResponse(this.id, this.code, this.message, this.data)
  }
}

Object.defineProperty(ProtocolError.prototype, 'name', {
  value: 'ProtocolError',
  writable: true,
  configurable: true,
})

// ---------------------------------------------------------------------------------------------
// Building messages
// ---------------------------------------------------------------------------------------------

/**
 * @param {number} id
 * @param {string} method
 * @param {Params} [params]
 * @returns {Request}
 */
export function request(id, method, params = {}) {
  return { kind: 'request', id, method, params }
}

/**
 * @param {string} method
 * @param {Params} [params]
 * @returns {Notification}
 */
export function notification(method, params = {}) {
  return { kind: 'notification', method, params }
}

/**
 * @param {number} id the id of the request this answers
 * @param {unknown} value
 * @returns {Result}
 */
export function result(id, value) {
  return { kind: 'result', id, result: value }
}

/**
 * @param {number | null} id the id of the request this answers, `null` if it could not be read
 * @param {number} code one of `ErrorCode`
 * @param {string} message
 * @param {unknown} [data] left out of the message when `undefined` or `null`
 * @returns {ErrorResponse}
 */
export function errorResponse(id, code, message, data) {
  /** @type {ErrorObject} */
  const error = { code, message }
  if (data !== undefined && data !== null) error.data = data
  return { kind: 'error', id, error }
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/**
 * The message in `frame`; throws a `ProtocolError` with the code of the broken rule otherwise:
 * -32004 when the frame exceeds `maxFrame` (checked before reading it), -32700 when it is not
 * exactly one msgpack value of the protocol's types (truncated, trailing bytes, extension type,
 * invalid UTF-8, 0xC1, nested deeper than `MAX_DEPTH`), -32600 when the value is not a JSON-RPC
 * message of docs/protocol.md. Unknown keys are ignored; omitted `params` are `{}`.
 *
 * @param {Uint8Array} frame
 * @param {{maxFrame?: number}} [options] `maxFrame`: bytes, default `DEFAULT_MAX_FRAME`
 * @returns {Message}
 */
export function decodeFrame(frame, { maxFrame = DEFAULT_MAX_FRAME } = {}) {
  if (!(frame instanceof Uint8Array)) {
    throw new TypeError(`decodeFrame expects a Buffer or Uint8Array (got ${typeof frame})`)
  }
  if (frame.length > maxFrame) {
    throw new ProtocolError(
      ErrorCode.FRAME_TOO_LARGE,
      `frame of ${frame.length} bytes exceeds max_frame (${maxFrame})`,
    )
  }
  const reader = new FrameReader(frame)
  return toMessage(reader.readFrame(), reader.floatKeys)
}

// `ignoreBOM`: keep a leading U+FEFF, which is data, instead of stripping it.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** Reads one msgpack value of the protocol's subset, refusing anything else with -32700. */
class FrameReader {
  /** @param {Uint8Array} bytes */
  constructor(bytes) {
    this.bytes = bytes
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    this.position = 0
    this.depth = 0
    /** The type byte of the value read last (for a container: of its last element). */
    this.lastType = 0
    /**
     * For each decoded map, the keys whose values were floats on the wire: `1.0` reads as the
     * number 1, yet an `id` or `error.code` written as a float is not an integer.
     * @type {WeakMap<object, Set<string>>}
     */
    this.floatKeys = new WeakMap()
  }

  /** @returns {unknown} */
  readFrame() {
    if (this.bytes.length === 0) parseError('the frame is empty')
    const value = this.read()
    const trailing = this.bytes.length - this.position
    if (trailing > 0) parseError(`${trailing} trailing bytes after the value`)
    return value
  }

  /** @returns {unknown} */
  read() {
    const type = this.bytes[this.take(1)]
    this.lastType = type
    if (type <= 0x7f) return type
    if (type <= 0x8f) return this.map(type & 0x0f)
    if (type <= 0x9f) return this.array(type & 0x0f)
    if (type <= 0xbf) return this.string(type & 0x1f)
    if (type >= 0xe0) return type - 0x100
    const view = this.view
    switch (type) {
      case 0xc0: return null
      case 0xc2: return false
      case 0xc3: return true
      case 0xc4: return this.binary(this.bytes[this.take(1)])
      case 0xc5: return this.binary(view.getUint16(this.take(2)))
      case 0xc6: return this.binary(view.getUint32(this.take(4)))
      case 0xca: return view.getFloat32(this.take(4))
      case 0xcb: return view.getFloat64(this.take(8))
      case 0xcc: return this.bytes[this.take(1)]
      case 0xcd: return view.getUint16(this.take(2))
      case 0xce: return view.getUint32(this.take(4))
      case 0xcf: return exactInteger(view.getBigUint64(this.take(8)))
      case 0xd0: return view.getInt8(this.take(1))
      case 0xd1: return view.getInt16(this.take(2))
      case 0xd2: return view.getInt32(this.take(4))
      case 0xd3: return exactInteger(view.getBigInt64(this.take(8)))
      case 0xd9: return this.string(this.bytes[this.take(1)])
      case 0xda: return this.string(view.getUint16(this.take(2)))
      case 0xdb: return this.string(view.getUint32(this.take(4)))
      case 0xdc: return this.array(view.getUint16(this.take(2)))
      case 0xdd: return this.array(view.getUint32(this.take(4)))
      case 0xde: return this.map(view.getUint16(this.take(2)))
      case 0xdf: return this.map(view.getUint32(this.take(4)))
      case 0xc7: case 0xc8: case 0xc9: case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        return parseError(`extension types are not allowed (byte ${this.position - 1})`)
      default: // 0xc1
        return parseError(`byte 0x${hex(type)} at ${this.position - 1} is not a msgpack type`)
    }
  }

  /**
   * Advance over `length` bytes.
   * @param {number} length
   * @returns {number} where they start
   */
  take(length) {
    const start = this.position
    if (length > this.bytes.length - start) parseError('the frame ends inside a value')
    this.position = start + length
    return start
  }

  /** @param {number} length */
  string(length) {
    const start = this.take(length)
    if (length <= 32) {
      // Keys and most short strings are ASCII: cheaper to read than to call the UTF-8 decoder.
      let text = ''
      for (let index = start; index < start + length; index++) {
        const byte = this.bytes[index]
        if (byte >= 0x80) break
        text += String.fromCharCode(byte)
      }
      if (text.length === length) return text
    }
    try {
      return utf8.decode(this.bytes.subarray(start, start + length))
    } catch {
      return parseError(`the string at byte ${start} is not valid UTF-8`)
    }
  }

  /** @param {number} length */
  binary(length) {
    const start = this.take(length)
    return new Uint8Array(this.bytes.subarray(start, start + length)) // a copy: the frame is not kept
  }

  /** @param {number} count */
  array(count) {
    this.enter(count)
    const array = new Array(count)
    for (let index = 0; index < count; index++) array[index] = this.read()
    this.depth--
    return array
  }

  /**
   * A plain object when every key is a string (the last of duplicate keys wins, as in Python),
   * else a Map, so that no key is silently converted.
   * @param {number} count
   */
  map(count) {
    this.enter(2 * count)
    const entries = new Array(count)
    /** @type {Set<string> | undefined} */
    let floats
    let stringKeys = true
    for (let index = 0; index < count; index++) {
      const key = this.read()
      const value = this.read()
      if (typeof key !== 'string') stringKeys = false
      else if (this.lastType === 0xca || this.lastType === 0xcb) (floats ??= new Set()).add(key)
      entries[index] = [key, value]
    }
    this.depth--
    if (!stringKeys) return new Map(entries)
    /** @type {Record<string, unknown>} */
    const object = {}
    for (const [key, value] of entries) {
      // An own `__proto__` property, not a new prototype.
      if (key === '__proto__') Object.defineProperty(object, key, { value, writable: true, enumerable: true, configurable: true })
      else object[key] = value
    }
    if (floats) this.floatKeys.set(object, floats)
    return object
  }

  /**
   * Enter a container of `minimumBytes` (each element takes at least one byte), refusing a count
   * the frame cannot hold before allocating for it.
   * @param {number} minimumBytes
   */
  enter(minimumBytes) {
    if (minimumBytes > this.bytes.length - this.position) parseError('the frame ends inside a value')
    if (++this.depth > MAX_DEPTH) parseError(`arrays and maps nest deeper than ${MAX_DEPTH}`)
  }
}

/**
 * A 64-bit integer as a number when it is exact, else as a BigInt.
 * @param {bigint} value
 * @returns {number | bigint}
 */
function exactInteger(value) {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
    ? Number(value)
    : value
}

/**
 * @param {string} reason
 * @returns {never}
 */
function parseError(reason) {
  throw new ProtocolError(ErrorCode.PARSE_ERROR, `frame is not valid msgpack: ${reason}`)
}

/**
 * The JSON-RPC message in a decoded frame (the rules of docs/protocol.md, "Messages").
 * @param {unknown} value
 * @param {WeakMap<object, Set<string>>} floatKeys
 * @returns {Message}
 */
function toMessage(value, floatKeys) {
  if (value instanceof Map) invalid('message keys must be strings')
  if (!isPlainObject(value)) invalid(`a message is a map, not ${describe(value)}`)
  const id = readId(value, floatKeys)
  if (value.jsonrpc !== '2.0') invalid('"jsonrpc" must be "2.0"', id)
  if (Object.hasOwn(value, 'method')) return toCall(value, id)
  const hasResult = Object.hasOwn(value, 'result')
  if (hasResult === Object.hasOwn(value, 'error')) {
    invalid('a message is a request, a notification, or a response with one of result and error', id)
  }
  if (hasResult) {
    if (id === null) invalid('a result needs an id')
    return { kind: 'result', id, result: value.result }
  }
  if (!Object.hasOwn(value, 'id')) invalid('an error response needs an id (null when unknown)')
  const error = value.error
  if (!isPlainObject(error)) invalid('error must be a map with string keys', id)
  const { code, message } = error
  if (!isWireInteger(error, 'code', floatKeys)) invalid('error.code must be an integer', id)
  if (typeof message !== 'string') invalid('error.message must be a string', id)
  return errorResponse(id, /** @type {number} */ (code), message, error.data)
}

/**
 * @param {Record<string, unknown>} value
 * @param {WeakMap<object, Set<string>>} floatKeys
 * @returns {number | null}
 */
function readId(value, floatKeys) {
  if (!Object.hasOwn(value, 'id') || value.id === null) return null
  const id = value.id
  if (!isWireInteger(value, 'id', floatKeys) || /** @type {number} */ (id) < 0 || /** @type {number} */ (id) > MAX_ID) {
    invalid(`id must be an integer from 0 to ${MAX_ID}`)
  }
  return /** @type {number} */ (id)
}

/**
 * @param {Record<string, unknown>} value
 * @param {number | null} id
 * @returns {Request | Notification}
 */
function toCall(value, id) {
  const method = value.method
  if (typeof method !== 'string' || method === '') invalid('method must be a non-empty string', id)
  const params = Object.hasOwn(value, 'params') ? value.params : {}
  if (!isPlainObject(params)) invalid('params must be a map with string keys', id)
  if (Object.hasOwn(value, 'result') || Object.hasOwn(value, 'error')) {
    invalid('a call has no result or error', id)
  }
  return id === null ? notification(method, params) : request(id, method, params)
}

/**
 * Whether `map[key]` is a number that was an integer on the wire (not a float such as 1.0).
 * Integers beyond 2^53 decode as BigInts, which no id or code can be.
 * @param {Record<string, unknown>} map
 * @param {string} key
 * @param {WeakMap<object, Set<string>>} floatKeys
 */
function isWireInteger(map, key, floatKeys) {
  return Number.isInteger(map[key]) && !floatKeys.get(map)?.has(key)
}

/**
 * @param {string} reason
 * @param {number | null} [id]
 * @returns {never}
 */
function invalid(reason, id = null) {
  throw new ProtocolError(ErrorCode.INVALID_REQUEST, reason, { id })
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/**
 * The canonical frame of `message`: keys in the order of docs/protocol.md (jsonrpc, id, method,
 * params / jsonrpc, id, result / jsonrpc, id, error{code, message, data}), nested maps in
 * insertion order, the smallest msgpack form of every integer, string, bin, array and map header,
 * and every non-integral number as a float64.
 *
 * Values are JSON data plus Uint8Array (bin), BigInt (64-bit integers) and Map (a map with any
 * keys). A number that is not a safe integer (beyond ±(2^53 - 1)) is a float64 even when it is
 * integral: in JavaScript it is a float, and the decoder reads 64-bit integers of that size as
 * BigInts; a BigInt is written as an integer. As in `JSON.stringify`, an object property that is `undefined` is left out, `undefined`
 * elsewhere is nil, and an object's `toJSON()` is used when it has one (a Date becomes its ISO
 * string). Anything else (functions, symbols, class instances, Sets, lone surrogates in strings,
 * cycles) throws a TypeError naming where it is, as does a malformed message.
 *
 * @param {Message} message
 * @returns {Buffer}
 */
export function encodeMessage(message) {
  const writer = new FrameWriter()
  writer.write(wireForm(message))
  return writer.finish()
}

/**
 * The JSON-RPC object of `message`, keys in canonical order: what `encodeMessage` writes, and
 * the message's JSON form (for logs and tests). Throws a TypeError if the message is malformed.
 * @param {Message} message
 * @returns {Record<string, unknown>}
 */
export function wireForm(message) {
  switch (message?.kind) {
    case 'request':
      checkId(message.id)
      checkMethod(message.method)
      return { jsonrpc: '2.0', id: message.id, method: message.method, params: checkParams(message.params) }
    case 'notification':
      checkMethod(message.method)
      return { jsonrpc: '2.0', method: message.method, params: checkParams(message.params) }
    case 'result':
      checkId(message.id)
      return { jsonrpc: '2.0', id: message.id, result: message.result === undefined ? null : message.result }
    case 'error': {
      if (message.id !== null) checkId(message.id)
      const { code, message: text, data } = /** @type {Partial<ErrorObject>} */ (message.error ?? {})
      if (!Number.isSafeInteger(code)) throw new TypeError(`error.code must be an integer (got ${formatValue(code)})`)
      if (typeof text !== 'string') throw new TypeError(`error.message must be a string (got ${formatValue(text)})`)
      /** @type {Record<string, unknown>} */
      const error = { code, message: text }
      if (data !== undefined && data !== null) error.data = data
      return { jsonrpc: '2.0', id: message.id, error }
    }
    default:
      throw new TypeError(`a message's kind is request, notification, result or error (got ${formatValue(/** @type {any} */ (message)?.kind)})`)
  }
}

/** @param {unknown} id */
function checkId(id) {
  if (!Number.isSafeInteger(id) || /** @type {number} */ (id) < 0) {
    throw new TypeError(`id must be an integer from 0 to ${MAX_ID} (got ${formatValue(id)})`)
  }
}

/** @param {unknown} method */
function checkMethod(method) {
  if (typeof method !== 'string' || method === '') {
    throw new TypeError(`method must be a non-empty string (got ${formatValue(method)})`)
  }
}

/** @param {unknown} params */
function checkParams(params) {
  if (params === undefined) return {}
  if (!isPlainObject(params)) throw new TypeError(`params must be a plain object (got ${formatValue(params)})`)
  return params
}

const LONE_SURROGATE = /\p{Cs}/u

/**
 * The length headers of msgpack's sized types: a fix* form below `fixedLimit` (bin has none),
 * an 8-bit length (str and bin only), then 16-bit and 32-bit lengths.
 * @typedef {{fixed: number, fixedLimit: number, length8: number | null, length16: number, length32: number}} SizedType
 * @type {Record<'str' | 'bin' | 'array' | 'map', SizedType>}
 */
const SIZED = {
  str: { fixed: 0xa0, fixedLimit: 0x20, length8: 0xd9, length16: 0xda, length32: 0xdb },
  bin: { fixed: 0, fixedLimit: 0, length8: 0xc4, length16: 0xc5, length32: 0xc6 },
  array: { fixed: 0x90, fixedLimit: 0x10, length8: null, length16: 0xdc, length32: 0xdd },
  map: { fixed: 0x80, fixedLimit: 0x10, length8: null, length16: 0xde, length32: 0xdf },
}

/** Writes msgpack in its canonical (smallest) forms into a growing buffer. */
class FrameWriter {
  constructor() {
    this.buffer = Buffer.allocUnsafe(256)
    this.position = 0
    /** Where the value being written is, for error messages: keys and indexes from the top. */
    /** @type {(string | number)[]} */
    this.path = ['message']
  }

  finish() {
    return this.buffer.subarray(0, this.position)
  }

  /** @param {unknown} value */
  write(value) {
    switch (typeof value) {
      case 'undefined':
        return this.byte(0xc0)
      case 'boolean':
        return this.byte(value ? 0xc3 : 0xc2)
      case 'number':
        // Beyond ±(2^53 - 1) a number is a float that happens to be integral (the decoder reads
        // such 64-bit integers as BigInts): float64 keeps it a number on the way back.
        return Number.isSafeInteger(value) ? this.integer(value) : this.float(value)
      case 'bigint':
        if (value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)) {
          return this.integer(Number(value))
        }
        if (value >= 0n && value < 1n << 64n) return this.int64(0xcf, value)
        if (value < 0n && value >= -(1n << 63n)) return this.int64(0xd3, value)
        return this.refuse('a BigInt outside the 64-bit range')
      case 'string':
        return this.string(value)
      case 'object':
        return value === null ? this.byte(0xc0) : this.object(value)
      default:
        return this.refuse(`a ${typeof value}`)
    }
  }

  /** @param {object} value */
  object(value) {
    if (value instanceof Uint8Array) {
      this.header(SIZED.bin, value.length)
      this.reserve(value.length)
      this.buffer.set(value, this.position)
      this.position += value.length
      return
    }
    if (this.path.length > MAX_DEPTH) this.refuse(`arrays and maps nested deeper than ${MAX_DEPTH} (a cycle?)`)
    if (Array.isArray(value)) {
      this.header(SIZED.array, value.length)
      for (let index = 0; index < value.length; index++) this.entry(index, value[index])
    } else if (value instanceof Map) {
      this.header(SIZED.map, value.size)
      for (const [key, item] of value) {
        this.write(key)
        this.entry(String(key), item)
      }
    } else if (typeof (/** @type {{toJSON?: unknown}} */ (value).toJSON) === 'function') {
      this.write(/** @type {{toJSON(): unknown}} */ (value).toJSON())
    } else if (isPlainObject(value)) {
      const keys = Object.keys(value).filter((key) => value[key] !== undefined)
      this.header(SIZED.map, keys.length)
      for (const key of keys) {
        this.string(key)
        this.entry(key, value[key])
      }
    } else {
      this.refuse(`a ${value.constructor?.name ?? 'null-prototype object'} (only JSON data, Uint8Array and Map)`)
    }
  }

  /**
   * @param {string | number} key
   * @param {unknown} value
   */
  entry(key, value) {
    this.path.push(key)
    this.write(value)
    this.path.pop()
  }

  /** @param {number} value a safe integer (-0 is 0) */
  integer(value) {
    if (value >= 0) {
      if (value < 0x80) return this.byte(value)
      if (value < 0x100) return this.bytes(0xcc, value)
      if (value < 0x10000) return this.bytes(0xcd, value >> 8, value & 0xff)
      if (value < 0x100000000) return this.uint32(0xce, value)
      return this.int64(0xcf, BigInt(value))
    }
    if (value >= -0x20) return this.byte(value + 0x100)
    if (value >= -0x80) return this.bytes(0xd0, value + 0x100)
    if (value >= -0x8000) return this.bytes(0xd1, (value >> 8) & 0xff, value & 0xff)
    if (value >= -0x80000000) return this.uint32(0xd2, value >>> 0)
    return this.int64(0xd3, BigInt(value))
  }

  /** @param {number} value */
  float(value) {
    this.byte(0xcb)
    this.reserve(8)
    this.position = this.buffer.writeDoubleBE(value, this.position)
  }

  /**
   * @param {number} type
   * @param {number} value 0 to 2^32 - 1
   */
  uint32(type, value) {
    this.byte(type)
    this.reserve(4)
    this.position = this.buffer.writeUInt32BE(value, this.position)
  }

  /**
   * @param {0xcf | 0xd3} type uint64 or int64
   * @param {bigint} value
   */
  int64(type, value) {
    this.byte(type)
    this.reserve(8)
    this.position = type === 0xcf
      ? this.buffer.writeBigUInt64BE(value, this.position)
      : this.buffer.writeBigInt64BE(value, this.position)
  }

  /** @param {string} value */
  string(value) {
    if (value.length < 0x20 && this.asciiString(value)) return
    if (LONE_SURROGATE.test(value)) this.refuse('a string with a lone surrogate (not valid Unicode)')
    const length = Buffer.byteLength(value, 'utf8')
    this.header(SIZED.str, length)
    this.reserve(length)
    this.position += this.buffer.write(value, this.position, length, 'utf8')
  }

  /**
   * Write a short string as a fixstr if it is ASCII (keys and most short strings are: cheaper
   * than measuring and encoding it as UTF-8).
   * @param {string} value shorter than 32 characters
   * @returns {boolean} whether it was ASCII, and written
   */
  asciiString(value) {
    this.reserve(1 + value.length)
    const start = this.position
    this.buffer[start] = 0xa0 | value.length
    for (let index = 0; index < value.length; index++) {
      const code = value.charCodeAt(index)
      if (code >= 0x80) return false // nothing counts as written until `position` moves
      this.buffer[start + 1 + index] = code
    }
    this.position = start + 1 + value.length
    return true
  }

  /**
   * The smallest header for a str, bin, array or map of `length` bytes or elements.
   * @param {SizedType} type
   * @param {number} length
   */
  header(type, length) {
    if (length < type.fixedLimit) return this.byte(type.fixed | length)
    if (type.length8 !== null && length < 0x100) return this.bytes(type.length8, length)
    if (length < 0x10000) return this.bytes(type.length16, length >> 8, length & 0xff)
    if (length > 0xffffffff) return this.refuse(`${length} bytes or elements (msgpack's limit is 2^32 - 1)`)
    return this.uint32(type.length32, length)
  }

  /** @param {number} byte */
  byte(byte) {
    this.reserve(1)
    this.buffer[this.position++] = byte
  }

  /** @param {number[]} bytes */
  bytes(...bytes) {
    this.reserve(bytes.length)
    for (const byte of bytes) this.buffer[this.position++] = byte
  }

  /** @param {number} length bytes about to be written */
  reserve(length) {
    if (this.position + length <= this.buffer.length) return
    const grown = Buffer.allocUnsafe(Math.max(2 * this.buffer.length, this.position + length))
    this.buffer.copy(grown, 0, 0, this.position)
    this.buffer = grown
  }

  /**
   * @param {string} what
   * @returns {never}
   */
  refuse(what) {
    const where = this.path.map((part, index) => (typeof part === 'number' ? `[${part}]` : index ? `.${part}` : part))
    throw new TypeError(`cannot encode ${what} at ${where.join('')}`)
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * @param {unknown} value
 * @returns {value is Record<string, any>}
 */
function isPlainObject(value) {
  if (typeof value !== 'object' || value === null) return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/**
 * What a value is, without its contents (error messages never echo a frame's data).
 * @param {unknown} value
 */
function describe(value) {
  if (value === null) return 'nil'
  if (Array.isArray(value)) return 'an array'
  if (value instanceof Uint8Array) return 'bytes'
  if (value instanceof Map) return 'a map with non-string keys'
  if (typeof value === 'object') return 'a map'
  return `a ${typeof value}`
}

/** @param {number} byte */
function hex(byte) {
  return byte.toString(16).padStart(2, '0')
}

// The protocol codec against the golden frames of tests/fixtures/protocol, and hostile bytes.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'

import { Unpackr } from 'msgpackr'

import { WorkerError } from '@flowhost/worker'

import {
  DEFAULT_MAX_FRAME,
  ErrorCode,
  MAX_DEPTH,
  PROTOCOL_VERSION,
  ProtocolError,
  decodeFrame,
  encodeMessage,
  errorResponse,
  notification,
  request,
  result,
  wireForm,
} from '../src/protocol.js'
import { readExecuteParams } from '../src/runtime/execute-params.js'

/**
 * @typedef {{name: string, hex: string, message: Record<string, unknown>}} GoldenFrame
 * @typedef {{name: string, hex: string, code: number, why: string}} InvalidFrame
 * @type {{protocol: number, valid: GoldenFrame[], tolerated: GoldenFrame[], invalid: InvalidFrame[]}}
 */
const FRAMES = JSON.parse(
  readFileSync(new URL('../../tests/fixtures/protocol/frames.json', import.meta.url), 'utf8'),
)

/** @param {string} hex */
const bytes = (hex) => Buffer.from(hex.replaceAll(' ', ''), 'hex')

/**
 * The ProtocolError `decodeFrame` throws for `frame`.
 * @param {Uint8Array} frame
 * @param {{maxFrame?: number}} [options]
 * @returns {ProtocolError}
 */
function refusal(frame, options) {
  try {
    decodeFrame(frame, options)
  } catch (error) {
    if (error instanceof ProtocolError) return error
    throw error
  }
  return assert.fail('the frame was accepted')
}

test('the golden frames are for this protocol version', () => {
  assert.equal(FRAMES.protocol, PROTOCOL_VERSION)
  assert.ok(FRAMES.valid.length > 0 && FRAMES.tolerated.length > 0 && FRAMES.invalid.length > 0)
})

for (const entry of FRAMES.valid) {
  test(`valid frame ${entry.name}: decodes to its message and encodes back to the same bytes`, () => {
    const message = decodeFrame(bytes(entry.hex))
    assert.deepEqual(wireForm(message), entry.message)
    assert.equal(encodeMessage(message).toString('hex'), entry.hex)
  })
}

for (const entry of FRAMES.valid.filter((frame) => frame.message.method === 'execute')) {
  test(`golden execute ${entry.name}: the child reads its job, awaited and hook`, () => {
    const params = /** @type {Record<string, any>} */ (entry.message.params)
    const read = readExecuteParams(params)
    assert.deepEqual([read.job, read.input], [params.job, params.input])
    assert.deepEqual(read.awaited, params.awaited ?? null)
    assert.deepEqual(read.hook, params.hook ?? null)
    assert.equal(read.traceparent, params.traceparent ?? null)
  })
}

test('a traceparent that is not W3C trace context is invalid params', () => {
  const [execute] = FRAMES.valid.filter((entry) => entry.name === 'execute')
  const params = /** @type {Record<string, any>} */ (execute.message.params)
  for (const traceparent of [7, '00-XYZ-00f067aa0ba902b7-01', '']) {
    assert.throws(() => readExecuteParams({ ...params, traceparent }), /traceparent must be null or a W3C traceparent/)
  }
})

for (const entry of FRAMES.tolerated) {
  test(`tolerated frame ${entry.name}: decodes to its message`, () => {
    assert.deepEqual(wireForm(decodeFrame(bytes(entry.hex))), entry.message)
  })
}

for (const entry of FRAMES.invalid) {
  test(`invalid frame ${entry.name}: refused with ${entry.code} (${entry.why})`, () => {
    assert.equal(refusal(bytes(entry.hex)).code, entry.code)
  })
}

test('decoded messages have a kind and the keys of that kind', () => {
  const frame = (/** @type {string} */ name) => bytes(FRAMES.valid.find((entry) => entry.name === name)?.hex ?? '')
  assert.deepEqual(decodeFrame(frame('state_get')), { kind: 'request', id: 3, method: 'state.get', params: { key: 'order' } })
  assert.deepEqual(decodeFrame(frame('heartbeat')), { kind: 'notification', method: 'heartbeat', params: {} })
  assert.deepEqual(decodeFrame(frame('state_set_result')), { kind: 'result', id: 5, result: null })
  assert.deepEqual(decodeFrame(frame('execute_cancelled')), {
    kind: 'error',
    id: 1,
    error: { code: -32051, message: 'cancelled: run canceled' },
  })
})

test('the helpers build the messages of the golden frames', () => {
  const hexOf = (/** @type {string} */ name) => FRAMES.valid.find((entry) => entry.name === name)?.hex
  const encoded = (/** @type {import('../src/protocol.js').Message} */ message) => encodeMessage(message).toString('hex')
  assert.equal(encoded(request(7, 'state.list')), hexOf('state_list'))
  assert.equal(encoded(notification('shutdown')), hexOf('shutdown'))
  assert.equal(encoded(result(5, undefined)), hexOf('state_set_result'))
  assert.equal(encoded(errorResponse(null, ErrorCode.PARSE_ERROR, 'frame is not valid msgpack')), hexOf('parse_error_without_id'))
  assert.equal(
    encoded(errorResponse(1, ErrorCode.VERSION_MISMATCH, 'protocol version 2 is not supported', { supported: [1] })),
    hexOf('hello_version_mismatch'),
  )
  assert.deepEqual(errorResponse(1, ErrorCode.CANCELLED, 'x', null).error, { code: -32051, message: 'x' })
})

test('ErrorCode lists every code of docs/protocol.md and cannot be changed', () => {
  const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8')
  const documented = [...doc.matchAll(/^\| (-32\d{3}) \|/gm)].map((match) => Number(match[1]))
  assert.deepEqual(Object.values(ErrorCode).sort(), documented.sort())
  assert.ok(Object.isFrozen(ErrorCode))
})

test('a ProtocolError is a WorkerError that becomes the error response answering the frame', () => {
  const error = refusal(bytes('84 a76a736f6e727063 a3322e30 a26964 07 a66d6574686f64 a0 a6706172616d73 80'))
  assert.ok(error instanceof WorkerError)
  assert.equal(error.name, 'ProtocolError')
  assert.equal(error.code, ErrorCode.INVALID_REQUEST)
  assert.equal(error.id, 7, 'the request id is kept when it could be read')
  assert.deepEqual(error.toResponse(), errorResponse(7, -32600, 'method must be a non-empty string'))
  const busy = new ProtocolError(ErrorCode.BUSY, 'busy', { id: 3, data: { x: 1 } })
  assert.deepEqual(wireForm(busy.toResponse()), { jsonrpc: '2.0', id: 3, error: { code: -32005, message: 'busy', data: { x: 1 } } })
  assert.equal(new ProtocolError(ErrorCode.BUSY, 'busy').id, null)
})

test('a frame over maxFrame is refused with -32004 before it is read', () => {
  const garbage = Buffer.alloc(65, 0xc1) // would be -32700 if it were read
  const tooLarge = refusal(garbage, { maxFrame: 64 })
  assert.equal(tooLarge.code, ErrorCode.FRAME_TOO_LARGE)
  assert.equal(tooLarge.id, null)
  assert.equal(refusal(garbage.subarray(0, 64), { maxFrame: 64 }).code, ErrorCode.PARSE_ERROR)
  assert.equal(DEFAULT_MAX_FRAME, 8 * 1024 * 1024)
  assert.equal(refusal(Buffer.alloc(DEFAULT_MAX_FRAME + 1)).code, ErrorCode.FRAME_TOO_LARGE)
  const log = encodeMessage(notification('log', { message: 'x'.repeat(100) }))
  assert.equal(decodeFrame(log, { maxFrame: log.length }).kind, 'notification')
})

test('integers are written in their smallest form, non-integral numbers as float64', () => {
  // Expected bytes from Python's msgpack.packb, the reference of the golden frames.
  /** @type {[number | bigint, string][]} */
  const cases = [
    [0, '00'], [127, '7f'], [128, 'cc80'], [255, 'ccff'], [256, 'cd0100'], [65535, 'cdffff'],
    [65536, 'ce00010000'], [2 ** 32 - 1, 'ceffffffff'], [2 ** 32, 'cf0000000100000000'],
    [2 ** 53 - 1, 'cf001fffffffffffff'], [2n ** 64n - 1n, 'cfffffffffffffffff'], [-1, 'ff'],
    [-32, 'e0'], [-33, 'd0df'], [-128, 'd080'], [-129, 'd1ff7f'], [-32768, 'd18000'],
    [-32769, 'd2ffff7fff'], [-(2 ** 31), 'd280000000'], [-(2 ** 31) - 1, 'd3ffffffff7fffffff'],
    [-(2n ** 63n), 'd38000000000000000'], [2n ** 53n, 'cf0020000000000000'], [5n, '05'],
    [0.5, 'cb3fe0000000000000'], [-2.5, 'cbc004000000000000'], [1e300, 'cb7e37e43c8800759c'],
    [-0, '00'],
    // Numbers beyond ±(2^53 - 1) are floats in JavaScript: Python's bytes for float(n).
    [2 ** 53, 'cb4340000000000000'], [-(2 ** 63), 'cbc3e0000000000000'],
  ]
  const prefix = encodeMessage(result(1, null)).subarray(0, -1).toString('hex')
  for (const [value, hex] of cases) {
    assert.equal(encodeMessage(result(1, value)).toString('hex'), prefix + hex, String(value))
  }
})

test('strings, bytes, arrays and maps get the smallest header for their length', () => {
  /** @param {unknown} value */
  const header = (value) => encodeMessage(result(1, value)).subarray(24, 29).toString('hex')
  const keys = (/** @type {number} */ count) => Object.fromEntries(Array.from({ length: count }, (_, index) => [`k${index}`, 0]))
  assert.equal(encodeMessage(result(1, null)).length, 25, 'the value starts at byte 24')
  /** @type {Record<'str' | 'bin' | 'array' | 'map', [number, string][]>} */
  const expected = {
    str: [[31, 'bf61616161'], [32, 'd920616161'], [255, 'd9ff616161'], [256, 'da01006161'], [65535, 'daffff6161'], [65536, 'db00010000']],
    bin: [[31, 'c41f616161'], [32, 'c420616161'], [256, 'c501006161'], [65536, 'c600010000']],
    array: [[15, '9f00000000'], [16, 'dc00100000'], [65535, 'dcffff0000'], [65536, 'dd00010000']],
    map: [[15, '8fa26b3000'], [16, 'de0010a26b'], [65536, 'df00010000']],
  }
  for (const [length, hex] of expected.str) assert.equal(header('a'.repeat(length)), hex, `str ${length}`)
  for (const [length, hex] of expected.bin) assert.equal(header(Buffer.alloc(length, 'a')), hex, `bin ${length}`)
  for (const [length, hex] of expected.array) assert.equal(header(new Array(length).fill(0)), hex, `array ${length}`)
  for (const [length, hex] of expected.map) assert.equal(header(keys(length)), hex, `map ${length}`)
  assert.equal(header('€'.repeat(11)), 'd921e282ac', 'the length is in UTF-8 bytes')
})

test('64-bit integers decode as numbers when exact, else as BigInts, and encode back', () => {
  for (const hex of ['cf0020000000000000', 'cfffffffffffffffff', 'd3ffdfffffffffffff', 'd38000000000000000']) {
    const frame = bytes(`83 a76a736f6e727063 a3322e30 a26964 01 a6726573756c74 ${hex}`)
    const message = decodeFrame(frame)
    assert.equal(message.kind === 'result' && typeof message.result, 'bigint', hex)
    assert.deepEqual(encodeMessage(message), frame)
  }
  const safe = decodeFrame(bytes('83 a76a736f6e727063 a3322e30 a26964 01 a6726573756c74 cf0000000000000005'))
  assert.deepEqual(safe, result(1, 5))
})

test('an id or error.code written as a float is not an integer, even when integral', () => {
  const floatId = refusal(bytes('83 a76a736f6e727063 a3322e30 a26964 cb3ff0000000000000 a6726573756c74 c0'))
  assert.equal(floatId.code, ErrorCode.INVALID_REQUEST)
  const floatCode = refusal(bytes('83 a76a736f6e727063 a3322e30 a26964 02 a56572726f72 82 a4636f6465 cbc0dfff8000000000 a76d657373616765 a178'))
  assert.equal(floatCode.code, ErrorCode.INVALID_REQUEST)
  assert.equal(floatCode.id, 2)
  const floatData = decodeFrame(bytes('83 a76a736f6e727063 a3322e30 a26964 01 a6726573756c74 81 a26964 cb3ff0000000000000'))
  assert.deepEqual(floatData, result(1, { id: 1 }), 'floats elsewhere are ordinary numbers')
})

test('a call with a nil id is a notification, as in the Python SDK', () => {
  const message = decodeFrame(bytes('83 a76a736f6e727063 a3322e30 a26964 c0 a66d6574686f64 a9686561727462656174'))
  assert.deepEqual(message, notification('heartbeat'))
})

test('nested maps with a non-string key decode as Maps (not JSON data) and encode back', () => {
  const frame = bytes('83 a76a736f6e727063 a3322e30 a26964 01 a6726573756c74 82 01 a178 a179 c3')
  const message = decodeFrame(frame)
  assert.deepEqual(message, result(1, new Map(/** @type {[unknown, unknown][]} */ ([[1, 'x'], ['y', true]]))))
  assert.deepEqual(encodeMessage(message), frame)
  const params = refusal(bytes('84 a76a736f6e727063 a3322e30 a26964 04 a66d6574686f64 a3676574 a6706172616d73 81 01 02'))
  assert.equal(params.code, ErrorCode.INVALID_REQUEST)
  assert.equal(params.id, 4)
})

test('a __proto__ key is an own property, never a prototype', () => {
  const frame = bytes('83 a76a736f6e727063 a3322e30 a26964 01 a6726573756c74 81 a95f5f70726f746f5f5f 81 a161 01')
  const message = decodeFrame(frame)
  assert.equal(message.kind, 'result')
  const value = /** @type {Record<string, unknown>} */ (message.kind === 'result' && message.result)
  assert.equal(Object.getPrototypeOf(value), Object.prototype)
  assert.deepEqual(Object.keys(value), ['__proto__'])
  assert.equal(value.a, undefined)
  assert.deepEqual(encodeMessage(message), frame)
})

test('bin decodes as a Uint8Array copy, which encodes back as bin', () => {
  const frame = bytes('83 a76a736f6e727063 a3322e30 a26964 01 a6726573756c74 c4 03 010203')
  const message = decodeFrame(frame)
  assert.deepEqual(message, result(1, new Uint8Array([1, 2, 3])))
  frame[frame.length - 1] = 9
  assert.deepEqual(message.kind === 'result' && message.result, new Uint8Array([1, 2, 3]))
  frame[frame.length - 1] = 3
  assert.deepEqual(encodeMessage(message), frame)
})

test('strings must be valid UTF-8; a byte order mark is kept', () => {
  const withString = (/** @type {string} */ hex) => bytes(`83 a76a736f6e727063 a3322e30 a26964 01 a6726573756c74 ${hex}`)
  for (const invalid of ['a2 c0af', 'a3 eda080', 'a2 e282', 'a1 80', 'a4 f4908080']) {
    assert.equal(refusal(withString(invalid)).code, ErrorCode.PARSE_ERROR, invalid)
  }
  assert.deepEqual(decodeFrame(withString('a4 efbbbf61')), result(1, '\ufeffa'))
  assert.deepEqual(decodeFrame(withString('a4 f09f9880')), result(1, '😀'))
})

test('nesting is limited to MAX_DEPTH arrays and maps, the same limit as Python msgpack', () => {
  const nested = (/** @type {number} */ depth) => Buffer.concat([
    bytes('83 a76a736f6e727063 a3322e30 a26964 01 a6726573756c74'),
    Buffer.alloc(depth, 0x91),
    bytes('c0'),
  ])
  assert.equal(decodeFrame(nested(MAX_DEPTH - 1)).kind, 'result') // plus the message map
  assert.equal(refusal(nested(MAX_DEPTH)).code, ErrorCode.PARSE_ERROR)
  assert.equal(refusal(nested(100_000)).code, ErrorCode.PARSE_ERROR)
})

test('a container longer than the frame is refused before anything is allocated for it', () => {
  assert.equal(refusal(bytes('dd ffffffff 00')).code, ErrorCode.PARSE_ERROR)
  assert.equal(refusal(bytes('df ffffffff 00')).code, ErrorCode.PARSE_ERROR)
  assert.equal(refusal(bytes('db ffffffff 00')).code, ErrorCode.PARSE_ERROR)
  assert.equal(refusal(bytes('')).code, ErrorCode.PARSE_ERROR)
})

test('every extension type is refused, timestamps included', () => {
  for (const hex of ['d4 01 78', 'd6 ff 00000000', 'd4 00 00', 'c7 01 05 00', 'c8 0001 05 00', 'c9 00000001 05 00', 'd5 01 0000', 'd7 ff 0000000000000000', 'd8 01 00000000000000000000000000000000']) {
    const frame = bytes(`83 a76a736f6e727063 a3322e30 a26964 01 a6726573756c74 ${hex}`)
    assert.equal(refusal(frame).code, ErrorCode.PARSE_ERROR, hex)
  }
})

test('the encoder follows JSON for undefined and toJSON, and keeps map order', () => {
  assert.deepEqual(
    wireForm(decodeFrame(encodeMessage(result(1, { a: undefined, b: [undefined, 1], c: new Date(0), z: 1, y: 2 })))),
    { jsonrpc: '2.0', id: 1, result: { b: [null, 1], c: '1970-01-01T00:00:00.000Z', z: 1, y: 2 } },
  )
  assert.deepEqual(Object.keys(/** @type {object} */ (wireForm(decodeFrame(encodeMessage(result(1, { z: 1, y: 2 })))).result)), ['z', 'y'])
  assert.deepEqual(decodeFrame(encodeMessage(result(1, [1, , 3]))), result(1, [1, null, 3]))
  assert.deepEqual(decodeFrame(encodeMessage(request(1, 'x', Object.assign(Object.create(null), { k: 1 })))), request(1, 'x', { k: 1 }))
})

test('the encoder refuses what msgpack cannot carry, naming where it is', () => {
  /** @type {Record<string, unknown>} */
  const cycle = {}
  cycle.self = cycle
  /** @type {[unknown, RegExp][]} */
  const cases = [
    [{ handler: () => 1 }, /a function at message\.result\.handler/],
    [[Symbol('s')], /a symbol at message\.result\[0\]/],
    [new Set([1]), /a Set/],
    [{ order: new (class Order {})() }, /a Order .* at message\.result\.order/],
    [{ text: 'a\ud800b' }, /lone surrogate .* at message\.result\.text/],
    [2n ** 64n, /BigInt outside the 64-bit range/],
    [cycle, /nested deeper than 1024/],
  ]
  for (const [value, message] of cases) {
    assert.throws(() => encodeMessage(result(1, value)), { name: 'TypeError', message })
  }
})

test('the encoder refuses malformed messages', () => {
  const malformed = /** @type {any[]} */ ([
    request(-1, 'x'),
    request(2 ** 53, 'x'),
    request(1.5, 'x'),
    request(1, ''),
    request(1, 'x', /** @type {any} */ ([1])),
    notification(/** @type {any} */ (7)),
    result(/** @type {any} */ (null), 1),
    { kind: 'error', id: 1, error: { message: 'no code' } },
    { kind: 'error', id: 1, error: { code: 1 } },
    { kind: 'response', id: 1 },
    null,
  ])
  for (const message of malformed) assert.throws(() => encodeMessage(message), TypeError, JSON.stringify(message))
})

/**
 * A small seeded generator (mulberry32), so that a failure reproduces.
 * @param {number} seed
 */
function randomGenerator(seed) {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

test('random and mutated bytes decode or throw a ProtocolError, never anything else', () => {
  const random = randomGenerator(20261124)
  const seeds = FRAMES.valid.map((entry) => bytes(entry.hex))
  const counts = { decoded: 0, refused: 0 }
  for (let round = 0; round < 5000; round++) {
    let frame
    if (round % 2 === 0) {
      frame = Buffer.alloc(Math.floor(random() * 64))
      for (let index = 0; index < frame.length; index++) frame[index] = Math.floor(random() * 256)
    } else {
      // A golden frame with a few bytes changed and maybe cut short: deeper into the decoder.
      frame = Buffer.from(seeds[Math.floor(random() * seeds.length)])
      for (let flips = 1 + Math.floor(random() * 3); flips > 0; flips--) {
        frame[Math.floor(random() * frame.length)] = Math.floor(random() * 256)
      }
      if (random() < 0.3) frame = frame.subarray(0, Math.floor(random() * frame.length))
    }
    let message
    try {
      message = decodeFrame(frame)
    } catch (error) {
      assert.ok(error instanceof ProtocolError, `${frame.toString('hex')}: ${error}`)
      assert.ok(/** @type {number[]} */ ([ErrorCode.PARSE_ERROR, ErrorCode.INVALID_REQUEST]).includes(error.code))
      counts.refused++
      continue
    }
    assert.deepEqual(decodeFrame(encodeMessage(message)), message, frame.toString('hex'))
    counts.decoded++
  }
  assert.ok(counts.decoded > 100 && counts.refused > 100, JSON.stringify(counts))
})

test('random JSON data round-trips, and msgpackr reads the encoder output the same way', () => {
  const random = randomGenerator(42)
  // `int64AsType: 'auto'` (numbers when exact, else BigInts) is missing from msgpackr's types.
  const msgpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: /** @type {any} */ ('auto') })
  const pick = (/** @type {number} */ count) => Math.floor(random() * count)
  /**
   * @param {number} depth
   * @returns {unknown}
   */
  const value = (depth) => {
    switch (pick(depth > 3 ? 6 : 8)) {
      case 0: return null
      case 1: return random() < 0.5
      case 2: return [pick(128), pick(2 ** 16), pick(2 ** 33), -1 - pick(2 ** 40), Number.MAX_SAFE_INTEGER][pick(5)]
      case 3: return (random() - 0.5) * 10 ** pick(20)
      case 4: return ['', 'a', 'é€😀', 'x'.repeat(pick(300)), '\u0000'][pick(5)]
      case 5: return pick(2) ? 'key' : -1 - pick(40)
      case 6: return Array.from({ length: pick(20) }, () => value(depth + 1))
      default: return Object.fromEntries(Array.from({ length: pick(20) }, (_, index) => [`k${index}_${pick(9)}`, value(depth + 1)]))
    }
  }
  for (let round = 0; round < 500; round++) {
    const message = result(pick(2 ** 20), value(0))
    const frame = encodeMessage(message)
    assert.deepEqual(decodeFrame(frame), message)
    assert.deepEqual(msgpackr.unpack(frame), wireForm(message))
  }
})

/**
 * What the child can send for the user: checks of values before they go on the wire, and the
 * description of a thrown error that `execute` answers with.
 *
 * The encoder (`protocol.js`) refuses what msgpack cannot carry too, but it sees a whole message:
 * checking the user's value first gives an error that names the user's own path
 * (`result.items[2].price`) and catches what msgpack carries but the host cannot store
 * (NaN, infinities, cycles).
 */

import { RetryRequested } from '../errors.js'
import { formatValue } from '../format.js'
import { MAX_DEPTH } from '../protocol.js'

const INT64_MIN = -(1n << 63n)
const UINT64_MAX = (1n << 64n) - 1n

/**
 * Throw a TypeError naming the first part of `value` that cannot be sent, at `label` (`result`,
 * `state value`, …). `jsonData`: also refuse what is msgpack but not JSON data (bytes, Maps, big
 * integers) and strings with NUL characters, which Postgres `jsonb` cannot store (state values,
 * payloads, flow inputs: docs/protocol.md answers those -32602).
 *
 * As in `JSON.stringify`, an object property that is `undefined` is left out, `undefined`
 * elsewhere is null, and an object's `toJSON()` is used.
 *
 * @param {unknown} value
 * @param {string} label
 * @param {{jsonData?: boolean}} [options]
 */
export function assertSendable(value, label, { jsonData = false } = {}) {
  const problem = findProblem(value, label, jsonData, new Set(), 0)
  if (problem) throw new TypeError(`cannot send ${problem}`)
}

/**
 * @param {unknown} value
 * @param {string} path
 * @param {boolean} jsonData
 * @param {Set<object>} ancestors the objects that contain `value`: seeing one again is a cycle
 * @param {number} depth
 * @returns {string | null} what is wrong and where, or null
 */
function findProblem(value, path, jsonData, ancestors, depth) {
  switch (typeof value) {
    case 'undefined':
    case 'boolean':
      return null
    case 'number':
      return Number.isFinite(value) ? null : `${value} at ${path} (only finite numbers are JSON data)`
    case 'string':
      return jsonData && value.includes('\u0000') ? `a string with a NUL character at ${path} (Postgres cannot store it)` : null
    case 'bigint':
      if (jsonData && !Number.isSafeInteger(Number(value))) return `the BigInt ${value} at ${path} (JSON data holds integers up to 2^53 - 1)`
      return value >= INT64_MIN && value <= UINT64_MAX ? null : `the BigInt ${value} at ${path} (outside the 64-bit range)`
    case 'object':
      if (value === null) return null
      return objectProblem(value, path, jsonData, ancestors, depth)
    default: // function, symbol
      return `a ${typeof value} at ${path} (only JSON data can be sent)`
  }
}

/**
 * @param {object} value
 * @param {string} path
 * @param {boolean} jsonData
 * @param {Set<object>} ancestors
 * @param {number} depth
 * @returns {string | null}
 */
function objectProblem(value, path, jsonData, ancestors, depth) {
  if (value instanceof Uint8Array) return jsonData ? `bytes at ${path} (not JSON data)` : null
  if (ancestors.has(value)) return `a cyclic reference at ${path}`
  if (depth >= MAX_DEPTH) return `arrays and objects nested deeper than ${MAX_DEPTH} at ${path}`
  const toJSON = /** @type {{toJSON?: unknown}} */ (value).toJSON
  if (typeof toJSON === 'function') {
    return findProblem(toJSON.call(value), path, jsonData, ancestors, depth)
  }
  ancestors.add(value)
  try {
    if (Array.isArray(value)) {
      for (let index = 0; index < value.length; index++) {
        const problem = findProblem(value[index], `${path}[${index}]`, jsonData, ancestors, depth + 1)
        if (problem) return problem
      }
      return null
    }
    if (value instanceof Map && !jsonData) {
      for (const [key, item] of value) {
        const problem = findProblem(key, `${path} (a Map key)`, jsonData, ancestors, depth + 1) ??
          findProblem(item, `${path}.get(${formatValue(key)})`, jsonData, ancestors, depth + 1)
        if (problem) return problem
      }
      return null
    }
    const prototype = Object.getPrototypeOf(value)
    if (prototype !== Object.prototype && prototype !== null) {
      const kind = value.constructor?.name ? `a ${value.constructor.name}` : 'an object with a custom prototype'
      return `${kind} at ${path} (only plain objects, arrays, strings, numbers, booleans and null)`
    }
    for (const [key, item] of Object.entries(value)) {
      const problem = findProblem(item, `${path}.${key}`, jsonData, ancestors, depth + 1)
      if (problem) return problem
    }
    return null
  } finally {
    ancestors.delete(value)
  }
}

/**
 * The `data` of a -32050 or -32053 answer: `{type, message, stack, retry_delay}`. `retry_delay`
 * is the delay of a `RetryRequested`, in seconds as on the wire (and `message` its reason), else
 * null. A thrown value that is not an Error is described by its type and its rendering.
 *
 * @param {unknown} thrown
 * @returns {{type: string, message: string, stack: string | null, retry_delay: number | null}}
 */
export function describeThrown(thrown) {
  if (isRetryRequested(thrown)) {
    return { type: 'RetryRequested', message: thrown.reason, stack: stackOf(thrown), retry_delay: thrown.delay }
  }
  if (thrown instanceof Error || isErrorLike(thrown)) {
    return { type: String(thrown.name || 'Error'), message: String(thrown.message), stack: stackOf(thrown), retry_delay: null }
  }
  const type = thrown === null ? 'null' : typeof thrown === 'object' ? thrown.constructor?.name ?? 'Object' : typeof thrown
  const message = typeof thrown === 'string' ? thrown : formatValue(thrown)
  return { type, message: `a non-Error value was thrown: ${message}`, stack: null, retry_delay: null }
}

/**
 * `instanceof`, or the same shape: a function file that bundles its own copy of the SDK still
 * asks for a retry.
 * @param {unknown} thrown
 * @returns {thrown is {reason: string, delay: number, stack?: string}}
 */
function isRetryRequested(thrown) {
  if (thrown instanceof RetryRequested) return true
  const candidate = /** @type {{name?: unknown, delay?: unknown, reason?: unknown}} */ (thrown)
  return isErrorLike(thrown) && candidate.name === 'RetryRequested' &&
    typeof candidate.delay === 'number' && Number.isFinite(candidate.delay) && candidate.delay >= 0 &&
    typeof candidate.reason === 'string'
}

/**
 * An Error from another realm (`vm`), or an object built to look like one.
 * @param {unknown} thrown
 * @returns {thrown is {name?: unknown, message: unknown, stack?: unknown}}
 */
function isErrorLike(thrown) {
  return typeof thrown === 'object' && thrown !== null && typeof (/** @type {{message?: unknown}} */ (thrown).message) === 'string' &&
    typeof (/** @type {{stack?: unknown}} */ (thrown).stack) === 'string'
}

/** @param {{stack?: unknown}} error */
function stackOf(error) {
  return typeof error.stack === 'string' ? error.stack : null
}

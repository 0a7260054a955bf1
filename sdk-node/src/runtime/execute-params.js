/**
 * The params of `execute` (docs/protocol.md, "Lifecycle of a child"), checked: a mistyped one is
 * answered -32602 naming the key, never a half-run job.
 *
 * @typedef {import('./context.js').JobIds & {file: string, handler: string}} Job
 * @typedef {import('../../index.js').Awaited} Awaited
 * @typedef {{function: string, kind: import('../../index.js').HookKind}} HookCall
 * @typedef {{job: Job, input: unknown, timeout: number | null, env: Record<string, string>,
 *   last: boolean, awaited: Awaited | null, hook: HookCall | null, traceparent: string | null,
 *   emits: string[] | null}} ExecuteParams `emits`: the names the step declares, when the host
 *   sent them (it then takes `emit` as a notification); null from an older host
 */

import { isAbsolute } from 'node:path'

import { ErrorCode, ProtocolError } from '../protocol.js'

const JOB_STRINGS = /** @type {const} */ (['run_id', 'flow', 'step', 'idempotency_key', 'file', 'handler'])
const JOB_INTEGERS = /** @type {const} */ (['attempt', 'max_attempts'])
const HOOK_KINDS = ['register', 'resolve', 'timeout']
// W3C trace context: version-trace id-parent id-flags, lower-case hex.
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/

/**
 * @param {Record<string, unknown>} params
 * @returns {ExecuteParams}
 */
export function readExecuteParams(params) {
  const job = params.job
  if (!isMap(job)) invalidParams('job must be a map')
  for (const key of JOB_STRINGS) {
    if (typeof job[key] !== 'string' || job[key] === '') invalidParams(`job.${key} must be a non-empty string`)
  }
  for (const key of JOB_INTEGERS) {
    if (!Number.isSafeInteger(job[key]) || /** @type {number} */ (job[key]) < 1) {
      invalidParams(`job.${key} must be an integer >= 1`)
    }
  }
  if (!isAbsolute(/** @type {string} */ (job.file))) invalidParams('job.file must be an absolute path')

  const timeout = params.timeout ?? null
  if (timeout !== null && (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout <= 0)) {
    invalidParams('timeout must be a positive number of seconds or null')
  }

  const env = params.env ?? {}
  if (!isMap(env)) invalidParams('env must be a map of strings')
  for (const [name, value] of Object.entries(env)) {
    if (typeof value !== 'string') invalidParams(`env.${name} must be a string`)
  }

  const last = params.last ?? true
  if (typeof last !== 'boolean') invalidParams('last must be a boolean')

  return {
    job: /** @type {Job} */ (/** @type {unknown} */ (job)),
    input: params.input ?? null,
    timeout: /** @type {number | null} */ (timeout),
    env: /** @type {Record<string, string>} */ (env),
    last,
    awaited: readAwaited(params.awaited),
    hook: readHook(params.hook),
    traceparent: readTraceparent(params.traceparent),
    emits: readEmits(job.emits),
  }
}

/**
 * `job.emits`: absent (an older host, which answers each `emit` request), or the step's event names.
 * @param {unknown} value
 * @returns {string[] | null}
 */
function readEmits(value) {
  if (value === undefined || value === null) return null
  if (!Array.isArray(value) || !value.every((name) => typeof name === 'string' && name !== '')) {
    invalidParams('job.emits must be a list of event names')
  }
  return value
}

/**
 * `traceparent`: null, or the W3C trace context of the host's span of this attempt.
 * @param {unknown} value
 * @returns {string | null}
 */
function readTraceparent(value) {
  if (value === undefined || value === null) return null
  if (typeof value !== 'string' || !TRACEPARENT.test(value)) {
    invalidParams('traceparent must be null or a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)')
  }
  return value
}

/**
 * `awaited`: null, or how the step's awaitBefore resolved, `{type, data}`.
 * @param {unknown} value
 * @returns {Awaited | null}
 */
function readAwaited(value) {
  if (value === undefined || value === null) return null
  if (!isMap(value) || typeof value.type !== 'string' || value.type === '') {
    invalidParams('awaited must be null or a map with a non-empty string type and data')
  }
  return Object.freeze({ type: /** @type {Awaited['type']} */ (value.type), data: value.data ?? null })
}

/**
 * `hook`: null, or the await hook to run instead of the step's handler, `{function, kind}`.
 * @param {unknown} value
 * @returns {HookCall | null}
 */
function readHook(value) {
  if (value === undefined || value === null) return null
  if (!isMap(value)) invalidParams('hook must be null or a map {function, kind}')
  if (typeof value.function !== 'string' || value.function === '') invalidParams('hook.function must be a non-empty string')
  if (typeof value.kind !== 'string' || !HOOK_KINDS.includes(value.kind)) {
    invalidParams("hook.kind must be 'register', 'resolve' or 'timeout'")
  }
  return { function: value.function, kind: /** @type {HookCall['kind']} */ (value.kind) }
}

/**
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
function isMap(value) {
  if (typeof value !== 'object' || value === null) return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/**
 * @param {string} reason names the key, never echoes its value (it may be a secret: env)
 * @returns {never}
 */
function invalidParams(reason) {
  throw new ProtocolError(ErrorCode.INVALID_PARAMS, `execute: ${reason}`)
}

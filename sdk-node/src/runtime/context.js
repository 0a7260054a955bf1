/**
 * The `ctx` a handler gets (`RunContext` in index.d.ts): the job's ids, its AbortSignal, and the
 * job-scoped host methods of docs/protocol.md (state, emit, log, flow, heartbeat, progress,
 * publish, http).
 *
 * Arguments are checked here, before anything is sent, so a mistake is a TypeError or RangeError
 * at the line that made it; what the host refuses comes back as a rejected promise with a
 * `WorkerError` carrying the protocol's `code`. `emit` is a notification when the host sent the
 * step's declared `emits` with the job: everything the host would refuse is refused here, and the
 * emit leaves ahead of the job's answer (one ordered send queue) without waiting for a reply. Once the job has ended (answered, cancelled, timed
 * out) the context refuses further calls locally: the host would answer -32003 anyway, and a
 * stray call from a reused child's previous job must not reach the next one.
 *
 * @typedef {import('../../index.js').RunContext} RunContext
 * @typedef {import('../rpc.js').Peer} Peer
 * @typedef {{run_id: string, flow: string, step: string, attempt: number, max_attempts: number,
 *   idempotency_key: string}} JobIds
 */

import { NAME_PATTERN } from '../config.js'
import { WorkerError } from '../errors.js'
import { formatValue } from '../format.js'
import { encodeMessage, notification } from '../protocol.js'
import { createActions } from './actions.js'
import { assertSendable } from './values.js'

export const MAX_STATE_KEY_LENGTH = 256

/** JavaScript's `warn` is `warning` on the wire, as in Python's logging. */
const WIRE_LEVELS = /** @type {const} */ ({ debug: 'debug', info: 'info', warn: 'warning', error: 'error' })

/**
 * @param {JobIds} job
 * @param {Peer} peer
 * @param {AbortSignal} signal
 * @param {{awaited?: RunContext['awaited'], hook?: RunContext['hook'],
 *   traceparent?: RunContext['traceparent'], emits?: string[] | null}} [extra] how the step's
 *   awaitBefore resolved; the kind of await hook this job runs (then `emit` is refused); the
 *   host's trace context; the event names the step declares (null: the host answers each emit)
 * @returns {{ctx: RunContext, end: () => void}} `end()` once the job is answered
 */
export function createRunContext(job, peer, signal, { awaited = null, hook = null, traceparent = null, emits = null } = {}) {
  let ended = false
  const stepLabel = `${job.flow}.${job.step} (run ${job.run_id})`

  /**
   * @param {string} method
   * @param {Record<string, unknown>} params
   * @returns {Promise<any>}
   */
  const call = (method, params) =>
    ended ? Promise.reject(jobEnded(method, stepLabel)) : peer.call(method, params)

  /**
   * Fire-and-forget, in order with the calls; a failure to send is reported on stderr (which the
   * host reads into the run's log), never thrown into the handler.
   * @param {string} method
   * @param {Record<string, unknown>} params
   */
  const notify = (method, params) => {
    if (ended) {
      process.stderr.write(`flowhost worker: ${method} after ${stepLabel} ended, not sent: ${formatValue(params)}\n`)
      return
    }
    peer.notify(method, params).catch((/** @type {Error} */ error) => {
      process.stderr.write(`flowhost worker: could not send ${method}: ${error.message}\n`)
    })
  }

  /** @param {keyof typeof WIRE_LEVELS} level */
  const logAt = (level) => (/** @type {unknown} */ message, /** @type {unknown} */ fields) => {
    const params = { level: WIRE_LEVELS[level], message: logMessage(message), fields: logFields(fields, level) }
    notify('log', params)
  }

  /** @type {RunContext} */
  const ctx = {
    runId: job.run_id,
    flowName: job.flow,
    stepName: job.step,
    attempt: job.attempt,
    maxAttempts: job.max_attempts,
    idempotencyKey: job.idempotency_key,
    signal,
    awaited,
    hook,
    traceparent,
    state: Object.freeze({
      /** @type {(key: string, defaultValue?: unknown) => Promise<any>} */
      async get(key, defaultValue = null) {
        const found = await call('state.get', { key: stateKey(key, 'state.get') })
        return found?.found ? found.value : defaultValue
      },
      async set(/** @type {string} */ key, /** @type {unknown} */ value) {
        const checkedKey = stateKey(key, 'state.set')
        assertSendable(value, `state value '${checkedKey}'`, { jsonData: true })
        await call('state.set', { key: checkedKey, value: value === undefined ? null : value })
      },
      async delete(/** @type {string} */ key) {
        const answer = await call('state.delete', { key: stateKey(key, 'state.delete') })
        return expectField(answer, 'deleted', 'boolean', 'state.delete')
      },
      async list() {
        const answer = await call('state.list', {})
        const keys = expectField(answer, 'keys', 'object', 'state.list')
        if (!Array.isArray(keys)) throw new WorkerError('the host answered state.list without a list of keys')
        return /** @type {string[]} */ (keys)
      },
    }),
    logger: Object.freeze({ debug: logAt('debug'), info: logAt('info'), warn: logAt('warn'), error: logAt('error') }),
    async emit(name, payload = null) {
      if (hook !== null) throw hookCannotEmit(hook, job.step)
      checkName(name, 'emit: the event name')
      assertSendable(payload, `the payload of '${name}'`, { jsonData: true })
      const params = { name, payload }
      if (emits === null) {
        await call('emit', params)
        return
      }
      if (ended) throw jobEnded('emit', stepLabel)
      if (!emits.includes(name)) {
        throw new RangeError(`step '${job.step}' emits '${name}' but declares emits=[${emits.join(', ') || 'nothing'}]`)
      }
      const frame = encodeMessage(notification('emit', params))
      if (frame.length > peer.maxFrame) {
        throw new RangeError(`the payload of '${name}' is too large: ${frame.length} bytes encoded, the host takes frames of at most ${peer.maxFrame}`)
      }
      // Resolves once ZeroMQ took the frame: a host that reads slowly slows the step down (the
      // socket's high-water mark), it never loses the emit.
      await peer.sendFrame(frame)
    },
    flow: Object.freeze({
      async start(/** @type {string} */ flowName, /** @type {unknown} */ input = null, options = {}) {
        checkName(flowName, 'flow.start: the flow name')
        assertSendable(input, `the input of flow '${flowName}'`, { jsonData: true })
        const given = checkOptions(options, 'flow.start', Object.keys(START_OPTIONS))
        /** @type {Record<string, unknown>} */
        const params = { flow: flowName, input }
        for (const [option, [wire, kind]] of Object.entries(START_OPTIONS)) {
          const value = given[option]
          if (value === undefined) continue
          const what = `flow.start: ${option}`
          params[wire] = kind === 'key' ? nonEmptyString(value, what) : kind === 'seconds' ? seconds(value, what) : integer(value, what)
        }
        const answer = await call('flow.start', params)
        return { runId: expectField(answer, 'run_id', 'string', 'flow.start'), flowName }
      },
      async cancel(/** @type {string | undefined} */ runId) {
        /** @type {Record<string, unknown>} */
        const params = {}
        if (runId !== undefined) params.run_id = nonEmptyString(runId, 'flow.cancel: runId')
        return expectField(await call('flow.cancel', params), 'canceled', 'boolean', 'flow.cancel')
      },
      async isRunning(/** @type {string | undefined} */ flowName, options = {}) {
        /** @type {Record<string, unknown>} */
        const params = {}
        if (flowName !== undefined) params.flow = checkName(flowName, 'flow.isRunning: the flow name')
        const { runId, excludeRunIds } = checkOptions(options, 'flow.isRunning', ['runId', 'excludeRunIds'])
        if (runId !== undefined) params.run_id = nonEmptyString(runId, 'flow.isRunning: runId')
        if (excludeRunIds !== undefined) params.exclude_run_ids = runIdList(excludeRunIds, 'flow.isRunning')
        return expectField(await call('flow.is_running', params), 'running', 'boolean', 'flow.isRunning')
      },
      async running(/** @type {string | undefined} */ flowName, options = {}) {
        /** @type {Record<string, unknown>} */
        const params = {}
        if (flowName !== undefined) params.flow = checkName(flowName, 'flow.running: the flow name')
        const { excludeRunIds } = checkOptions(options, 'flow.running', ['excludeRunIds'])
        params.exclude_run_ids = excludeRunIds === undefined ? [] : runIdList(excludeRunIds, 'flow.running')
        const runs = expectField(await call('flow.running', params), 'runs', 'object', 'flow.running')
        if (!Array.isArray(runs)) throw new WorkerError('the host answered flow.running without a list of runs')
        return runs.map((run) => camelCaseKeys(run))
      },
      async stats(/** @type {string | undefined} */ flowName) {
        /** @type {Record<string, unknown>} */
        const params = {}
        if (flowName !== undefined) params.flow = checkName(flowName, 'flow.stats: the flow name')
        const answer = await call('flow.stats', params)
        if (typeof answer !== 'object' || answer === null || !('stats' in answer)) {
          throw new WorkerError("the host answered flow.stats without 'stats'")
        }
        const { stats } = /** @type {{stats: unknown}} */ (answer)
        return stats === null ? null : camelCaseKeys(stats)
      },
    }),
    ...createActions(call),
    heartbeat() {
      notify('heartbeat', {})
    },
    progress(value, message = null) {
      if (typeof value !== 'number') throw new TypeError(`progress: value must be a number from 0 to 1 (got ${formatValue(value)})`)
      if (!(value >= 0 && value <= 1)) throw new RangeError(`progress: value must be from 0 to 1 (got ${value})`)
      if (message !== null && typeof message !== 'string') {
        throw new TypeError(`progress: message must be a string or null (got ${formatValue(message)})`)
      }
      notify('progress', { value, message })
    },
  }
  return { ctx: Object.freeze(ctx), end: () => { ended = true } }
}

/**
 * @param {string} method
 * @param {string} stepLabel
 */
function jobEnded(method, stepLabel) {
  return new WorkerError(`${method}: the job has ended (${stepLabel} already finished, was cancelled or timed out)`)
}

/**
 * @param {string} hook
 * @param {string} step
 */
export function hookCannotEmit(hook, step) {
  return new WorkerError(
    `ctx.emit is not available in an await hook (the ${hook} hook of step '${step}'): hooks cannot emit events; emit from the step itself`,
  )
}

/**
 * @param {unknown} key
 * @param {string} method
 * @returns {string}
 */
function stateKey(key, method) {
  if (typeof key !== 'string') throw new TypeError(`${method}: a state key must be a string (got ${formatValue(key)})`)
  if (key.length === 0 || key.length > MAX_STATE_KEY_LENGTH) {
    throw new RangeError(`${method}: a state key must be 1 to ${MAX_STATE_KEY_LENGTH} characters (got ${key.length})`)
  }
  return key
}

/**
 * @param {unknown} name
 * @param {string} what
 * @returns {string}
 */
function checkName(name, what) {
  if (typeof name !== 'string') throw new TypeError(`${what} must be a string (got ${formatValue(name)})`)
  if (!NAME_PATTERN.test(name)) {
    throw new RangeError(`${what} must be a non-empty name of letters, digits and _ . : - (got ${formatValue(name)})`)
  }
  return name
}

/**
 * @param {unknown} value
 * @param {string} what
 * @returns {string}
 */
function nonEmptyString(value, what) {
  if (typeof value !== 'string') throw new TypeError(`${what} must be a string (got ${formatValue(value)})`)
  if (value === '') throw new RangeError(`${what} must not be empty`)
  return value
}

/**
 * @param {unknown} ids
 * @param {string} method
 */
function runIdList(ids, method) {
  if (!Array.isArray(ids)) {
    throw new TypeError(`${method}: excludeRunIds must be an array of run ids (got ${formatValue(ids)})`)
  }
  return ids.map((id, index) => nonEmptyString(id, `${method}: excludeRunIds[${index}]`))
}

/**
 * `ctx.flow.start` options → their `flow.start` param and kind. Durations are seconds, as on the
 * wire and in `RetryRequested`.
 * @type {Record<string, [string, 'key' | 'seconds' | 'integer']>}
 */
const START_OPTIONS = {
  idempotencyKey: ['idempotency_key', 'key'],
  priority: ['priority', 'integer'],
  delay: ['delay', 'seconds'],
  dedupeKey: ['dedupe_key', 'key'],
  dedupeWindow: ['dedupe_window', 'seconds'],
  debounceKey: ['debounce_key', 'key'],
  debounceWindow: ['debounce_window', 'seconds'],
}

/**
 * @param {unknown} value
 * @param {string} what
 * @returns {number}
 */
function seconds(value, what) {
  if (typeof value !== 'number') throw new TypeError(`${what} must be a number of seconds (got ${formatValue(value)})`)
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${what} must be a finite number of seconds >= 0 (got ${value})`)
  return value
}

/**
 * @param {unknown} value
 * @param {string} what
 * @returns {number}
 */
function integer(value, what) {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new TypeError(`${what} must be a whole number (got ${formatValue(value)})`)
  }
  return value
}

/**
 * The host's snake_case keys (`run_id`, `started_at`) as JavaScript's camelCase (`runId`, …).
 * @param {unknown} value
 * @returns {any}
 */
function camelCaseKeys(value) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new WorkerError(`the host answered with ${formatValue(value)} where a map was expected`)
  }
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [key.replace(/_([a-z])/g, (_match, letter) => letter.toUpperCase()), item]),
  )
}

/**
 * @param {unknown} options
 * @param {string} method
 * @param {string[]} known
 * @returns {Record<string, unknown>}
 */
function checkOptions(options, method, known) {
  if (options === undefined || options === null) return {}
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${method}: options must be an object (got ${formatValue(options)})`)
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw new TypeError(`${method}: unknown option '${key}' (known: ${known.join(', ')})`)
  }
  return /** @type {Record<string, unknown>} */ (options)
}

/**
 * @param {unknown} message
 * @returns {string}
 */
function logMessage(message) {
  if (typeof message === 'string') return message
  if (message instanceof Error) return message.stack ?? `${message.name}: ${message.message}`
  return formatValue(message)
}

/**
 * @param {unknown} fields
 * @param {string} level
 * @returns {Record<string, unknown>}
 */
function logFields(fields, level) {
  if (fields === undefined || fields === null) return {}
  if (typeof fields !== 'object' || Array.isArray(fields)) {
    throw new TypeError(`logger.${level}: fields must be an object such as { orderId: 42 } (got ${formatValue(fields)})`)
  }
  assertSendable(fields, `the fields of a log line`, { jsonData: true })
  return /** @type {Record<string, unknown>} */ (fields)
}

/**
 * A field of the host's answer, of the type the protocol says; else a WorkerError (the host broke
 * the contract, which the handler should see rather than a wrong value).
 * @param {unknown} answer
 * @param {string} field
 * @param {'boolean' | 'string' | 'object'} type
 * @param {string} method
 * @returns {any}
 */
function expectField(answer, field, type, method) {
  const value = /** @type {Record<string, unknown> | null} */ (answer)?.[field]
  if (typeof value !== type || value === null) {
    throw new WorkerError(`the host answered ${method} without a ${type} '${field}'`)
  }
  return value
}

/**
 * Call a step handler or an await hook in a test, without a host: a `ctx` whose state, logs and
 * emits live in memory, to assert on.
 *
 * ```js
 * import { createTestContext } from '@flowhost/worker/testing'
 * import charge from '../functions/charge.js'
 *
 * const { ctx, emitted, state } = createTestContext({ stepName: 'charge' })
 * await charge({ 'order.validated': { id: 'A-1' } }, ctx)
 * assert.deepEqual(emitted, [{ name: 'order.charged', payload: { id: 'A-1' } }])
 * ```
 *
 * `awaited` is what the step's awaitBefore resolved with (`ctx.awaited`); `hook: 'register'`
 * (or `'resolve'`, `'timeout'`) gives the context of an await hook, where `ctx.emit` is refused
 * as in a real run. The Python SDK's twin is `flowhost_worker.testing.context_for`.
 *
 * @typedef {import('../index.js').RunContext} RunContext
 * @typedef {import('../testing.js').TestContextOptions} TestContextOptions
 * @typedef {import('../testing.js').TestContext} TestContext
 */

import { randomUUID } from 'node:crypto'

import { createActions } from './runtime/actions.js'
import { hookCannotEmit } from './runtime/context.js'

const HOOK_KINDS = ['register', 'resolve', 'timeout']

/**
 * @param {TestContextOptions} [options]
 * @returns {TestContext}
 */
export function createTestContext(options = {}) {
  const {
    runId = randomUUID(),
    flowName = 'test',
    stepName = 'step',
    attempt = 1,
    maxAttempts = 1,
    awaited = null,
    hook = null,
    traceparent = null,
  } = options
  if (awaited !== null && (typeof awaited !== 'object' || typeof awaited.type !== 'string')) {
    throw new TypeError('awaited must be { type, data } or null')
  }
  if (hook !== null && !HOOK_KINDS.includes(hook)) {
    throw new RangeError(`hook must be one of ${HOOK_KINDS.join(', ')} or null (got ${String(hook)})`)
  }
  const state = new Map(Object.entries(options.state ?? {}))
  /** @type {TestContext['emitted']} */
  const emitted = []
  /** @type {TestContext['logs']} */
  const logs = []
  /** @type {TestContext['started']} */
  const started = []
  /** @type {Map<string, string>} */
  const startKeys = new Map()
  /** @type {TestContext['published']} */
  const published = []
  /** @type {TestContext['requests']} */
  const requests = []
  // What the host would answer for ctx.publish and ctx.http; the arguments are checked by the
  // same code as in a child.
  const actions = createActions(async (method, params) => {
    if (method === 'http.request') {
      requests.push(params)
      if (options.http === undefined) throw new Error('ctx.http in a test: pass createTestContext({ http: (request) => response })')
      const answer = await options.http(params)
      const status = answer.status ?? 200
      return { status, ok: status >= 200 && status < 300, headers: answer.headers ?? {}, body: answer.body ?? '', json: answer.json ?? null }
    }
    published.push({ kind: method === 'publish.mqtt' ? 'mqtt' : 'amqp', params })
    const size = /** @type {Uint8Array} */ (params.payload ?? params.body).length
    return method === 'publish.mqtt'
      ? { connector: params.connector, topic: params.topic, qos: params.qos, retain: params.retain, size }
      : { connector: params.connector, exchange: params.exchange, routing_key: params.routing_key, size, message_id: params.message_id ?? null, routed: true }
  })
  /** @param {string} level */
  const log = (level) => (/** @type {string} */ message, /** @type {Record<string, unknown>} */ fields = {}) => {
    logs.push({ level, message, fields })
  }

  /** @type {RunContext} */
  const ctx = {
    runId,
    flowName,
    stepName,
    attempt,
    maxAttempts,
    idempotencyKey: `${runId}:${stepName}`,
    signal: new AbortController().signal,
    awaited: awaited === null ? null : Object.freeze({ type: awaited.type, data: awaited.data ?? null }),
    hook,
    traceparent,
    state: {
      /** @param {string} key @param {unknown} [defaultValue] @returns {Promise<any>} */
      async get(key, defaultValue = null) {
        return state.has(key) ? state.get(key) : defaultValue
      },
      async set(key, value) {
        state.set(key, value)
      },
      async delete(key) {
        return state.delete(key)
      },
      async list() {
        return [...state.keys()].sort()
      },
    },
    logger: { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') },
    async emit(name, payload = null) {
      if (hook !== null) throw hookCannotEmit(hook, stepName)
      emitted.push({ name, payload })
    },
    ...actions,
    heartbeat() {},
    progress() {},
    flow: {
      async start(name, input = null, startOptions = {}) {
        // A start key seen before for the flow returns its run, as the host does within the
        // key's window (windows are not modelled).
        const { idempotencyKey, dedupeKey, debounceKey } = startOptions ?? {}
        const keyed = idempotencyKey ?? dedupeKey ?? debounceKey
        const key = keyed === undefined ? undefined : JSON.stringify([name, idempotencyKey, dedupeKey, debounceKey])
        const known = key === undefined ? undefined : startKeys.get(key)
        if (known !== undefined) return { runId: known, flowName: name }
        const runId = randomUUID()
        if (key !== undefined) startKeys.set(key, runId)
        started.push({ flowName: name, input, options: { ...startOptions } })
        return { runId, flowName: name }
      },
      async cancel() {
        return true
      },
      async isRunning() {
        return false
      },
      async running(/** @type {string | undefined} */ name) {
        return (options.running ?? []).filter((run) => name === undefined || run.flow === name)
      },
      async stats(/** @type {string | undefined} */ name) {
        return (options.stats ?? {})[name ?? flowName] ?? null
      },
    },
  }
  return { ctx, state, emitted, logs, started, published, requests }
}

/**
 * An in-memory RunContext for calling a handler in a test, recording what it did.
 * @typedef {import('@flowhost/worker').RunContext} RunContext
 * @typedef {{level: string, message: string, fields: Record<string, unknown>}} LogLine
 */

/**
 * @param {{runId?: string, flowName?: string, stepName?: string, attempt?: number,
 *          maxAttempts?: number, state?: Record<string, unknown>}} [options]
 */
export function fakeContext(options = {}) {
  const { runId = 'run-1', flowName = 'orders', stepName = 'step', attempt = 1, maxAttempts = 1 } = options
  const state = new Map(Object.entries(options.state ?? {}))
  /** @type {{name: string, payload: unknown}[]} */
  const emitted = []
  /** @type {LogLine[]} */
  const logs = []
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
    async emit(name, payload) {
      emitted.push({ name, payload })
    },
    heartbeat() {},
    progress() {},
    flow: {
      async start(name) {
        return { runId: 'run-2', flowName: name }
      },
      async cancel() {
        return true
      },
      async isRunning() {
        return false
      },
    },
  }
  return { ctx, state, emitted, logs }
}

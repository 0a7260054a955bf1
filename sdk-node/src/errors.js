/**
 * Errors a step function raises or meets. Each one that crosses the host ⇄ child boundary has
 * `toJSON()` and a static `fromJSON()`, so it arrives on the other side with the same fields.
 *
 * Mirrors `flowhost_worker.errors` in the Python SDK (`WorkerError`, `StepConfigError`,
 * `RetryRequested`).
 */

/** A flowhost step function, or its declaration, failed. The root of this package's errors. */
export class WorkerError extends Error {}

/**
 * An action out of the step (`ctx.publish.*`, `ctx.http`) failed: the broker or the server could
 * not be reached, did not confirm, or timed out. The message says which; it never holds a secret.
 * The Python SDK's `ActionError`.
 */
export class ActionError extends WorkerError {}

/**
 * A function's `config` is invalid. `file` and `field` say where; the message names both, e.g.
 * `functions/charge.js: flow.step: must be a non-empty name ... (got '')`.
 */
export class ConfigError extends WorkerError {
  /**
   * @param {string} reason what is wrong with the field, e.g. `must be at least 1 (got 0)`
   * @param {{file?: string | undefined, field: string}} where
   */
  constructor(reason, { file, field }) {
    super(`${file ?? '<config>'}: ${field}: ${reason}`)
    /** The function file the config came from, if known. */
    this.file = file
    /** The path of the offending field inside the config, e.g. `flow.subscribes`. */
    this.field = field
    /** The message without the file and field. */
    this.reason = reason
  }

  /** @returns {import('../index.js').ConfigErrorJSON} */
  toJSON() {
    return {
      type: 'ConfigError',
      file: this.file ?? null,
      field: this.field,
      reason: this.reason,
      message: this.message,
    }
  }

  /**
   * @param {{type?: string, file?: string | null, field: string, reason: string}} data
   * @returns {ConfigError}
   */
  static fromJSON(data) {
    expectSerialized(data, 'ConfigError')
    return new ConfigError(String(data.reason), {
      file: data.file ?? undefined,
      field: String(data.field),
    })
  }
}

/**
 * The step asks to be tried again after `delay` seconds. The attempt counts against the step's
 * `attempts`; the delay replaces the configured backoff. Same fields as the Python SDK's
 * `RetryRequested(delay, reason)` — note `delay` is in seconds, like there.
 */
export class RetryRequested extends WorkerError {
  /**
   * @param {number} [delay] seconds to wait before the next attempt, finite and >= 0
   * @param {string} [reason] why; shown in the run's history
   */
  constructor(delay = 0, reason = '') {
    if (typeof delay !== 'number') {
      throw new TypeError(`RetryRequested delay must be a number of seconds (got ${typeof delay})`)
    }
    if (!Number.isFinite(delay) || delay < 0) {
      throw new RangeError(`RetryRequested delay must be a finite number >= 0 (got ${delay})`)
    }
    if (typeof reason !== 'string') {
      throw new TypeError(`RetryRequested reason must be a string (got ${typeof reason})`)
    }
    super(reason || `retry requested in ${delay}s`)
    /** Seconds to wait before the next attempt. */
    this.delay = delay
    /** Why the step wants another attempt; may be empty. */
    this.reason = reason
  }

  /** @returns {import('../index.js').RetryRequestedJSON} */
  toJSON() {
    return { type: 'RetryRequested', delay: this.delay, reason: this.reason, message: this.message }
  }

  /**
   * Rebuild from `toJSON()` output (or the Python SDK's `to_dict()`, which has no `message`).
   * @param {{type?: string, delay?: number, reason?: string}} data
   * @returns {RetryRequested}
   */
  static fromJSON(data) {
    expectSerialized(data, 'RetryRequested')
    return new RetryRequested(data.delay ?? 0, data.reason ?? '')
  }
}

// `name` on the prototype: correct in stacks and `String(error)`, not an own enumerable field.
for (const ErrorClass of [WorkerError, ConfigError, RetryRequested]) {
  Object.defineProperty(ErrorClass.prototype, 'name', {
    value: ErrorClass.name,
    writable: true,
    configurable: true,
  })
}

/**
 * @param {unknown} data
 * @param {string} type
 * @returns {asserts data is Record<string, any>}
 */
function expectSerialized(data, type) {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new TypeError(`${type}.fromJSON expects an object`)
  }
  if ('type' in data && data.type !== type) {
    throw new TypeError(`${type}.fromJSON got a serialized ${String(data.type)}`)
  }
}

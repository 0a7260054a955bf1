/**
 * One `execute`: load the handler, run it with its ctx, and settle on the first of its result,
 * its error, a `cancel`, the job's own deadline, or an uncaught exception. Whatever comes first
 * is the answer; the handler may still be running after that (JavaScript cannot stop it), which
 * is why the child exits after a cancel, a timeout or a crash.
 *
 * @typedef {import('./execute-params.js').ExecuteParams} ExecuteParams
 * @typedef {import('../rpc.js').Peer} Peer
 * @typedef {'result' | 'failed' | 'cancelled' | 'timed out' | 'crashed'} OutcomeKind
 * @typedef {{kind: OutcomeKind, value?: unknown, error?: unknown, reason?: string}} Outcome
 */

import { ErrorCode, ProtocolError } from '../protocol.js'
import { createRunContext } from './context.js'
import { cachedHandler, loadHandler } from './loader.js'
import { assertSendable, describeThrown } from './values.js'

export class Job {
  /**
   * @param {ExecuteParams} params
   * @param {Peer} peer
   */
  constructor(params, peer) {
    this.params = params
    this.controller = new AbortController()
    const { ctx, end } = createRunContext(params.job, peer, this.controller.signal, {
      awaited: params.awaited,
      hook: params.hook?.kind ?? null,
      traceparent: params.traceparent,
      emits: params.emits,
    })
    this.ctx = ctx
    this.endContext = end
    /** @type {Outcome | null} */
    this.outcome = null
    /** @type {(outcome: Outcome) => void} */
    this.resolveOutcome = () => {}
    /** @type {NodeJS.Timeout | undefined} */
    this.deadline = undefined
  }

  /**
   * Run the job; resolves with how it ended (never rejects).
   * @returns {Promise<Outcome>}
   */
  run() {
    const settled = new Promise((resolve) => { this.resolveOutcome = resolve })
    const { timeout } = this.params
    if (timeout !== null) {
      this.deadline = setTimeout(() => this.stop({ kind: 'timed out' }, 'TimeoutError'), timeout * 1000)
    }
    this.invoke().then(
      (value) => this.settle({ kind: 'result', value }),
      (error) => this.settle({ kind: 'failed', error }),
    )
    return /** @type {Promise<Outcome>} */ (settled)
  }

  /**
   * Load and call the handler (or the await hook the host named). With the file already imported
   * (a reused child) it is called synchronously, as the `execute` frame is dispatched.
   */
  async invoke() {
    const { job, input, env, hook } = this.params
    Object.assign(process.env, env) // before the file is loaded: it may read them at import
    const name = hook?.function ?? job.handler
    const handler = cachedHandler(job.file, name) ?? (await loadHandler(job.file, name))
    if (this.outcome) return undefined // cancelled while the file loaded
    return handler(input, this.ctx)
  }

  /** @param {string} reason the host's */
  cancel(reason) {
    this.stop({ kind: 'cancelled', reason }, 'AbortError')
  }

  /**
   * An uncaught exception or unhandled rejection while this job ran: it fails the job.
   * @param {unknown} error
   */
  crash(error) {
    this.settle({ kind: 'crashed', error })
  }

  /**
   * Settle with `outcome`, and fire `ctx.signal` so the handler can stop its work.
   * @param {Outcome} outcome
   * @param {'AbortError' | 'TimeoutError'} abortName
   */
  stop(outcome, abortName) {
    if (this.outcome) return
    this.settle(outcome)
    const message = outcome.kind === 'cancelled' ? `cancelled: ${outcome.reason}` : `timed out after ${this.params.timeout} s`
    this.controller.abort(new DOMException(message, abortName))
  }

  /** @param {Outcome} outcome */
  settle(outcome) {
    if (this.outcome) return
    this.outcome = outcome
    clearTimeout(this.deadline)
    this.endContext()
    this.resolveOutcome(outcome)
  }
}

/**
 * The `execute` answer of an outcome: `{result}`, or the ProtocolError to answer with.
 * @param {Outcome} outcome
 * @param {number | null} timeout seconds
 * @returns {{result: unknown}}
 */
export function answerFor(outcome, timeout) {
  switch (outcome.kind) {
    case 'result':
      try {
        assertSendable(outcome.value, 'result')
      } catch (error) {
        const message = `the handler's result cannot be sent: ${/** @type {Error} */ (error).message}`
        throw new ProtocolError(ErrorCode.STEP_FAILED, message, {
          data: { type: 'TypeError', message, stack: null, retry_delay: null },
        })
      }
      return { result: outcome.value === undefined ? null : outcome.value }
    case 'failed': {
      if (outcome.error instanceof ProtocolError && outcome.error.code === ErrorCode.HANDLER_NOT_LOADABLE) {
        throw outcome.error
      }
      const data = describeThrown(outcome.error)
      throw new ProtocolError(ErrorCode.STEP_FAILED, `${data.type}: ${data.message}`, { data })
    }
    case 'crashed': {
      const data = describeThrown(outcome.error)
      throw new ProtocolError(ErrorCode.STEP_FAILED, `uncaught exception while the step ran: ${data.type}: ${data.message}`, { data })
    }
    case 'cancelled':
      throw new ProtocolError(ErrorCode.CANCELLED, `cancelled: ${outcome.reason}`)
    default:
      throw new ProtocolError(ErrorCode.STEP_TIMED_OUT, `timed out after ${timeout} s`)
  }
}

/**
 * The Node child process of a step: `node [--max-old-space-size=MiB] src/runtime/child.js`, with
 * `FLOWHOST_ENDPOINT` and `FLOWHOST_WORKER_ID` in its environment and the functions directory as
 * its working directory (docs/protocol.md, "Starting a child").
 *
 * It says `hello`, then serves `execute` one at a time until the host says it was the `last`, or
 * `shutdown`, or the host goes away. Everything costly (zeromq's addon, the codec, the resolve
 * hook) is loaded before `hello`, so an `execute` reaches the handler without waiting for any.
 *
 * Exit statuses: 0 done or shut down, 1 an uncaught exception (after failing the job with it),
 * 70 the host went away, 71 the handshake was refused.
 */

import './register-hook.js'

import { readFileSync } from 'node:fs'

import { ErrorCode, PROTOCOL_VERSION, ProtocolError } from '../protocol.js'
import { ConnectionClosedError, Peer, RemoteError } from '../rpc.js'
import { DealerTransport, FLUSH_LINGER_MS } from './connection.js'
import { readExecuteParams } from './execute-params.js'
import { Job, answerFor } from './job.js'
import { EXPECTED_PARENT, startLiveness } from './liveness.js'

/** After its last answer, how long the child waits for the host's `shutdown` (its receipt). */
const ANSWER_ACK_TIMEOUT_MS = 10_000

export const ExitStatus = Object.freeze({ DONE: 0, CRASHED: 1, HOST_GONE: 70, HANDSHAKE_REFUSED: 71 })

/** How long the host may take to answer `hello` before the child gives up on it. */
const HELLO_TIMEOUT_MS = 30_000
/** How often the parent is checked while waiting for `hello`'s answer. */
const HELLO_PARENT_CHECK_MS = 100

const SDK_VERSION = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version

class ChildRuntime {
  /**
   * @param {string} endpoint
   * @param {string} workerId
   */
  constructor(endpoint, workerId) {
    this.transport = new DealerTransport(endpoint, workerId)
    this.peer = new Peer(this.transport)
    /** @type {Job | null} */
    this.job = null
    /** Set once the child has decided to exit: no new `execute` is taken. */
    this.exiting = false
    /** @type {number | undefined} the exit status waiting for the host's receipt */
    this.pendingExit = undefined
    /** @type {NodeJS.Timeout | undefined} */
    this.receiptTimer = undefined
    this.stopLiveness = () => {}

    this.peer.onRequest('execute', (params) => this.execute(params))
    this.peer.onNotification('cancel', (params) => this.job?.cancel(String(params.reason ?? 'no reason given')))
    this.peer.onNotification('shutdown', () => this.shutdown())
    this.peer.onNotification('heartbeat', () => {}) // a sign of life: Peer notes every frame
  }

  async start() {
    this.peer.serve().then((reason) => {
      if (!this.exiting) this.exitNow(ExitStatus.HOST_GONE, `the connection to the host failed: ${reason.message}`)
    })
    const { intervalMs, maxFrame } = await this.hello()
    this.peer.maxFrame = maxFrame
    this.stopLiveness = startLiveness({
      intervalMs,
      beat: () => { this.peer.notify('heartbeat').catch(() => {}) },
      lastHeard: () => this.peer.lastReceived,
      onHostGone: (reason) => this.exitNow(ExitStatus.HOST_GONE, `the host went away: ${reason}`),
    })
  }

  /** @returns {Promise<{intervalMs: number, maxFrame: number}>} */
  async hello() {
    const parent = EXPECTED_PARENT
    if (process.ppid !== parent) this.exitNow(ExitStatus.HOST_GONE, 'the parent process is gone')
    const watch = setInterval(() => {
      if (process.ppid !== parent) this.exitNow(ExitStatus.HOST_GONE, 'the parent process changed before the host answered hello')
    }, HELLO_PARENT_CHECK_MS)
    const timeout = setTimeout(() => {
      this.exitNow(ExitStatus.HOST_GONE, `the host did not answer hello within ${HELLO_TIMEOUT_MS / 1000} s`)
    }, HELLO_TIMEOUT_MS)
    try {
      const answer = /** @type {Record<string, unknown> | null} */ (await this.peer.call('hello', {
        protocol: PROTOCOL_VERSION,
        runtime: 'node',
        sdk_version: SDK_VERSION,
        pid: process.pid,
      }))
      const interval = answer?.heartbeat_interval
      const maxFrame = answer?.max_frame
      if (typeof interval !== 'number' || !Number.isFinite(interval) || interval <= 0 ||
          !Number.isSafeInteger(maxFrame) || /** @type {number} */ (maxFrame) <= 0) {
        return this.exitNow(ExitStatus.HANDSHAKE_REFUSED, 'protocol error: the answer to hello lacks a positive heartbeat_interval or max_frame')
      }
      return { intervalMs: interval * 1000, maxFrame: /** @type {number} */ (maxFrame) }
    } catch (error) {
      if (error instanceof RemoteError) {
        const supported = error.code === ErrorCode.VERSION_MISMATCH ? ` (the host supports ${JSON.stringify(error.data)})` : ''
        return this.exitNow(ExitStatus.HANDSHAKE_REFUSED, `the host refused hello: ${error.code} ${error.message}${supported}`)
      }
      const reason = error instanceof ConnectionClosedError ? error.message : String(error)
      return this.exitNow(ExitStatus.HOST_GONE, `hello failed: ${reason}`)
    } finally {
      clearInterval(watch)
      clearTimeout(timeout)
    }
  }

  /**
   * @param {Record<string, unknown>} params
   * @returns {Promise<{result: unknown}>}
   */
  execute(params) {
    if (this.exiting) throw new ProtocolError(ErrorCode.BUSY, 'this child is exiting and takes no new execute')
    if (this.job) throw new ProtocolError(ErrorCode.BUSY, 'an execute is already running in this child (one at a time)')
    const executeParams = readExecuteParams(params)
    const job = new Job(executeParams, this.peer)
    this.job = job
    return job.run().then(async (outcome) => {
      this.job = null
      // The host takes what is in the pipes when the answer arrives as all of the job's output,
      // without waiting for this process to exit: what is still queued is written first.
      const writing = outputWritten()
      if (writing) await writing
      // After a cancel, a timeout or a crash the handler may still be running: leave, don't reuse.
      const exitStatus = outcome.kind === 'crashed' ? ExitStatus.CRASHED
        : outcome.kind === 'cancelled' || outcome.kind === 'timed out' || executeParams.last ? ExitStatus.DONE
        : null
      if (exitStatus !== null) {
        this.exiting = true
        // A `last` job's answer waits for the host's receipt; after a cancel, a timeout or a
        // crash the host is ending this child anyway.
        if (outcome.kind === 'result' || outcome.kind === 'failed') this.awaitReceipt(exitStatus)
        else setImmediate(() => this.exitAfterFlush(exitStatus))
      }
      return answerFor(outcome, executeParams.timeout)
    })
  }

  /**
   * An uncaught exception or unhandled rejection fails the running job (then the child exits 1);
   * outside a job the child exits 1 at once, as Node would.
   * @param {unknown} error
   */
  uncaught(error) {
    if (this.job) {
      this.job.crash(error)
      return
    }
    const text = error instanceof Error ? error.stack ?? String(error) : String(error)
    if (this.exiting) {
      process.stderr.write(`flowhost worker: uncaught exception while exiting: ${text}\n`)
      return
    }
    this.exitNow(ExitStatus.CRASHED, `uncaught exception outside a job: ${text}`)
  }

  /**
   * Exit once the host confirms, with `shutdown`, that it read the last answer (or after
   * ANSWER_ACK_TIMEOUT_MS): a ZeroMQ connection closed while the host's side of it is full can
   * lose the frames still in flight.
   * @param {number} status
   */
  awaitReceipt(status) {
    this.pendingExit = status
    this.receiptTimer = setTimeout(() => this.exitAfterFlush(status), ANSWER_ACK_TIMEOUT_MS)
  }

  shutdown() {
    if (this.pendingExit !== undefined) {
      // The host has everything this child sent: nothing is left to flush.
      clearTimeout(this.receiptTimer)
      this.exitNow(this.pendingExit)
    } else if (!this.exiting) {
      this.exitNow(ExitStatus.DONE)
    }
  }

  /**
   * Exit once the answers already queued have left. The process ends on its own when nothing else
   * keeps it alive (ZeroMQ then waits for the flush, up to its linger); a handler's leftover
   * timers or sockets cannot hold it past the linger.
   * @param {number} status
   */
  exitAfterFlush(status) {
    this.exiting = true
    this.stopLiveness()
    process.exitCode = status
    this.transport.closeAfterFlush().finally(() => {
      setTimeout(() => process.exit(status), FLUSH_LINGER_MS).unref()
    })
  }

  /**
   * @param {number} status
   * @param {string} [reason] written to stderr, which the host keeps
   * @returns {never}
   */
  exitNow(status, reason) {
    this.exiting = true
    this.stopLiveness()
    if (reason) process.stderr.write(`flowhost worker: ${reason}\n`)
    this.transport.close()
    process.exit(status)
  }
}

/**
 * Resolves once what was written to stdout and stderr so far is in the pipes (Node writes to a
 * pipe asynchronously once the pipe is full); null when it already is.
 * @returns {Promise<void> | null}
 */
function outputWritten() {
  const pending = [process.stdout, process.stderr].filter(
    (stream) => stream.writableLength > 0 && !stream.writableEnded && !stream.destroyed,
  )
  if (pending.length === 0) return null
  // Writes complete in order: an empty one's callback comes once those before it are written.
  return Promise.all(pending.map((stream) => new Promise((resolve) => { stream.write('', () => resolve(undefined)) })))
    .then(() => undefined)
}

/**
 * @param {NodeJS.ProcessEnv} env
 * @returns {{endpoint: string, workerId: string}}
 */
function readEnvironment(env) {
  const endpoint = env.FLOWHOST_ENDPOINT
  const workerId = env.FLOWHOST_WORKER_ID
  if (!endpoint || !workerId) {
    process.stderr.write(
      'usage: FLOWHOST_ENDPOINT=ipc://... FLOWHOST_WORKER_ID=<id> node src/runtime/child.js\n' +
        '(the flowhost host starts this process; it is not run by hand)\n',
    )
    process.exit(2)
  }
  return { endpoint, workerId }
}

const { endpoint, workerId } = readEnvironment(process.env)
// The host owns shutdown: a Ctrl-C in its terminal reaches the whole process group, and the host
// decides what happens to running steps.
process.on('SIGINT', () => {})
// Function files import the SDK: loading it now (through the resolve hook, which this also
// warms up) takes about 8 ms off the first execute.
await import('@flowhost/worker')
const child = new ChildRuntime(endpoint, workerId)
process.on('uncaughtException', (error) => child.uncaught(error))
process.on('unhandledRejection', (reason) => child.uncaught(reason))
await child.start()

/**
 * A fake flowhost host for tests of the Node child runtime: a ZeroMQ ROUTER bound on `ipc://` in
 * a fresh 0700 temp dir, speaking the protocol through protocol.js, and `child.js` spawned as a
 * real child process with a scrubbed environment (as the host starts it).
 *
 * By default it answers `hello`, beats every `heartbeatInterval`, and answers the job-scoped
 * methods from `handlers` (state lives in `state`); every message the child sends is recorded.
 *
 * @typedef {import('../../src/protocol.js').Message} Message
 * @typedef {(params: Record<string, any>) => unknown} HostHandler returns the result, or throws
 *   a ProtocolError to answer with an error
 */

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { Router } from 'zeromq'

import {
  DEFAULT_MAX_FRAME,
  ErrorCode,
  ProtocolError,
  decodeFrame,
  encodeMessage,
  errorResponse,
  notification,
  request,
  result,
} from '../../src/protocol.js'

export const CHILD_SCRIPT = fileURLToPath(new URL('../../src/runtime/child.js', import.meta.url))
const WORKER_ID = 'node-test-1'

export class FakeHost {
  /**
   * @param {object} [options]
   * @param {string} [options.cwd] the functions directory (the child's working directory)
   * @param {number} [options.heartbeatInterval] seconds, announced in hello and used to beat
   * @param {boolean} [options.beat] whether the host sends heartbeats
   * @param {(params: Record<string, any>) => import('../../src/protocol.js').Result | import('../../src/protocol.js').ErrorResponse} [options.answerHello]
   *   instead of the normal answer (its id is replaced by hello's)
   * @param {Record<string, string>} [options.env] extra environment of the child
   */
  constructor({ cwd, heartbeatInterval = 0.2, beat = true, answerHello, env = {} } = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'fh-'), { encoding: 'utf8' }) // 0700, as the host's
    this.endpoint = `ipc://${join(this.dir, 'node.sock')}`
    this.heartbeatInterval = heartbeatInterval
    this.beat = beat
    this.answerHello = answerHello
    this.router = new Router({ linger: 0, sendHighWaterMark: 1000, receiveHighWaterMark: 1000 })
    /** @type {Message[]} every message the child sent, in order */
    this.received = []
    /** @type {{method: string, params: Record<string, any>}[]} job-scoped requests of the child */
    this.calls = []
    /** @type {Map<string, unknown>} */
    this.state = new Map()
    /** @type {Record<string, HostHandler>} */
    this.handlers = defaultHandlers(this)
    /** @type {Map<number, (message: Message) => void>} */
    this.waiting = new Map()
    /** @type {(() => void)[]} */
    this.listeners = []
    this.nextId = 1
    this.stdout = ''
    this.stderr = ''
    this.silent = false
    this.cwd = cwd
    this.env = env
    /** @type {NodeJS.Timeout | undefined} */
    this.beating = undefined
  }

  /** Bind, spawn the child, serve it. Resolves once the child said hello (or right away with answerHello). */
  async start() {
    await this.router.bind(this.endpoint)
    this.child = spawn(process.execPath, [CHILD_SCRIPT], {
      cwd: this.cwd ?? this.dir,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? this.dir,
        FLOWHOST_ENDPOINT: this.endpoint,
        FLOWHOST_WORKER_ID: WORKER_ID,
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.child.stdout?.setEncoding('utf8').on('data', (text) => { this.stdout += text })
    this.child.stderr?.setEncoding('utf8').on('data', (text) => { this.stderr += text })
    /** @type {Promise<{code: number | null, signal: NodeJS.Signals | null}>} */
    this.exited = new Promise((resolve) => {
      this.child?.on('exit', (code, signal) => resolve({ code, signal }))
    })
    void this.serve()
    await this.waitFor((message) => message.kind === 'request' && message.method === 'hello', 15_000)
    if (this.beat) {
      this.beating = setInterval(() => { if (!this.silent) void this.send(notification('heartbeat')) }, this.heartbeatInterval * 1000)
    }
    return this
  }

  async serve() {
    for (;;) {
      /** @type {Buffer[]} */
      let parts
      try {
        parts = await this.router.receive()
      } catch {
        return // closed
      }
      if (this.silent) continue
      const [routingId, frame] = parts
      if (routingId.toString() !== WORKER_ID) throw new Error(`unexpected routing id ${routingId}`)
      const message = decodeFrame(frame)
      this.received.push(message)
      this.dispatch(message)
      for (const listener of this.listeners.splice(0)) listener()
    }
  }

  /** @param {Message} message */
  dispatch(message) {
    if (message.kind === 'result' || message.kind === 'error') {
      const id = /** @type {number} */ (message.id)
      this.waiting.get(id)?.(message)
      this.waiting.delete(id)
      return
    }
    if (message.kind !== 'request') return
    if (message.method === 'hello') {
      const answer = this.answerHello?.(message.params) ??
        result(message.id, { protocol: 1, host_id: 'fake-host', heartbeat_interval: this.heartbeatInterval, max_frame: DEFAULT_MAX_FRAME })
      void this.send({ ...answer, id: message.id })
      return
    }
    this.calls.push({ method: message.method, params: message.params })
    const handler = this.handlers[message.method]
    try {
      if (!handler) throw new ProtocolError(ErrorCode.METHOD_NOT_FOUND, `unknown method '${message.method}'`)
      void this.send(result(message.id, handler(message.params)))
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error
      void this.send(errorResponse(message.id, error.code, error.message, error.data))
    }
  }

  /** @param {Message} message */
  send(message) {
    return this.router.send([WORKER_ID, encodeMessage(message)])
  }

  /**
   * Send a request to the child; resolves with its answer (a result or error message).
   * @param {string} method
   * @param {Record<string, unknown>} params
   * @returns {Promise<Message>}
   */
  request(method, params) {
    const id = this.nextId++
    const answered = new Promise((resolve) => this.waiting.set(id, resolve))
    void this.send(request(id, method, params))
    return /** @type {Promise<Message>} */ (answered)
  }

  /**
   * `execute` with a job for `file`; `params` overrides the defaults.
   * @param {string} file absolute path
   * @param {Record<string, unknown>} [params]
   * @param {Record<string, unknown>} [job]
   */
  execute(file, params = {}, job = {}) {
    const answered = this.request('execute', {
      job: {
        run_id: 'run-1',
        flow: 'orders',
        step: 'charge',
        attempt: 1,
        max_attempts: 3,
        idempotency_key: 'run-1:charge',
        file,
        handler: 'default',
        ...job,
      },
      input: null,
      timeout: null,
      ...params,
    })
    // As the host does: the receipt of a last answer, after which the child exits.
    // (A "busy" refusal ran nothing: it gets none.)
    if (params.last !== false) {
      answered.then((answer) => {
        const busy = answer.kind === 'error' && /** @type {any} */ (answer).error.code === ErrorCode.BUSY
        if (!busy) void this.send(notification('shutdown', {}))
      })
    }
    return answered
  }

  /**
   * The first message received (now or later) that matches.
   * @param {(message: Message) => boolean} predicate
   * @param {number} [timeoutMs]
   * @returns {Promise<Message>}
   */
  waitFor(predicate, timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a message; stderr: ${this.stderr}`)), timeoutMs)
      const check = () => {
        const found = this.received.find(predicate)
        if (found) {
          clearTimeout(timer)
          resolve(found)
        } else this.listeners.push(check)
      }
      check()
    })
  }

  /**
   * @param {string} method
   * @returns {Record<string, any>[]} params of the notifications `method` received so far
   */
  notifications(method) {
    return this.received.flatMap((message) => message.kind === 'notification' && message.method === method ? [message.params] : [])
  }

  /**
   * How the child exited, or a rejection if it takes longer than `timeoutMs`.
   * @param {number} [timeoutMs]
   */
  async exit(timeoutMs = 5000) {
    /** @type {NodeJS.Timeout | undefined} */
    let timer
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the child did not exit within ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs)
    })
    try {
      return await Promise.race([this.exited, late])
    } finally {
      clearTimeout(timer)
    }
  }

  /** Kill the child if it still runs, close the socket, remove the directory. */
  async close() {
    clearInterval(this.beating)
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL')
      await this.exited
    }
    this.router.close()
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/**
 * The job-scoped methods, answered as a host would, with state in `host.state`.
 * @param {FakeHost} host
 * @returns {Record<string, HostHandler>}
 */
function defaultHandlers(host) {
  return {
    'state.get': ({ key }) => ({ found: host.state.has(key), value: host.state.get(key) ?? null }),
    'state.set': ({ key, value }) => { host.state.set(key, value); return null },
    'state.delete': ({ key }) => ({ deleted: host.state.delete(key) }),
    'state.list': () => ({ keys: [...host.state.keys()].sort() }),
    emit: ({ name }) => {
      if (name === 'undeclared') throw new ProtocolError(ErrorCode.INVALID_PARAMS, "event 'undeclared' is not declared in emits")
      return null
    },
    'flow.start': () => ({ run_id: 'run-2' }),
    'flow.cancel': ({ run_id: runId }) => ({ canceled: runId !== 'ended-run' }),
    'flow.is_running': ({ flow }) => ({ running: flow === 'busy' }),
    'flow.running': ({ flow }) => ({
      runs: flow === 'idle' ? [] : [{
        run_id: 'run-5', flow: flow ?? 'orders', status: 'queued', started_at: '2030-01-01T00:00:00+00:00',
        step_count: 2, completed_steps: 0, parent_run_id: 'run-1',
      }],
    }),
    'flow.stats': ({ flow }) => ({
      stats: flow === 'never' ? null : { flow: flow ?? 'orders', total: 3, last_run_at: null },
    }),
  }
}

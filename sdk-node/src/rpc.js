/**
 * One side of a protocol connection: calls out, answers calls in, over any frame transport.
 *
 * The child runtime uses `Peer` over a ZeroMQ DEALER (`runtime/connection.js`); tests use an
 * in-memory pair (`memory-transport.js`). The transport only moves whole frames. Every frame
 * received is decoded and checked by `protocol.js`: a broken frame is answered with its error
 * code (with the request's id when it could be read), an error response is never answered, and
 * nothing the other side sends can stop the receive loop. Mirrors `flowhost_worker.rpc.Peer`.
 *
 * @typedef {import('./protocol.js').Params} Params
 * @typedef {import('./protocol.js').Message} Message
 * @typedef {import('./protocol.js').Request} Request
 * @typedef {import('./protocol.js').Notification} Notification
 *
 * @typedef {object} Transport moves whole frames
 * @property {(frame: Uint8Array) => Promise<void>} send
 * @property {() => Promise<Uint8Array>} receive rejects with a `ConnectionClosedError` once the
 *   other side is gone or the transport was closed, or with a `ProtocolError` for a message it
 *   found broken itself (which is answered, and receiving goes on)
 *
 * @typedef {(params: Params) => unknown} RequestHandler its return value (or what its Promise
 *   resolves to) is the result; a `ProtocolError` it throws is answered with that error's code
 * @typedef {(params: Params) => void} NotificationHandler runs as the frame arrives
 */

import { WorkerError } from './errors.js'
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
} from './protocol.js'

/** The other side answered a call with an error; `code`, `message` and `data` are its. */
export class RemoteError extends ProtocolError {}

/** The connection is gone: calls in flight and calls made afterwards fail with it. */
export class ConnectionClosedError extends WorkerError {}

for (const ErrorClass of [RemoteError, ConnectionClosedError]) {
  Object.defineProperty(ErrorClass.prototype, 'name', { value: ErrorClass.name, writable: true, configurable: true })
}

export class Peer {
  /**
   * @param {Transport} transport
   * @param {{maxFrame?: number, warn?: (message: string) => void}} [options] `maxFrame`: the
   *   largest frame accepted, in bytes; `warn`: where dropped frames and failed handlers are
   *   reported (default: stderr, which the host reads into the run's log)
   */
  constructor(transport, { maxFrame = DEFAULT_MAX_FRAME, warn = writeWarning } = {}) {
    this.transport = transport
    this.maxFrame = maxFrame
    this.warn = warn
    this.nextId = 1
    /** @type {Map<number, {resolve: (value: unknown) => void, reject: (error: Error) => void}>} */
    this.pending = new Map()
    /** @type {Map<string, RequestHandler>} */
    this.requestHandlers = new Map()
    /** @type {Map<string, NotificationHandler>} */
    this.notificationHandlers = new Map()
    /** @type {Error | null} why the connection closed, once it has */
    this.closedBy = null
    /** `performance.now()` when the last frame arrived: any frame shows the other side lives. */
    this.lastReceived = performance.now()
  }

  /**
   * @param {string} method
   * @param {RequestHandler} handler
   */
  onRequest(method, handler) {
    this.requestHandlers.set(method, handler)
  }

  /**
   * @param {string} method
   * @param {NotificationHandler} handler
   */
  onNotification(method, handler) {
    this.notificationHandlers.set(method, handler)
  }

  /**
   * Send a request and wait for its result. Rejects with a `RemoteError` if it is answered with an
   * error, a `ConnectionClosedError` if the connection closes first, and a `TypeError` if `params`
   * cannot be encoded.
   * @param {string} method
   * @param {Params} [params]
   * @returns {Promise<unknown>}
   */
  call(method, params = {}) {
    if (this.closedBy) return Promise.reject(this.closedBy)
    const id = this.nextId++
    /** @type {Uint8Array} */
    let frame
    try {
      frame = encodeMessage(request(id, method, params))
    } catch (error) {
      return Promise.reject(error) // a TypeError naming the value that cannot be sent
    }
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      this.transport.send(frame).catch((/** @type {Error} */ error) => {
        this.pending.delete(id)
        reject(error)
      })
    })
  }

  /**
   * Send a notification (no answer comes).
   * @param {string} method
   * @param {Params} [params]
   * @returns {Promise<void>}
   */
  notify(method, params = {}) {
    if (this.closedBy) return Promise.reject(this.closedBy)
    try {
      return this.transport.send(encodeMessage(notification(method, params)))
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * Send a message already encoded (`encodeMessage`): a notification whose size the sender checked
   * against `maxFrame`, say. Frames leave in the order they were handed to the transport.
   * @param {Uint8Array} frame
   * @returns {Promise<void>}
   */
  sendFrame(frame) {
    if (this.closedBy) return Promise.reject(this.closedBy)
    return this.transport.send(frame)
  }

  /**
   * Receive and dispatch frames until the transport closes; then fail the calls in flight.
   * Resolves with the reason the connection closed.
   * @returns {Promise<Error>}
   */
  async serve() {
    for (;;) {
      /** @type {Uint8Array} */
      let frame
      try {
        frame = await this.transport.receive()
      } catch (error) {
        if (error instanceof ProtocolError) {
          // The transport found the message broken (several ZeroMQ frames): answer, go on.
          this.warn(`refused a message: ${error.message}`)
          this.reply(error.toResponse())
          continue
        }
        const reason = error instanceof ConnectionClosedError
          ? error
          : new ConnectionClosedError(`the connection failed: ${error instanceof Error ? error.message : String(error)}`)
        this.close(reason)
        return reason
      }
      this.dispatch(frame)
    }
  }

  /**
   * Fail every call in flight, and every later one, with `reason`.
   * @param {Error} [reason]
   */
  close(reason = new ConnectionClosedError('the connection is closed')) {
    if (this.closedBy) return
    this.closedBy = reason
    for (const { reject } of this.pending.values()) reject(reason)
    this.pending.clear()
  }

  /** @param {Uint8Array} frame */
  dispatch(frame) {
    this.lastReceived = performance.now()
    /** @type {Message} */
    let message
    try {
      message = decodeFrame(frame, { maxFrame: this.maxFrame })
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error
      // Answered as JSON-RPC says, with the id if it could be read. An error response is never
      // answered in turn (see settle), so two peers cannot ping-pong broken frames.
      this.warn(`refused a frame of ${frame.length} bytes: ${error.message}`)
      this.reply(error.toResponse())
      return
    }
    switch (message.kind) {
      case 'request':
        this.answer(message)
        return
      case 'notification':
        this.handleNotification(message)
        return
      default:
        this.settle(message)
    }
  }

  /** @param {Notification} message */
  handleNotification(message) {
    const handler = this.notificationHandlers.get(message.method)
    if (!handler) {
      this.warn(`dropped an unknown notification '${message.method}'`)
      return
    }
    try {
      handler(message.params)
    } catch (error) {
      this.warn(`handling the notification '${message.method}' failed: ${describeError(error)}`)
    }
  }

  /**
   * Run the request's handler (synchronously up to its first `await`, so work starts as the frame
   * arrives) and send its result or error.
   * @param {Request} message
   */
  answer(message) {
    const handler = this.requestHandlers.get(message.method)
    if (!handler) {
      this.reply(errorResponse(message.id, ErrorCode.METHOD_NOT_FOUND, `unknown method '${message.method}'`))
      return
    }
    /** @type {Promise<unknown>} */
    let outcome
    try {
      outcome = Promise.resolve(handler(message.params))
    } catch (error) {
      outcome = Promise.reject(error)
    }
    outcome.then(
      (value) => this.reply(result(message.id, value)),
      (error) => this.reply(this.errorFor(message, error)),
    )
  }

  /**
   * @param {Request} message
   * @param {unknown} error
   */
  errorFor(message, error) {
    if (error instanceof ProtocolError) return errorResponse(message.id, error.code, error.message, error.data)
    this.warn(`handling '${message.method}' failed: ${describeError(error)}`)
    return errorResponse(message.id, ErrorCode.INTERNAL_ERROR, describeError(error))
  }

  /**
   * @param {import('./protocol.js').Result | import('./protocol.js').ErrorResponse} message
   */
  settle(message) {
    const call = message.id === null ? undefined : this.pending.get(message.id)
    if (!call) {
      this.warn(`dropped a response to no outstanding call (id ${message.id})`)
      return
    }
    this.pending.delete(/** @type {number} */ (message.id))
    if (message.kind === 'result') call.resolve(message.result)
    else {
      const { code, message: text, data } = message.error
      call.reject(new RemoteError(code, text, { id: message.id, data }))
    }
  }

  /**
   * Send a response. One that cannot be encoded becomes an internal error, so the caller still
   * gets an answer; one that cannot be sent is dropped (the asker is gone).
   * @param {Message} response
   * @returns {Promise<void>}
   */
  reply(response) {
    /** @type {Uint8Array} */
    let frame
    try {
      frame = encodeMessage(response)
    } catch (error) {
      const id = response.kind === 'result' || response.kind === 'error' ? response.id : null
      this.warn(`could not encode the answer to request ${id}: ${describeError(error)}`)
      frame = encodeMessage(errorResponse(id, ErrorCode.INTERNAL_ERROR, `the answer cannot be encoded: ${describeError(error)}`))
    }
    return this.transport.send(frame).catch((error) => {
      this.warn(`could not send an answer: ${describeError(error)}`)
    })
  }
}

/** @param {unknown} error */
function describeError(error) {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
}

/** @param {string} message */
function writeWarning(message) {
  process.stderr.write(`flowhost worker: ${message}\n`)
}

/**
 * An in-memory connection for a `Peer` (`MemoryTransport.pair()`): tests and tools swap it in
 * for ZeroMQ. Frames are copied on send, as a socket would.
 */

import { ConnectionClosedError } from './rpc.js'

/** One direction of the pair: frames waiting to be received, or receivers waiting for frames. */
class Channel {
  constructor() {
    /** @type {Uint8Array[]} */
    this.frames = []
    /** @type {{resolve: (frame: Uint8Array) => void, reject: (error: Error) => void}[]} */
    this.waiting = []
    this.closed = false
  }

  /** @param {Uint8Array} frame */
  put(frame) {
    if (this.closed) throw new ConnectionClosedError('the other end closed')
    const receiver = this.waiting.shift()
    if (receiver) receiver.resolve(frame)
    else this.frames.push(frame)
  }

  /** @returns {Promise<Uint8Array>} */
  take() {
    const frame = this.frames.shift()
    if (frame) return Promise.resolve(frame)
    if (this.closed) return Promise.reject(new ConnectionClosedError('the other end closed'))
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }))
  }

  close() {
    this.closed = true
    for (const receiver of this.waiting.splice(0)) receiver.reject(new ConnectionClosedError('the other end closed'))
  }
}

export class MemoryTransport {
  /**
   * @param {Channel} inbox
   * @param {Channel} outbox
   */
  constructor(inbox, outbox) {
    this.inbox = inbox
    this.outbox = outbox
  }

  /** @returns {[MemoryTransport, MemoryTransport]} two connected ends */
  static pair() {
    const left = new Channel()
    const right = new Channel()
    return [new MemoryTransport(left, right), new MemoryTransport(right, left)]
  }

  /** @param {Uint8Array} frame */
  async send(frame) {
    this.outbox.put(Uint8Array.prototype.slice.call(frame))
  }

  receive() {
    return this.inbox.take()
  }

  /** Both ends see the connection closed (frames already sent can still be received). */
  close() {
    this.inbox.close()
    this.outbox.close()
  }
}

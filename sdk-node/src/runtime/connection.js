/**
 * The child's end of the connection: a ZeroMQ DEALER on the host's ROUTER (docs/protocol.md,
 * "Transport"), as a frame transport for `Peer`.
 */

import { Dealer } from 'zeromq'

import { ErrorCode, ProtocolError } from '../protocol.js'
import { ConnectionClosedError } from '../rpc.js'

/** High-water marks each way: a flooding peer blocks on its own send. */
const HIGH_WATER_MARK = 1000
/**
 * How long the last answer may take to leave once the socket is closed. Linger is 0 otherwise
 * (a dead host must not keep the child alive); only the final flush waits, and only this long.
 */
export const FLUSH_LINGER_MS = 1000

export class DealerTransport {
  /**
   * @param {string} endpoint the host ROUTER's `ipc://` endpoint
   * @param {string} routingId this child's id, as the host spawned it
   */
  constructor(endpoint, routingId) {
    this.socket = new Dealer({
      routingId,
      linger: 0,
      sendHighWaterMark: HIGH_WATER_MARK,
      receiveHighWaterMark: HIGH_WATER_MARK,
    })
    this.socket.connect(endpoint)
    /**
     * zeromq allows one pending send per socket: sends queue here, in order, behind each other.
     * @type {Promise<void>}
     */
    this.lastSend = Promise.resolve()
  }

  /**
   * @param {Uint8Array} frame
   * @returns {Promise<void>}
   */
  send(frame) {
    const sent = this.lastSend.then(() => {
      if (this.socket.closed) throw new ConnectionClosedError('the connection to the host is closed')
      return this.socket.send(frame)
    })
    this.lastSend = sent.catch(() => {})
    return sent
  }

  /** @returns {Promise<Uint8Array>} */
  async receive() {
    /** @type {Buffer[]} */
    let parts
    try {
      parts = await this.socket.receive()
    } catch (error) {
      if (this.socket.closed) throw new ConnectionClosedError('the connection to the host is closed')
      throw error
    }
    if (parts.length !== 1) {
      throw new ProtocolError(ErrorCode.INVALID_REQUEST, `a message is one frame (got ${parts.length})`)
    }
    return parts[0]
  }

  /** Close now, dropping anything not yet sent. */
  close() {
    if (!this.socket.closed) this.socket.close()
  }

  /**
   * Close once every queued send is handed to ZeroMQ, which then has `FLUSH_LINGER_MS` to deliver
   * them (the process must not `exit()` before that: see runtime/exit.js).
   */
  async closeAfterFlush() {
    await this.lastSend
    if (this.socket.closed) return
    this.socket.linger = FLUSH_LINGER_MS
    this.socket.close()
  }
}

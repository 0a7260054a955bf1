// Peer over an in-memory transport pair: calls, notifications, broken frames, closing.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { MemoryTransport } from '../src/memory-transport.js'
import { ErrorCode, ProtocolError, decodeFrame, encodeMessage, notification } from '../src/protocol.js'
import { ConnectionClosedError, Peer, RemoteError } from '../src/rpc.js'

/** Two connected peers, serving; warnings collected. */
function connectedPeers() {
  const [leftEnd, rightEnd] = MemoryTransport.pair()
  /** @type {string[]} */
  const warnings = []
  const warn = (/** @type {string} */ message) => { warnings.push(message) }
  const left = new Peer(leftEnd, { warn })
  const right = new Peer(rightEnd, { warn })
  const served = Promise.all([left.serve(), right.serve()])
  return { left, right, leftEnd, rightEnd, warnings, served }
}

test('a call gets the result its handler returns, sync or async', async () => {
  const { left, right, leftEnd } = connectedPeers()
  right.onRequest('add', ({ a, b }) => /** @type {number} */ (a) + /** @type {number} */ (b))
  right.onRequest('later', async ({ value }) => ({ echoed: value }))
  assert.equal(await left.call('add', { a: 2, b: 3 }), 5)
  assert.deepEqual(await left.call('later', { value: [1, 'x'] }), { echoed: [1, 'x'] })
  leftEnd.close()
})

test('calls are numbered from 1 and several may be outstanding; answers match by id', async () => {
  const { left, right, leftEnd } = connectedPeers()
  /** @type {((value: unknown) => void)[]} */
  const release = []
  right.onRequest('wait', ({ n }) => new Promise((resolve) => { release[/** @type {number} */ (n)] = () => resolve(n) }))
  const first = left.call('wait', { n: 0 })
  const second = left.call('wait', { n: 1 })
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(left.nextId, 3)
  release[1](undefined)
  release[0](undefined)
  assert.deepEqual(await Promise.all([first, second]), [0, 1])
  leftEnd.close()
})

test('a ProtocolError thrown by a handler is answered with its code and data', async () => {
  const { left, right, leftEnd } = connectedPeers()
  right.onRequest('busy', () => { throw new ProtocolError(ErrorCode.BUSY, 'one at a time', { data: { running: 1 } }) })
  await assert.rejects(left.call('busy'), (error) => {
    assert.ok(error instanceof RemoteError)
    assert.equal(error.code, ErrorCode.BUSY)
    assert.equal(error.message, 'one at a time')
    assert.deepEqual(error.data, { running: 1 })
    return true
  })
  leftEnd.close()
})

test('any other failure of a handler is an internal error naming it; an unknown method is -32601', async () => {
  const { left, right, leftEnd, warnings } = connectedPeers()
  right.onRequest('broken', async () => { throw new RangeError('out of range') })
  await assert.rejects(left.call('broken'), { code: ErrorCode.INTERNAL_ERROR, message: 'RangeError: out of range' })
  await assert.rejects(left.call('nope'), { code: ErrorCode.METHOD_NOT_FOUND, message: "unknown method 'nope'" })
  assert.match(warnings.join('\n'), /handling 'broken' failed/)
  leftEnd.close()
})

test('a result that cannot be encoded is answered with an internal error, not silence', async () => {
  const { left, right, leftEnd } = connectedPeers()
  right.onRequest('fn', () => () => 1)
  await assert.rejects(left.call('fn'), { code: ErrorCode.INTERNAL_ERROR, message: /cannot encode a function/ })
  leftEnd.close()
})

test('notifications reach their handler; unknown ones and failing handlers are logged, not fatal', async () => {
  const { left, right, leftEnd, warnings } = connectedPeers()
  /** @type {unknown[]} */
  const seen = []
  right.onNotification('log', (params) => { seen.push(params) })
  right.onNotification('fails', () => { throw new Error('boom') })
  right.onRequest('ping', () => 'pong')
  await left.notify('unknown')
  await left.notify('fails')
  await left.notify('log', { message: 'hi' })
  assert.equal(await left.call('ping'), 'pong') // still serving
  assert.deepEqual(seen, [{ message: 'hi' }])
  assert.match(warnings.join('\n'), /unknown notification 'unknown'/)
  assert.match(warnings.join('\n'), /notification 'fails' failed: Error: boom/)
  leftEnd.close()
})

test('a broken request is answered with its error and id; a broken response is never answered', async () => {
  const [hostEnd, childEnd] = MemoryTransport.pair()
  /** @type {string[]} */
  const warnings = []
  const child = new Peer(childEnd, { warn: (message) => { warnings.push(message) } })
  void child.serve()

  await hostEnd.send(new Uint8Array([0xc1]))
  const parseError = decodeFrame(await hostEnd.receive())
  assert.equal(parseError.kind, 'error')
  assert.equal(parseError.kind === 'error' && parseError.id, null)
  assert.equal(parseError.kind === 'error' && parseError.error.code, ErrorCode.PARSE_ERROR)

  // A request whose method is a number, not a string: invalid, answered with its id.
  await hostEnd.send(Buffer.from([0x83, 0xa7, ...Buffer.from('jsonrpc'), 0xa3, ...Buffer.from('2.0'), 0xa2, ...Buffer.from('id'), 7, 0xa6, ...Buffer.from('method'), 5]))
  const answer = decodeFrame(await hostEnd.receive())
  assert.equal(answer.kind, 'error')
  assert.equal(answer.kind === 'error' && answer.id, 7)
  assert.equal(answer.kind === 'error' && answer.error.code, ErrorCode.INVALID_REQUEST)

  // An error response to no call, and a result to no call: logged and dropped.
  await hostEnd.send(encodeMessage({ kind: 'error', id: 99, error: { code: -32000, message: 'x' } }))
  await hostEnd.send(encodeMessage({ kind: 'result', id: 98, result: null }))
  await hostEnd.send(encodeMessage(notification('still-here')))
  await new Promise((resolve) => setImmediate(resolve))
  assert.equal(hostEnd.inbox.frames.length, 0)
  assert.match(warnings.join('\n'), /no outstanding call \(id 99\)/)
  assert.match(warnings.join('\n'), /no outstanding call \(id 98\)/)
  hostEnd.close()
})

test('a frame over maxFrame is answered -32004', async () => {
  const [hostEnd, childEnd] = MemoryTransport.pair()
  const child = new Peer(childEnd, { maxFrame: 64, warn: () => {} })
  void child.serve()
  await hostEnd.send(encodeMessage(notification('log', { message: 'x'.repeat(100) })))
  const answer = decodeFrame(await hostEnd.receive())
  assert.equal(answer.kind === 'error' && answer.error.code, ErrorCode.FRAME_TOO_LARGE)
  hostEnd.close()
})

test('calls in flight fail when the transport closes, and later calls fail at once', async () => {
  const { left, right, rightEnd, served } = connectedPeers()
  right.onRequest('never', () => new Promise(() => {}))
  const inFlight = left.call('never')
  await new Promise((resolve) => setImmediate(resolve))
  rightEnd.close()
  await assert.rejects(inFlight, ConnectionClosedError)
  const [leftReason] = await served
  assert.ok(leftReason instanceof ConnectionClosedError)
  await assert.rejects(left.call('again'), ConnectionClosedError)
  await assert.rejects(left.notify('again'), ConnectionClosedError)
})

test('params that cannot be encoded reject the call with a TypeError naming where', async () => {
  const { left, leftEnd } = connectedPeers()
  await assert.rejects(left.call('x', { value: Symbol('s') }), { name: 'TypeError', message: /a symbol at message\.params\.value/ })
  leftEnd.close()
})

test('lastReceived moves with every frame', async () => {
  const { left, right, leftEnd } = connectedPeers()
  right.onNotification('beat', () => {})
  const before = right.lastReceived
  await new Promise((resolve) => setTimeout(resolve, 5))
  await left.notify('beat')
  await new Promise((resolve) => setImmediate(resolve))
  assert.ok(right.lastReceived > before)
  leftEnd.close()
})

// ctx.publish and ctx.http as a handler sees them in a test context: the same argument checks and
// params as in a child (src/runtime/actions.js), answered in memory.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import { createTestContext } from '../src/testing.js'

describe('ctx.publish', () => {
  test('payloads go as bytes: JSON, text or as given; answers are camelCase', async () => {
    const { ctx, published } = createTestContext({ runId: 'run-1', stepName: 'send' })
    const sent = await ctx.publish.mqtt('a/b', { n: 1 }, { contentType: 'application/json' })
    const queued = await ctx.publish.amqp('', 'jobs', 'hello', { headers: { kind: 'x' }, persistent: false })
    assert.deepEqual(sent, { connector: null, topic: 'a/b', qos: 1, retain: false, size: 7 })
    assert.deepEqual(queued, { connector: null, exchange: '', routingKey: 'jobs', size: 5, messageId: null, routed: true })
    assert.equal(Buffer.from(published[0].params.payload).toString(), '{"n":1}')
    assert.deepEqual(published[0].params.properties, { content_type: 'application/json' })
    assert.equal(published[1].params.content_type, 'text/plain; charset=utf-8')
    assert.equal(published[1].params.persistent, false)
  })

  test('bad arguments are refused before anything is sent', async () => {
    const { ctx, published } = createTestContext()
    await assert.rejects(() => ctx.publish.mqtt('', 1), TypeError)
    await assert.rejects(() => ctx.publish.mqtt('t', 1, { qos: /** @type {any} */ (3) }), RangeError)
    await assert.rejects(() => ctx.publish.mqtt('t', 1, /** @type {any} */ ({ qso: 1 })), /unknown option 'qso'/)
    await assert.rejects(() => ctx.publish.mqtt('t', () => 1), /the payload/)
    await assert.rejects(() => ctx.publish.amqp('x', /** @type {any} */ (5)), TypeError)
    await assert.rejects(() => ctx.publish.amqp('x', 'k', 1, { headers: /** @type {any} */ ([]) }), /headers must be an object/)
    assert.deepEqual(published, [])
  })
})

describe('ctx.http', () => {
  test('json bodies are bytes with a content type; the answer is what the handler gave', async () => {
    const { ctx, requests } = createTestContext({ http: () => ({ status: 202, json: { ok: 1 } }) })
    const answer = await ctx.http(/** @type {any} */ ('post'), 'https://x.test/{run_id}', {
      json: { a: '{secret:S}' }, query: { q: '{uuid}' }, auth: { type: 'api_key', name: 'k', value: 'v', in: 'query' }, timeout: 2,
    })
    assert.deepEqual(answer, { status: 202, ok: true, headers: {}, body: '', json: { ok: 1 } })
    const [request] = requests
    assert.equal(request.method, 'POST')
    assert.equal(Buffer.from(request.body).toString(), '{"a":"{secret:S}"}')
    assert.deepEqual(request.headers, { 'Content-Type': 'application/json' })
    assert.deepEqual(request.query, { q: '{uuid}' })
    assert.equal(request.timeout, 2)
  })

  test('bad arguments are refused', async () => {
    const { ctx, requests } = createTestContext({ http: () => ({}) })
    await assert.rejects(() => ctx.http(/** @type {any} */ ('FETCH'), 'https://x.test'), RangeError)
    await assert.rejects(() => ctx.http('GET', 'https://x.test', { timeout: 0 }), RangeError)
    await assert.rejects(() => ctx.http('GET', 'https://x.test', { body: 'a', json: {} }), /body or json/)
    await assert.rejects(() => ctx.http('GET', 'https://x.test', { auth: /** @type {any} */ ({ type: 'digest' }) }), /auth type/)
    await assert.rejects(() => ctx.http('GET', 'https://x.test', { headers: /** @type {any} */ ({ a: 1 }) }), /headers/)
    assert.deepEqual(requests, [])
  })

  test('without a handler a test context refuses ctx.http', async () => {
    const { ctx } = createTestContext()
    await assert.rejects(() => ctx.http('GET', 'https://x.test'), /createTestContext\(\{ http/)
  })
})

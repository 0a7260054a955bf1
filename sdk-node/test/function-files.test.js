// A function file, imported the way the runtime will: `config` and a default handler.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import { normalizeConfig, RetryRequested } from '@flowhost/worker'

import { fakeContext } from './helpers/fake-context.js'

const CHARGE = new URL('./fixtures/functions/charge.js', import.meta.url)
const VALIDATE = new URL('./fixtures/functions/validate.js', import.meta.url)

describe('charge.js, a subscribing step', async () => {
  const module = await import(CHARGE.href)

  test('exposes a config that normalises to the canonical shape', () => {
    assert.deepEqual(normalizeConfig(module.config, { file: CHARGE }), {
      flow: 'orders',
      name: 'charge',
      entry: false,
      subscribes: ['order.validated'],
      emits: ['order.charged'],
      attempts: 3,
      backoff: { type: 'exponential', delayMs: 500, maxDelayMs: 60000 },
      timeoutMs: 30000,
      isolation: 'process',
      reuse: 1,
      preload: [],
      memoryMb: null,
      cpuMs: null,
      concurrency: null,
      maxRuns: null,
      concurrencyKey: null,
      keyConcurrency: null,
      priority: null,
      env: [],
      awaitBefore: null,
      awaitAfter: null,
      triggers: null,
    })
  })

  test('its default export is the handler, callable with a fake ctx', async () => {
    assert.equal(typeof module.default, 'function')
    const { ctx, emitted, logs, state } = fakeContext({ stepName: 'charge', attempt: 2, maxAttempts: 3 })
    const input = { 'order.validated': { id: 7, total: 1250, approved: true } }
    const result = await module.default(input, ctx)
    assert.deepEqual(result, { charged: 1250, idempotencyKey: 'run-1:charge' })
    assert.deepEqual(emitted, [{ name: 'order.charged', payload: { id: 7, amount: 1250 } }])
    assert.deepEqual(logs, [{ level: 'info', message: 'charging', fields: { orderId: 7, attempt: 2 } }])
    assert.equal(state.get('charges'), 1)
  })

  test('asks for a retry, in seconds, until the order is approved', async () => {
    const { ctx, emitted } = fakeContext({ stepName: 'charge' })
    const input = { 'order.validated': { id: 8, total: 10, approved: false } }
    await assert.rejects(module.default(input, ctx), (/** @type {unknown} */ error) => {
      assert.ok(error instanceof RetryRequested)
      assert.equal(error.delay, 5)
      assert.equal(error.reason, 'order 8 awaits approval')
      return true
    })
    assert.deepEqual(emitted, [])
  })
})

describe('validate.js, an entry step without flow.step', async () => {
  const module = await import(VALIDATE.href)

  test('takes its step name from the file name', () => {
    const canonical = normalizeConfig(module.config, { file: VALIDATE })
    assert.equal(canonical.name, 'validate')
    assert.equal(canonical.entry, true)
    assert.deepEqual(canonical.emits, ['order.validated'])
  })

  test('runs with the run input and records state, logs and emits', async () => {
    const { ctx, emitted, logs, state } = fakeContext({ stepName: 'validate' })
    const order = { id: 7, total: 1250, approved: true }
    assert.deepEqual(await module.default(order, ctx), { ok: true })
    assert.deepEqual(state.get('order'), order)
    assert.deepEqual(logs, [{ level: 'info', message: 'validated', fields: { orderId: 7 } }])
    assert.deepEqual(emitted, [{ name: 'order.validated', payload: order }])
  })
})

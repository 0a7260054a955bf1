// What the child refuses to send, and how it describes a thrown value.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { RetryRequested } from '@flowhost/worker'

import { assertSendable, describeThrown } from '../src/runtime/values.js'

test('JSON data, bytes, Maps, Dates and 64-bit BigInts can be sent as a result', () => {
  for (const value of [null, undefined, 1, -2.5, 'x', [1, { a: [true] }], { skipped: undefined }, new Uint8Array(2), new Map([[1, 'one']]), new Date(0), 2n ** 63n]) {
    assertSendable(value, 'result')
  }
  const shared = { same: 1 }
  assertSendable({ left: shared, right: shared }, 'result') // shared, not cyclic
})

test('functions, symbols, non-finite numbers, cycles, class instances and huge BigInts are refused naming the path', () => {
  const cyclic = /** @type {any[]} */ ([])
  cyclic.push({ back: cyclic })
  for (const [value, pattern] of /** @type {[unknown, RegExp][]} */ ([
    [{ a: [1, () => 1] }, /^cannot send a function at result\.a\[1\]/],
    [Symbol('s'), /a symbol at result /],
    [{ total: Infinity }, /Infinity at result\.total/],
    [[NaN], /NaN at result\[0\]/],
    [cyclic, /a cyclic reference at result\[0\]\.back/],
    [{ when: new (class Money {})() }, /a Money at result\.when/],
    [{ set: new Set() }, /a Set at result\.set/],
    [2n ** 64n, /outside the 64-bit range/],
  ])) {
    assert.throws(() => assertSendable(value, 'result'), { name: 'TypeError', message: pattern })
  }
})

test('JSON data (state values, payloads) also refuses bytes, Maps, NUL characters and unsafe integers', () => {
  for (const [value, pattern] of /** @type {[unknown, RegExp][]} */ ([
    [new Uint8Array(1), /bytes at value/],
    [new Map(), /a Map at value/],
    ['a\u0000b', /NUL character/],
    [2n ** 60n, /2\^53 - 1/],
  ])) {
    assert.throws(() => assertSendable(value, 'value', { jsonData: true }), { name: 'TypeError', message: pattern })
  }
})

test('describeThrown: an Error, a RetryRequested (delay in seconds, reason as message), anything else', () => {
  const error = describeThrown(new TypeError('bad'))
  assert.deepEqual([error.type, error.message, error.retry_delay], ['TypeError', 'bad', null])
  assert.match(/** @type {string} */ (error.stack), /^TypeError: bad\n/)

  const retry = describeThrown(new RetryRequested(0.25, 'rate limited'))
  assert.deepEqual([retry.type, retry.message, retry.retry_delay], ['RetryRequested', 'rate limited', 0.25])

  assert.deepEqual(describeThrown(42), { type: 'number', message: 'a non-Error value was thrown: 42', stack: null, retry_delay: null })
  assert.deepEqual(describeThrown(null), { type: 'null', message: 'a non-Error value was thrown: null', stack: null, retry_delay: null })
  assert.equal(describeThrown({ code: 7 }).type, 'Object')
})

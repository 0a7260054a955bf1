import assert from 'node:assert/strict'
import { test } from 'node:test'

import { defineFunction } from '@flowhost/worker'

test('returns the handler itself', async () => {
  const handler = async (/** @type {number} */ input) => input * 2
  assert.equal(defineFunction(handler), handler)
  assert.equal(await defineFunction(handler)(21, /** @type {any} */ ({})), 42)
})

test('accepts sync functions and handlers that ignore their arguments', () => {
  assert.doesNotThrow(() => defineFunction(() => 1))
  assert.doesNotThrow(() => defineFunction(function named(_input) {}))
  assert.doesNotThrow(() => defineFunction(async (_input, _ctx) => {}))
})

test('refuses what is not a function, with a TypeError saying what it got', () => {
  for (const value of [undefined, null, 42, 'handler', {}, [], Promise.resolve()]) {
    assert.throws(() => defineFunction(/** @type {any} */ (value)), {
      name: 'TypeError',
      message: /^defineFunction expects the step handler, a function \(input, ctx\) => result; got /,
    })
  }
})

test('refuses a class', () => {
  class Charge {}
  assert.throws(() => defineFunction(/** @type {any} */ (Charge)), {
    name: 'TypeError',
    message: /not the class Charge/,
  })
})

test('refuses callback-style handlers', () => {
  assert.throws(() => defineFunction(/** @type {any} */ (function legacy(/** @type {unknown} */ _input, /** @type {unknown} */ _ctx, /** @type {unknown} */ _done) {})), {
    name: 'TypeError',
    message: /legacy declares 3 parameters; .*callback-style handlers are not supported/,
  })
})

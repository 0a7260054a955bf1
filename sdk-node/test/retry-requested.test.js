import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { test } from 'node:test'

import { pack, unpack } from 'msgpackr'

import { RetryRequested, WorkerError } from '@flowhost/worker'

test('carries delay (seconds) and reason, and is a WorkerError', () => {
  const error = new RetryRequested(2.5, 'rate limited')
  assert.ok(error instanceof RetryRequested)
  assert.ok(error instanceof WorkerError)
  assert.ok(error instanceof Error)
  assert.equal(error.name, 'RetryRequested')
  assert.equal(error.delay, 2.5)
  assert.equal(error.reason, 'rate limited')
  assert.equal(error.message, 'rate limited')
  assert.match(String(error.stack), /^RetryRequested: rate limited/)
})

test('defaults to no delay and a message that names the delay', () => {
  assert.deepEqual(new RetryRequested().toJSON(), {
    type: 'RetryRequested',
    delay: 0,
    reason: '',
    message: 'retry requested in 0s',
  })
  assert.equal(new RetryRequested(3).message, 'retry requested in 3s')
})

test('refuses a delay that is not a finite number >= 0, or a reason that is not a string', () => {
  assert.throws(() => new RetryRequested(/** @type {any} */ ('5')), { name: 'TypeError', message: /number of seconds/ })
  assert.throws(() => new RetryRequested(-1), { name: 'RangeError', message: /finite number >= 0 \(got -1\)/ })
  assert.throws(() => new RetryRequested(NaN), RangeError)
  assert.throws(() => new RetryRequested(Infinity), RangeError)
  assert.throws(() => new RetryRequested(1, /** @type {any} */ (42)), { name: 'TypeError', message: /reason must be a string/ })
})

test('round-trips through JSON', () => {
  const error = new RetryRequested(5, 'awaiting approval')
  const json = JSON.parse(JSON.stringify(error))
  assert.deepEqual(json, { type: 'RetryRequested', delay: 5, reason: 'awaiting approval', message: 'awaiting approval' })
  const back = RetryRequested.fromJSON(json)
  assert.ok(back instanceof RetryRequested)
  assert.deepEqual(back.toJSON(), error.toJSON())
})

test('round-trips through msgpack, the wire encoding', () => {
  const error = new RetryRequested(0.25, 'socket busy')
  const back = RetryRequested.fromJSON(unpack(pack(error.toJSON())))
  assert.deepEqual(back.toJSON(), error.toJSON())
})

test('round-trips across a process boundary', () => {
  const script = `
    import { RetryRequested } from '@flowhost/worker'
    process.stdout.write(JSON.stringify(new RetryRequested(7, 'from a child')))
  `
  const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: new URL('..', import.meta.url),
    encoding: 'utf8',
  })
  const back = RetryRequested.fromJSON(JSON.parse(output))
  assert.deepEqual([back.delay, back.reason, back.message], [7, 'from a child', 'from a child'])
})

test("reads the Python SDK's to_dict(), which has no message", () => {
  const back = RetryRequested.fromJSON({ type: 'RetryRequested', delay: 1.5, reason: '' })
  assert.equal(back.delay, 1.5)
  assert.equal(back.message, 'retry requested in 1.5s')
  assert.equal(RetryRequested.fromJSON({}).delay, 0)
})

test('fromJSON refuses what is not a serialized RetryRequested', () => {
  assert.throws(() => RetryRequested.fromJSON(/** @type {any} */ (null)), TypeError)
  assert.throws(() => RetryRequested.fromJSON(/** @type {any} */ ({ type: 'ConfigError' })), /got a serialized ConfigError/)
  assert.throws(() => RetryRequested.fromJSON(/** @type {any} */ ({ delay: -1 })), RangeError)
})

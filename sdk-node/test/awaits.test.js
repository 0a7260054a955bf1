// Awaits: flow.awaitBefore / flow.awaitAfter validated key by key and normalised to the canonical
// shape the Python SDK writes; hooks named by export and resolved at discovery; ctx.awaited and
// hooks in a real child; the public test context.
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, afterEach, before, describe, test } from 'node:test'

import { ConfigError, normalizeConfig } from '@flowhost/worker'
import { createTestContext } from '@flowhost/worker/testing'

import { ErrorCode } from '../src/protocol.js'
import { describeFile } from '../src/runtime/discovery.js'
import { readExecuteParams } from '../src/runtime/execute-params.js'
import { FakeHost } from './helpers/fake-host.js'

const FILE = 'functions/approve.js'
const HOOKS = { register: null, resolve: null, timeout: null }

/**
 * @param {Record<string, unknown>} fields
 * @returns {Record<string, unknown>} an await's canonical form: the defaults with `fields` over them
 */
const canonical = (fields) => ({
  type: 'time',
  delayMs: null,
  event: null,
  match: null,
  method: 'POST',
  schema: null,
  cron: null,
  timezone: 'UTC',
  timeoutMs: null,
  timeoutAction: 'fail',
  attempts: 3,
  hooks: HOOKS,
  ...fields,
})

/**
 * @param {unknown} awaitBefore
 * @param {unknown} [awaitAfter]
 */
const withAwaits = (awaitBefore, awaitAfter) =>
  normalizeConfig({ flow: { name: 'expenses', step: 'book', role: 'entry', awaitBefore, awaitAfter } }, { file: FILE })

describe('awaits: canonical form', () => {
  test('each type, in the Python SDK’s key order, with its defaults', () => {
    assert.deepEqual(withAwaits({ type: 'time', delay: 1500 }).awaitBefore, canonical({ delayMs: 1500 }))
    assert.deepEqual(Object.keys(/** @type {object} */ (withAwaits({ type: 'time', delay: 1 }).awaitBefore)), Object.keys(canonical({})))
    assert.deepEqual(
      withAwaits({ type: 'event', event: 'payment.done', match: { order: '/order/id', all: '' } }).awaitBefore,
      canonical({ type: 'event', event: 'payment.done', match: { order: '/order/id', all: '' } }),
    )
    assert.deepEqual(
      withAwaits({ type: 'webhook', method: 'put', schema: { type: 'object', required: ['ok'] }, timeout: 3_600_000, timeoutAction: 'continue' }).awaitBefore,
      canonical({ type: 'webhook', method: 'PUT', schema: { type: 'object', required: ['ok'] }, timeoutMs: 3_600_000, timeoutAction: 'continue' }),
    )
    assert.deepEqual(
      withAwaits({ type: 'schedule', cron: ' 0  9 * * 1-5 ', timezone: 'Europe/Berlin', attempts: 2 }).awaitBefore,
      canonical({ type: 'schedule', cron: '0 9 * * 1-5', timezone: 'Europe/Berlin', attempts: 2 }),
    )
    assert.equal(withAwaits({ type: 'schedule', cron: '@daily' }).awaitBefore?.cron, '@daily')
  })

  test('hooks are export names; absent ones are null; awaitAfter sits beside awaitBefore', () => {
    const config = withAwaits(
      { type: 'webhook', hooks: { register: 'sendApprovalMail', timeout: 'remind' } },
      { type: 'time', delay: 60_000 },
    )
    assert.deepEqual(config.awaitBefore?.hooks, { register: 'sendApprovalMail', resolve: null, timeout: 'remind' })
    assert.deepEqual(config.awaitAfter, canonical({ delayMs: 60_000 }))
    assert.deepEqual(Object.keys(config).slice(-3), ['awaitBefore', 'awaitAfter', 'triggers'])
  })

  test('durations round to whole ms and never below 1; an empty match is no filter; null is no await', () => {
    assert.deepEqual(withAwaits({ type: 'time', delay: 0.2, timeout: 2.5 }).awaitBefore, canonical({ delayMs: 1, timeoutMs: 3 }))
    assert.equal(withAwaits({ type: 'event', event: 'e', match: {} }).awaitBefore?.match, null)
    assert.equal(withAwaits(null, undefined).awaitBefore, null)
  })
})

describe('awaits: every mistake is a ConfigError naming its field', () => {
  /** @type {[string, unknown, string, RegExp][]} */
  const cases = [
    ['not an object', 'webhook', 'flow.awaitBefore', /must be an object/],
    ['no type', { delay: 5 }, 'flow.awaitBefore.type', /must be one of 'time', 'event', 'webhook', 'schedule' \(got undefined\)/],
    ['unknown type', { type: 'signal' }, 'flow.awaitBefore.type', /got 'signal'/],
    ['unknown key', { type: 'time', delay: 5, dealy: 5 }, 'flow.awaitBefore.dealy', /unknown key/],
    ['a key of another type', { type: 'time', delay: 5, cron: '* * * * *' }, 'flow.awaitBefore.cron', /applies to schedule awaits only/],
    ['time without delay', { type: 'time' }, 'flow.awaitBefore.delay', /is required for a time await/],
    ['event without event', { type: 'event' }, 'flow.awaitBefore.event', /is required for an event await/],
    ['schedule without cron', { type: 'schedule' }, 'flow.awaitBefore.cron', /is required for a schedule await/],
    ['delay 0', { type: 'time', delay: 0 }, 'flow.awaitBefore.delay', /positive, finite number of milliseconds \(got 0\)/],
    ['delay negative', { type: 'time', delay: -1 }, 'flow.awaitBefore.delay', /got -1/],
    ['delay infinite', { type: 'time', delay: Infinity }, 'flow.awaitBefore.delay', /got Infinity/],
    ['delay NaN', { type: 'time', delay: NaN }, 'flow.awaitBefore.delay', /got NaN/],
    ['delay a string', { type: 'time', delay: '5s' }, 'flow.awaitBefore.delay', /got '5s'/],
    ['timeout 0', { type: 'webhook', timeout: 0 }, 'flow.awaitBefore.timeout', /positive/],
    ['timeoutAction unknown', { type: 'webhook', timeoutAction: 'wait' }, 'flow.awaitBefore.timeoutAction', /'fail', 'continue' or 'retry' \(got 'wait'\)/],
    ['attempts 0', { type: 'webhook', attempts: 0 }, 'flow.awaitBefore.attempts', /whole number >= 1/],
    ['attempts fractional', { type: 'webhook', attempts: 2.5 }, 'flow.awaitBefore.attempts', /got 2\.5/],
    ['event name invalid', { type: 'event', event: 'has space' }, 'flow.awaitBefore.event', /non-empty name/],
    ['match not an object', { type: 'event', event: 'e', match: ['/a'] }, 'flow.awaitBefore.match', /payload field -> JSON Pointer/],
    ['match empty key', { type: 'event', event: 'e', match: { '': '/a' } }, 'flow.awaitBefore.match', /non-empty payload field/],
    ['match not a pointer', { type: 'event', event: 'e', match: { id: 'order/id' } }, 'flow.awaitBefore.match.id', /JSON Pointer/],
    ['match bad escape', { type: 'event', event: 'e', match: { id: '/a~2b' } }, 'flow.awaitBefore.match.id', /JSON Pointer/],
    ['match dangling tilde', { type: 'event', event: 'e', match: { id: '/a~' } }, 'flow.awaitBefore.match.id', /JSON Pointer/],
    ['match a number', { type: 'event', event: 'e', match: { id: 3 } }, 'flow.awaitBefore.match.id', /JSON Pointer/],
    ['method HEAD', { type: 'webhook', method: 'HEAD' }, 'flow.awaitBefore.method', /GET, POST, PUT, PATCH, DELETE \(got 'HEAD'\)/],
    ['method not a string', { type: 'webhook', method: 1 }, 'flow.awaitBefore.method', /got 1/],
    ['schema an array', { type: 'webhook', schema: ['object'] }, 'flow.awaitBefore.schema', /JSON Schema object/],
    ['schema not JSON data', { type: 'webhook', schema: { x: NaN } }, 'flow.awaitBefore.schema', /JSON data/],
    ['cron empty', { type: 'schedule', cron: '' }, 'flow.awaitBefore.cron', /5 to 7 fields/],
    ['cron 4 fields', { type: 'schedule', cron: '* * * *' }, 'flow.awaitBefore.cron', /5 to 7 fields/],
    ['cron 8 fields', { type: 'schedule', cron: '0 0 0 1 1 * 2030 x' }, 'flow.awaitBefore.cron', /5 to 7 fields/],
    ['cron not a string', { type: 'schedule', cron: 5 }, 'flow.awaitBefore.cron', /5 to 7 fields/],
    ['timezone empty', { type: 'schedule', cron: '@daily', timezone: '' }, 'flow.awaitBefore.timezone', /IANA time zone/],
    ['timezone blank', { type: 'schedule', cron: '@daily', timezone: '  ' }, 'flow.awaitBefore.timezone', /IANA time zone/],
    ['timezone not a string', { type: 'schedule', cron: '@daily', timezone: null }, 'flow.awaitBefore.timezone', /IANA time zone/],
    ['hooks not an object', { type: 'time', delay: 1, hooks: 'mail' }, 'flow.awaitBefore.hooks', /must be an object/],
    ['hooks unknown kind', { type: 'time', delay: 1, hooks: { registered: 'mail' } }, 'flow.awaitBefore.hooks.registered', /known keys here: register, resolve, timeout/],
    ['hook not a name', { type: 'time', delay: 1, hooks: { register: 'send mail' } }, 'flow.awaitBefore.hooks.register', /name of a function the file exports/],
    ['hook a function', { type: 'time', delay: 1, hooks: { resolve: () => 1 } }, 'flow.awaitBefore.hooks.resolve', /name of a function/],
    ['hook named default', { type: 'time', delay: 1, hooks: { timeout: 'default' } }, 'flow.awaitBefore.hooks.timeout', /name of a function/],
  ]
  for (const [label, awaitBefore, field, message] of cases) {
    test(label, () => {
      assert.throws(() => withAwaits(awaitBefore), (/** @type {unknown} */ error) => {
        assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`)
        assert.equal(error.field, field)
        assert.match(error.message, message)
        return true
      })
    })
  }

  test('awaitAfter is checked the same way', () => {
    assert.throws(() => withAwaits(null, { type: 'time' }), { field: 'flow.awaitAfter.delay' })
  })
})

describe('awaits at discovery, in a child, and in tests', () => {
  /** @type {string} */
  let functions
  /** @type {FakeHost[]} */
  const hosts = []

  before(() => {
    functions = mkdtempSync(join(tmpdir(), 'fh-awaits-'))
    writeFileSync(join(functions, 'package.json'), '{"type": "module"}\n')
    writeFileSync(join(functions, 'approve.js'), `
      export const config = {
        flow: {
          name: 'expenses', step: 'book', role: 'entry', emits: ['expense.booked'],
          awaitBefore: { type: 'webhook', hooks: { register: 'sendApprovalMail', resolve: 'notAFunction', timeout: 'missing' } },
        },
      }
      export const notAFunction = 42
      export async function sendApprovalMail(data, ctx) {
        ctx.logger.info('mail sent', { url: data.url })
        await ctx.state.set('mailed', data.url)
        let refused
        try { await ctx.emit('expense.booked', {}) } catch (error) { refused = error.message }
        return { hook: ctx.hook, awaited: ctx.awaited, refused }
      }
      export default async (input, ctx) => ({ awaited: ctx.awaited, hook: ctx.hook, traceparent: ctx.traceparent })
    `)
  })

  after(() => rmSync(functions, { recursive: true, force: true }))
  afterEach(async () => { await Promise.all(hosts.splice(0).map((host) => host.close())) })

  async function startHost() {
    const host = new FakeHost({ cwd: functions })
    hosts.push(host)
    return host.start()
  }

  test('the describer tells which hook names are exported functions', async () => {
    const described = await describeFile(join(functions, 'approve.js'))
    assert.ok(described !== null && 'step' in described)
    assert.deepEqual(described.step.hooks, { sendApprovalMail: true, notAFunction: false, missing: false })
  })

  test('a step in a real child gets ctx.awaited; without one it is null', async () => {
    const host = await startHost()
    const awaited = { type: 'webhook', data: { approved: true } }
    const answer = /** @type {any} */ (await host.execute(join(functions, 'approve.js'), { awaited }))
    assert.deepEqual(answer.result.result, { awaited, hook: null, traceparent: null })
    const again = await startHost()
    const plain = /** @type {any} */ (await again.execute(join(functions, 'approve.js')))
    assert.deepEqual(plain.result.result, { awaited: null, hook: null, traceparent: null })
  })

  test('a step in a real child gets the host span\'s ctx.traceparent', async () => {
    const host = await startHost()
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    const answer = /** @type {any} */ (await host.execute(join(functions, 'approve.js'), { traceparent }))
    assert.deepEqual(answer.result.result, { awaited: null, hook: null, traceparent })
  })

  test('a hook runs in a real child instead of the handler: state and logs work, emit is refused', async () => {
    const host = await startHost()
    const answer = /** @type {any} */ (await host.execute(join(functions, 'approve.js'), {
      input: { url: 'https://example.test/a' },
      hook: { function: 'sendApprovalMail', kind: 'register' },
    }))
    assert.deepEqual(answer.result.result, {
      hook: 'register',
      awaited: null,
      refused: "ctx.emit is not available in an await hook (the register hook of step 'charge'): hooks cannot emit events; emit from the step itself",
    })
    assert.equal(host.state.get('mailed'), 'https://example.test/a')
    assert.deepEqual(host.calls.map((call) => call.method), ['state.set'])
    assert.deepEqual(host.notifications('log').map((params) => params.message), ['mail sent'])
  })

  test('a hook that is not an exported function cannot be loaded (-32053)', async () => {
    const host = await startHost()
    const answer = /** @type {any} */ (await host.execute(join(functions, 'approve.js'), {
      hook: { function: 'missing', kind: 'timeout' },
    }))
    assert.equal(answer.error.code, ErrorCode.HANDLER_NOT_LOADABLE)
    assert.match(answer.error.message, /has no export 'missing'; export the hook: export async function missing\(data, ctx\)/)
  })

  test('execute params: awaited and hook are checked', () => {
    const job = { run_id: 'r', flow: 'f', step: 's', attempt: 1, max_attempts: 1, idempotency_key: 'k', file: '/f.js', handler: 'default' }
    const read = (/** @type {Record<string, unknown>} */ extra) => readExecuteParams({ job, ...extra })
    assert.deepEqual([read({}).awaited, read({}).hook], [null, null])
    assert.deepEqual(read({ awaited: { type: 'time', data: null } }).awaited, { type: 'time', data: null })
    for (const [extra, message] of /** @type {[Record<string, unknown>, RegExp][]} */ ([
      [{ awaited: 'webhook' }, /awaited must be null or a map/],
      [{ awaited: { data: 1 } }, /awaited must be null or a map/],
      [{ hook: 'mail' }, /hook must be null or a map/],
      [{ hook: { function: '', kind: 'register' } }, /hook\.function/],
      [{ hook: { function: 'mail', kind: 'after' } }, /hook\.kind/],
    ])) {
      assert.throws(() => read(extra), { code: ErrorCode.INVALID_PARAMS, message })
    }
  })

  test('createTestContext: ctx.awaited for a step, a hook context refuses emit', async () => {
    const module = await import(join(functions, 'approve.js'))
    const awaited = { type: /** @type {const} */ ('webhook'), data: { approved: true } }
    assert.deepEqual(await module.default({}, createTestContext({ awaited }).ctx), { awaited, hook: null, traceparent: null })
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    assert.equal((await module.default({}, createTestContext({ traceparent }).ctx)).traceparent, traceparent)
    const { ctx, state, logs, emitted } = createTestContext({ hook: 'register', stepName: 'book' })
    const result = await module.sendApprovalMail({ url: 'u' }, ctx)
    assert.equal(result.refused, "ctx.emit is not available in an await hook (the register hook of step 'book'): hooks cannot emit events; emit from the step itself")
    assert.equal(state.get('mailed'), 'u')
    assert.deepEqual(logs, [{ level: 'info', message: 'mail sent', fields: { url: 'u' } }])
    assert.deepEqual(emitted, [])
    assert.throws(() => createTestContext({ hook: /** @type {any} */ ('after') }), RangeError)
    assert.throws(() => createTestContext({ awaited: /** @type {any} */ ('webhook') }), TypeError)
  })
})

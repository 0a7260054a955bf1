import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { fileURLToPath, pathToFileURL } from 'node:url'

import { ConfigError, defineConfig, normalizeConfig, WorkerError } from '@flowhost/worker'

const FILE = 'functions/charge.js'
const THIS_FILE = fileURLToPath(import.meta.url)
const DEFAULT_BACKOFF = { type: 'exponential', delayMs: 1000, maxDelayMs: 60000 }
/** The keys after timeoutMs, at their defaults (awaits included). */
const DEFAULT_PROCESS = {
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
}

/**
 * @param {Record<string, unknown>} flow
 * @param {Record<string, unknown>} [rest]
 */
const config = (flow, rest = {}) => ({ flow: { name: 'orders', step: 'charge', ...flow }, ...rest })

describe('normalizeConfig: valid configs', () => {
  test('a subscribing step gets every default', () => {
    assert.deepEqual(normalizeConfig(config({ subscribes: ['order.validated'] }), { file: FILE }), {
      flow: 'orders',
      name: 'charge',
      entry: false,
      subscribes: ['order.validated'],
      emits: [],
      attempts: 1,
      backoff: DEFAULT_BACKOFF,
      timeoutMs: null,
      ...DEFAULT_PROCESS,
    })
  })

  test("the canonical keys come in the Python SDK's order", () => {
    const canonical = normalizeConfig(config({ role: 'entry' }))
    assert.deepEqual(Object.keys(canonical), [
      'flow',
      'name',
      'entry',
      'subscribes',
      'emits',
      'attempts',
      'backoff',
      'timeoutMs',
      'isolation',
      'reuse',
      'preload',
      'memoryMb',
      'cpuMs',
      'concurrency',
      'maxRuns',
      'concurrencyKey',
      'keyConcurrency',
      'priority',
      'env',
      'awaitBefore',
      'awaitAfter',
      'triggers',
    ])
    assert.deepEqual(Object.keys(canonical.backoff), ['type', 'delayMs', 'maxDelayMs'])
  })

  test("an entry step: role: 'entry' and entry: true mean the same", () => {
    const byRole = normalizeConfig(config({ role: 'entry', emits: 'order.validated' }))
    const byFlag = normalizeConfig(config({ entry: true, emits: ['order.validated'] }))
    assert.deepEqual(byRole, byFlag)
    assert.equal(byRole.entry, true)
    assert.deepEqual(byRole.subscribes, [])
    assert.deepEqual(byRole.emits, ['order.validated'])
  })

  test("role: 'step' and entry: false agree", () => {
    const canonical = normalizeConfig(config({ role: 'step', entry: false, subscribes: 'a' }))
    assert.equal(canonical.entry, false)
  })

  test('a single event name becomes a list; duplicates go, order stays', () => {
    const canonical = normalizeConfig(config({ subscribes: 'a', emits: ['x', 'y', 'x', 'z', 'y'] }))
    assert.deepEqual(canonical.subscribes, ['a'])
    assert.deepEqual(canonical.emits, ['x', 'y', 'z'])
  })

  test('names may use letters, digits and _ . : -', () => {
    const canonical = normalizeConfig({
      flow: { name: 'Orders_v2', step: 'charge-card.v1', subscribes: ['order:validated', 'a.b_c-D9'] },
    })
    assert.equal(canonical.flow, 'Orders_v2')
    assert.equal(canonical.name, 'charge-card.v1')
  })

  test('attempts, backoff and timeout are carried over, in milliseconds', () => {
    const canonical = normalizeConfig(
      config({ subscribes: 'a' }, { attempts: 5, backoff: { type: 'fixed', delay: 250 }, timeout: 30000 }),
    )
    assert.equal(canonical.attempts, 5)
    assert.deepEqual(canonical.backoff, { type: 'fixed', delayMs: 250, maxDelayMs: 60000 })
    assert.equal(canonical.timeoutMs, 30000)
  })

  test('a number as backoff is a fixed delay in ms', () => {
    const canonical = normalizeConfig(config({ subscribes: 'a' }, { backoff: 2000 }))
    assert.deepEqual(canonical.backoff, { type: 'fixed', delayMs: 2000, maxDelayMs: 2000 })
  })

  test('a backoff object defaults each key it leaves out', () => {
    assert.deepEqual(normalizeConfig(config({ subscribes: 'a' }, { backoff: {} })).backoff, DEFAULT_BACKOFF)
    assert.deepEqual(normalizeConfig(config({ subscribes: 'a' }, { backoff: { maxDelay: 5000.4 } })).backoff, {
      type: 'exponential',
      delayMs: 1000,
      maxDelayMs: 5000,
    })
  })

  test('timeout: null means none; a fraction of a ms rounds, never to 0', () => {
    assert.equal(normalizeConfig(config({ subscribes: 'a' }, { timeout: null })).timeoutMs, null)
    assert.equal(normalizeConfig(config({ subscribes: 'a' }, { timeout: 0.2 })).timeoutMs, 1)
    assert.equal(normalizeConfig(config({ subscribes: 'a' }, { timeout: 1500.6 })).timeoutMs, 1501)
  })

  test('the step name defaults to the file name without its extension', () => {
    const flow = { name: 'orders', subscribes: 'a' }
    assert.equal(normalizeConfig({ flow }, { file: 'functions/charge-card.js' }).name, 'charge-card')
    assert.equal(normalizeConfig({ flow }, { file: '/app/functions/ship.step.mjs' }).name, 'ship.step')
    assert.equal(normalizeConfig({ flow }, { file: pathToFileURL('/app/functions/pack.js') }).name, 'pack')
    assert.equal(normalizeConfig({ flow }, { file: 'file:///app/functions/bill.js' }).name, 'bill')
  })

  test('the result is frozen and does not share arrays with the input', () => {
    const subscribes = ['a']
    const canonical = normalizeConfig(config({ subscribes }))
    assert.ok(Object.isFrozen(canonical))
    assert.ok(Object.isFrozen(canonical.subscribes))
    assert.ok(Object.isFrozen(canonical.backoff))
    subscribes.push('b')
    assert.deepEqual(canonical.subscribes, ['a'])
  })

  test('the result survives JSON, as the describe step sends it', () => {
    const canonical = normalizeConfig(config({ subscribes: 'a' }, { attempts: 2 }))
    assert.deepEqual(JSON.parse(JSON.stringify(canonical)), canonical)
  })
})

describe('normalizeConfig: invalid configs name the file and the field', () => {
  /** @type {[label: string, config: unknown, field: string, message: RegExp][]} */
  const cases = [
    ['config is not an object', 'orders', 'config', /must be an object \(got 'orders'\)/],
    ['config is null', null, 'config', /must be an object \(got null\)/],
    ['config is an array', [], 'config', /must be an object/],
    ['flow is missing', { attempts: 2 }, 'flow', /is required/],
    ['flow is a string', { flow: 'orders' }, 'flow', /must be an object \(got 'orders'\)/],
    ['flow.name is missing', { flow: { step: 'x', role: 'entry' } }, 'flow.name', /must be a non-empty name .*got undefined/],
    ['flow.name is empty', config({ name: '', role: 'entry' }), 'flow.name', /non-empty name of letters, digits and _ \. : - \(got ''\)/],
    ['flow.name has a space', config({ name: 'my flow', role: 'entry' }), 'flow.name', /got 'my flow'/],
    ['flow.name is a list', config({ name: ['a', 'b'], role: 'entry' }), 'flow.name', /exactly one flow/],
    ['flow.name is a number', config({ name: 7, role: 'entry' }), 'flow.name', /got 7/],
    ['flow.step is empty', config({ step: '', role: 'entry' }), 'flow.step', /got ''/],
    ['flow.step has a slash', config({ step: 'a/b', role: 'entry' }), 'flow.step', /got 'a\/b'/],
    ['flow.role is unknown', config({ role: 'start' }), 'flow.role', /must be 'entry' or 'step' \(got 'start'\)/],
    ['flow.entry is not boolean', config({ entry: 'yes' }), 'flow.entry', /must be true or false \(got 'yes'\)/],
    ['flow.entry contradicts flow.role', config({ role: 'step', entry: true, subscribes: 'a' }), 'flow.entry', /is true but flow.role is 'step'/],
    ['an entry step subscribes', config({ role: 'entry', subscribes: ['a'] }), 'flow.subscribes', /an entry step cannot subscribe to events/],
    ['a step subscribes to nothing', config({}), 'flow.subscribes', /step 'charge' is not the entry step, so it must subscribe to at least one event/],
    ['a step subscribes to an empty list', config({ subscribes: [] }), 'flow.subscribes', /must subscribe to at least one event/],
    ['flow.subscribes is an object', config({ subscribes: { a: 1 } }), 'flow.subscribes', /must be an event name or a list of event names/],
    ['a subscription is invalid', config({ subscribes: ['ok', 'not ok'] }), 'flow.subscribes[1]', /got 'not ok'/],
    ['an emit is invalid', config({ subscribes: 'a', emits: [''] }), 'flow.emits[0]', /got ''/],
    ['flow.emits is a number', config({ subscribes: 'a', emits: 3 }), 'flow.emits', /got 3/],
    ['attempts is 0', config({ subscribes: 'a' }, { attempts: 0 }), 'attempts', /must be a whole number >= 1.*\(got 0\)/],
    ['attempts is fractional', config({ subscribes: 'a' }, { attempts: 2.5 }), 'attempts', /got 2\.5/],
    ['attempts is a string', config({ subscribes: 'a' }, { attempts: '3' }), 'attempts', /got '3'/],
    ['backoff is negative', config({ subscribes: 'a' }, { backoff: -1 }), 'backoff', /finite number of milliseconds >= 0 \(got -1\)/],
    ['backoff is infinite', config({ subscribes: 'a' }, { backoff: Infinity }), 'backoff', /got Infinity/],
    ['backoff is a string', config({ subscribes: 'a' }, { backoff: '1s' }), 'backoff', /must be milliseconds .* or \{ type/],
    ['backoff.type is unknown', config({ subscribes: 'a' }, { backoff: { type: 'linear' } }), 'backoff.type', /must be 'fixed' or 'exponential' \(got 'linear'\)/],
    ['backoff.delay is negative', config({ subscribes: 'a' }, { backoff: { delay: -5 } }), 'backoff.delay', /got -5/],
    ['backoff.maxDelay is NaN', config({ subscribes: 'a' }, { backoff: { maxDelay: NaN } }), 'backoff.maxDelay', /got NaN/],
    ['backoff has an unknown key', config({ subscribes: 'a' }, { backoff: { max_delay: 5 } }), 'backoff.max_delay', /unknown key \(known keys here: type, delay, maxDelay\)/],
    ['timeout is 0', config({ subscribes: 'a' }, { timeout: 0 }), 'timeout', /must be a positive number of milliseconds \(got 0\)/],
    ['timeout is a string', config({ subscribes: 'a' }, { timeout: '30s' }), 'timeout', /got '30s'/],
    ['an unknown top-level key', config({ subscribes: 'a' }, { atempts: 3 }), 'atempts', /unknown key \(known keys here: flow, attempts, backoff, timeout, isolation, reuse, memory, cpu, concurrency, maxRuns, concurrencyKey, keyConcurrency, priority, env\)/],
    ['an unknown flow key', config({ subscribes: 'a', emit: ['x'] }), 'flow.emit', /unknown key \(known keys here: name, step, role, entry, subscribes, emits, awaitBefore, awaitAfter, triggers\)/],
    ["the seed's queue options", config({ subscribes: 'a' }, { queue: { defaultJobOptions: { attempts: 3 } } }), 'queue', /set attempts, backoff and timeout at the top level/],
    ["the seed's flow.stepTimeout", config({ subscribes: 'a', stepTimeout: 1000 }), 'flow.stepTimeout', /use timeout \(milliseconds\)/],
    ["the seed's await path", config({ subscribes: 'a', awaitBefore: { type: 'webhook', path: '/x' } }), 'flow.awaitBefore.path', /made for each run and step/],
    ["the seed's await filterKey", config({ subscribes: 'a', awaitAfter: { type: 'event', event: 'e', filterKey: 'id' } }), 'flow.awaitAfter.filterKey', /use match/],
  ]

  for (const [label, input, field, message] of cases) {
    test(label, () => {
      assert.throws(
        () => normalizeConfig(input, { file: FILE }),
        (/** @type {unknown} */ error) => {
          assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`)
          assert.equal(error.file, FILE)
          assert.equal(error.field, field)
          assert.ok(error.message.startsWith(`${FILE}: ${field}: `), error.message)
          assert.match(error.message, message)
          return true
        },
      )
    })
  }

  test('without a file the step name is required, and the message says the file is unknown', () => {
    assert.throws(() => normalizeConfig({ flow: { name: 'orders', role: 'entry' } }), {
      name: 'ConfigError',
      file: undefined,
      field: 'flow.step',
      message: /^<config>: flow\.step: is required/,
    })
  })

  test('a file name that is no valid step name needs flow.step', () => {
    assert.throws(() => normalizeConfig({ flow: { name: 'orders', role: 'entry' } }, { file: 'functions/my step.js' }), {
      field: 'flow.step',
      message: /the file name 'my step' is not a valid step name; set flow\.step/,
    })
  })

  test('a file: URL is shown as a path', () => {
    assert.throws(() => normalizeConfig({}, { file: 'file:///app/functions/x.js' }), {
      file: '/app/functions/x.js',
      message: /^\/app\/functions\/x\.js: flow: /,
    })
  })

  test('ConfigError is a WorkerError and an Error, and round-trips through JSON', () => {
    const error = new ConfigError('must be at least 1 (got 0)', { file: FILE, field: 'attempts' })
    assert.ok(error instanceof WorkerError)
    assert.ok(error instanceof Error)
    assert.equal(error.name, 'ConfigError')
    assert.equal(error.message, `${FILE}: attempts: must be at least 1 (got 0)`)
    const json = JSON.parse(JSON.stringify(error))
    assert.deepEqual(json, {
      type: 'ConfigError',
      file: FILE,
      field: 'attempts',
      reason: 'must be at least 1 (got 0)',
      message: error.message,
    })
    const back = ConfigError.fromJSON(json)
    assert.ok(back instanceof ConfigError)
    assert.deepEqual([back.file, back.field, back.reason, back.message], [error.file, error.field, error.reason, error.message])
    assert.equal(ConfigError.fromJSON({ file: null, field: 'flow', reason: 'x' }).file, undefined)
    assert.throws(() => ConfigError.fromJSON(/** @type {any} */ ({ type: 'RetryRequested' })), TypeError)
  })
})

describe('normalizeConfig: process keys (isolation, reuse, memory, cpu, concurrency, env)', () => {
  test('are carried over: memory in MiB, cpu in ms; env deduplicated in order; preload stays empty', () => {
    const canonical = normalizeConfig(
      config({ subscribes: 'a' }, {
        isolation: 'process',
        reuse: 50,
        memory: 256,
        cpu: 1500,
        concurrency: 4,
        env: ['STRIPE_KEY', 'API_URL', 'STRIPE_KEY', '_PRIVATE2'],
      }),
    )
    assert.deepEqual(
      {
        isolation: canonical.isolation,
        reuse: canonical.reuse,
        preload: canonical.preload,
        memoryMb: canonical.memoryMb,
        cpuMs: canonical.cpuMs,
        concurrency: canonical.concurrency,
        env: canonical.env,
      },
      { isolation: 'process', reuse: 50, preload: [], memoryMb: 256, cpuMs: 1500, concurrency: 4, env: ['STRIPE_KEY', 'API_URL', '_PRIVATE2'] },
    )
    assert.ok(Object.isFrozen(canonical.env) && Object.isFrozen(canonical.preload))
  })

  test('null limits mean none', () => {
    const canonical = normalizeConfig(config({ subscribes: 'a' }, { memory: null, cpu: null, concurrency: null }))
    assert.deepEqual([canonical.memoryMb, canonical.cpuMs, canonical.concurrency], [null, null, null])
  })

  test("isolation: 'inprocess' is refused: in-process isolation is for trusted Python functions", () => {
    assert.throws(() => normalizeConfig(config({ subscribes: 'a' }, { isolation: 'inprocess' }), { file: FILE }), {
      name: 'ConfigError',
      field: 'isolation',
      message: /in-process isolation is for trusted Python functions/,
    })
    assert.throws(() => normalizeConfig(config({ subscribes: 'a' }, { isolation: 'thread' })), {
      field: 'isolation',
      message: /must be 'process' \(got 'thread'\)/,
    })
  })

  for (const [field, bad] of /** @type {[string, unknown][]} */ ([
    ['reuse', 0], ['reuse', 1.5], ['reuse', '2'], ['reuse', null],
    ['memory', 0], ['memory', -64], ['memory', 12.5], ['memory', '64'],
    ['cpu', 0], ['cpu', 2.5], ['cpu', Infinity],
    ['concurrency', 0], ['concurrency', true],
  ])) {
    test(`${field}: ${String(bad)} is refused naming the field`, () => {
      assert.throws(() => normalizeConfig(config({ subscribes: 'a' }, { [field]: bad }), { file: FILE }), {
        name: 'ConfigError',
        field,
        message: new RegExp(`^${FILE}: ${field}: must be a whole number >= 1`),
      })
    })
  }

  test('env must be a list of variable names; the bad entry is named', () => {
    assert.throws(() => normalizeConfig(config({ subscribes: 'a' }, { env: 'API_KEY' })), {
      field: 'env',
      message: /must be a list of environment variable names/,
    })
    for (const bad of ['1ST', 'WITH-DASH', '', 'A B', 7]) {
      assert.throws(() => normalizeConfig(config({ subscribes: 'a' }, { env: ['OK', bad] })), {
        name: 'ConfigError',
        field: 'env[1]',
        message: /must be an environment variable name/,
      })
    }
  })
})

describe('defineConfig', () => {
  test('returns the config it was given, unchanged', () => {
    const input = { flow: { name: 'orders', step: 'charge', subscribes: 'order.validated' }, attempts: 3 }
    const snapshot = structuredClone(input)
    assert.equal(defineConfig(input), input)
    assert.deepEqual(input, snapshot)
  })

  test('throws a ConfigError naming the file that called it', () => {
    assert.throws(() => defineConfig(/** @type {any} */ ({ flow: { name: 'orders', step: 'x' } })), {
      name: 'ConfigError',
      file: THIS_FILE,
      field: 'flow.subscribes',
      message: new RegExp(`^${THIS_FILE.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: flow\\.subscribes: `),
    })
  })

  test('leaves Error.prepareStackTrace as it was', () => {
    const before = Error.prepareStackTrace
    defineConfig({ flow: { name: 'orders', step: 'x', role: 'entry' } })
    assert.equal(Error.prepareStackTrace, before)
    assert.equal(typeof new Error('still a string').stack, 'string')
  })
})

describe('normalizeConfig: flow control (maxRuns, concurrencyKey, keyConcurrency, priority)', () => {
  test('are carried over from the entry step, in the canonical order', () => {
    const canonical = normalizeConfig(
      config({ role: 'entry' }, { concurrency: 2, maxRuns: 10, concurrencyKey: '/tenant/id', keyConcurrency: 3, priority: -5 }),
    )
    const keys = Object.keys(canonical)
    assert.deepEqual(keys.slice(keys.indexOf('concurrency'), keys.indexOf('env') + 1), [
      'concurrency', 'maxRuns', 'concurrencyKey', 'keyConcurrency', 'priority', 'env',
    ])
    assert.deepEqual(
      [canonical.maxRuns, canonical.concurrencyKey, canonical.keyConcurrency, canonical.priority],
      [10, '/tenant/id', 3, -5],
    )
    // Fairness between keys without a per-key limit, under maxRuns.
    assert.equal(normalizeConfig(config({ role: 'entry' }, { maxRuns: 2, concurrencyKey: '' })).concurrencyKey, '')
  })

  for (const [name, extra, role, field, message] of /** @type {const} */ ([
    ['maxRuns on a later step', { maxRuns: 2 }, 'step', 'maxRuns', /declare it on the flow's entry step/],
    ['priority on a later step', { priority: 1 }, 'step', 'priority', /declare it on the flow's entry step/],
    ['maxRuns is 0', { maxRuns: 0 }, 'entry', 'maxRuns', /whole number >= 1/],
    ['keyConcurrency without a key', { keyConcurrency: 2 }, 'entry', 'keyConcurrency', /set concurrencyKey too/],
    ['a key alone', { concurrencyKey: '/t' }, 'entry', 'concurrencyKey', /needs keyConcurrency .* or maxRuns/],
    ['a key that is no pointer', { concurrencyKey: 't', maxRuns: 1 }, 'entry', 'concurrencyKey', /JSON Pointer/],
    ['a bad escape', { concurrencyKey: '/a~2', maxRuns: 1 }, 'entry', 'concurrencyKey', /JSON Pointer/],
    ['priority too high', { priority: 1001 }, 'entry', 'priority', /from -1000 to 1000 \(got 1001\)/],
    ['priority a fraction', { priority: 1.5 }, 'entry', 'priority', /whole number/],
  ])) {
    test(`${name} is refused`, () => {
      const flow = role === 'entry' ? { role: 'entry' } : { subscribes: 'a' }
      assert.throws(() => normalizeConfig(config(flow, extra), { file: FILE }), (/** @type {any} */ error) => {
        assert.equal(error.field, field)
        assert.match(error.message, message)
        return true
      })
    })
  }
})

// Triggers: flow.triggers of an entry step, validated key by key and normalised to the canonical
// shape the Python SDK writes (`Triggers.to_dict()`).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import { ConfigError, normalizeConfig } from '@flowhost/worker'

const FILE = 'functions/signup.js'

/**
 * @param {unknown} triggers
 * @param {Record<string, unknown>} [flow]
 */
const withTriggers = (triggers, flow = { role: 'entry' }) =>
  normalizeConfig({ flow: { name: 'signups', step: 'welcome', ...flow, triggers } }, { file: FILE })

describe('triggers: canonical form', () => {
  test('absent is null', () => {
    assert.equal(withTriggers(undefined).triggers, null)
  })

  test('subscriptions by name or { name, mode }; definitions with every key', () => {
    const { triggers } = withTriggers({
      subscribe: ['signup.form', { name: 'user.created', mode: 'manual' }, 'signup.form'],
      define: { name: 'signup.form', type: 'manual', config: { schema: { type: 'object' } } },
    })
    assert.deepEqual(triggers, {
      subscribe: [
        { name: 'signup.form', mode: 'auto' },
        { name: 'user.created', mode: 'manual' },
      ],
      define: [
        {
          name: 'signup.form',
          type: 'manual',
          displayName: null,
          description: null,
          config: { schema: { type: 'object' } },
        },
      ],
    })
    assert.deepEqual(Object.keys(triggers ?? {}), ['subscribe', 'define'])
    assert.deepEqual(Object.keys(triggers?.define[0] ?? {}), ['name', 'type', 'displayName', 'description', 'config'])
  })

  test('mode sets the default of names given alone; a single name is a list of one', () => {
    const { triggers } = withTriggers({ subscribe: 'orders.paid', mode: 'manual' })
    assert.deepEqual(triggers, { subscribe: [{ name: 'orders.paid', mode: 'manual' }], define: [] })
  })

  test('an empty triggers object is kept (nothing subscribed, nothing defined)', () => {
    assert.deepEqual(withTriggers({}).triggers, { subscribe: [], define: [] })
  })
})

describe('triggers: every mistake is a ConfigError naming its field', () => {
  /** @type {[string, unknown, Record<string, unknown> | undefined, string, RegExp][]} */
  const cases = [
    ['on a step that is not the entry', { subscribe: 'x' }, { subscribes: 'a' }, 'flow.triggers', /declare them on the flow's entry step/],
    ['not an object', ['x'], undefined, 'flow.triggers', /must be an object/],
    ['an unknown key', { subscribes: 'x' }, undefined, 'flow.triggers.subscribes', /known keys here: subscribe, define, mode/],
    ['a bad default mode', { mode: 'sometimes' }, undefined, 'flow.triggers.mode', /'auto' or 'manual'/],
    ['a bad name', { subscribe: ['ok', 'no spaces'] }, undefined, 'flow.triggers.subscribe[1]', /letters, digits/],
    ['a subscription with a bad mode', { subscribe: [{ name: 'x', mode: 'later' }] }, undefined, 'flow.triggers.subscribe[0].mode', /got 'later'/],
    ['one name with two modes', { subscribe: ['x', { name: 'x', mode: 'manual' }] }, undefined, 'flow.triggers.subscribe', /twice, with two modes/],
    ['a definition without a type', { define: { name: 'x' } }, undefined, 'flow.triggers.define[0].type', /trigger type/],
    ['a definition with a bad type', { define: [{ name: 'x', type: 'Web Hook' }] }, undefined, 'flow.triggers.define[0].type', /got 'Web Hook'/],
    ['a definition with an unknown key', { define: { name: 'x', type: 'event', cron: '* * * * *' } }, undefined, 'flow.triggers.define[0].cron', /known keys here: name, type, displayName, description, config/],
    ['a config that is not an object', { define: { name: 'x', type: 'event', config: 'order.*' } }, undefined, 'flow.triggers.define[0].config', /must be an object/],
    ['a config that is not JSON data', { define: { name: 'x', type: 'event', config: { ratio: NaN } } }, undefined, 'flow.triggers.define[0].config', /must be JSON data/],
    ['a trigger defined twice', { define: [{ name: 'x', type: 'event' }, { name: 'x', type: 'manual' }] }, undefined, 'flow.triggers.define', /declares trigger 'x' twice/],
    ['a display name that is not a string', { define: { name: 'x', type: 'manual', displayName: 3 } }, undefined, 'flow.triggers.define[0].displayName', /must be a string/],
  ]

  for (const [label, triggers, flow, field, message] of cases) {
    test(label, () => {
      assert.throws(
        () => withTriggers(triggers, flow),
        (/** @type {unknown} */ error) => {
          assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`)
          assert.equal(error.field, field)
          assert.match(error.message, message)
          return true
        },
      )
    })
  }
})

/**
 * A function's `export const config`: validated, and normalised to the canonical step config that
 * the host reads when it discovers functions.
 *
 * The canonical shape is shared with the Python SDK (`StepConfig.to_dict()`), key for key and in
 * the same order, with times in milliseconds:
 * `{flow, name, entry, subscribes, emits, attempts, backoff: {type, delayMs, maxDelayMs}, timeoutMs,
 * isolation, reuse, preload, memoryMb, cpuMs, concurrency, maxRuns, concurrencyKey, keyConcurrency,
 * priority, env, awaitBefore, awaitAfter, triggers}`, each await `null` or `{type, delayMs, event,
 * match, method, schema, cron, timezone, timeoutMs, timeoutAction, attempts, hooks: {register,
 * resolve, timeout}}` (the Python SDK's `Await.to_dict()`), triggers `null` or `{subscribe: [{name,
 * mode}], define: [{name, type, displayName, description, config}]}` (its `Triggers.to_dict()`).
 *
 * @typedef {import('../index.js').FunctionConfig} FunctionConfig
 * @typedef {import('../index.js').StepConfig} StepConfig
 * @typedef {import('../index.js').NormalizeOptions} NormalizeOptions
 * @typedef {import('../index.js').CanonicalAwait} CanonicalAwait
 * @typedef {import('../index.js').CanonicalTriggers} CanonicalTriggers
 */

import { basename, extname } from 'node:path'
import { fileURLToPath } from 'node:url'

import { ConfigError } from './errors.js'
import { formatValue } from './format.js'
import { assertSendable } from './runtime/values.js'

/** Flow, step and event names: letters, digits and `_ . : -`. Same pattern as the Python SDK. */
export const NAME_PATTERN = /^[A-Za-z0-9_.:-]+$/

/** A step runs once unless it asks for more attempts (the first try counts). */
export const DEFAULT_ATTEMPTS = 1

/** Delay before retry n (n = 1, 2, …): `delayMs * 2^(n-1)`, capped at `maxDelayMs`. */
export const DEFAULT_BACKOFF = Object.freeze({
  type: /** @type {const} */ ('exponential'),
  delayMs: 1000,
  maxDelayMs: 60000,
})

const CONFIG_KEYS = [
  'flow', 'attempts', 'backoff', 'timeout', 'isolation', 'reuse', 'memory', 'cpu', 'concurrency',
  'maxRuns', 'concurrencyKey', 'keyConcurrency', 'priority', 'env',
]
/** Flow control of the whole flow: declared on its entry step only. */
const FLOW_LEVEL_KEYS = ['maxRuns', 'concurrencyKey', 'keyConcurrency', 'priority']
/** Run priorities, higher first; the same range as the Python SDK and the host. */
export const MIN_PRIORITY = -1000
export const MAX_PRIORITY = 1000
/** A JSON Pointer (RFC 6901): `''` or `/token/token`, `~` escaped as `~0` and `/` as `~1`. */
const JSON_POINTER_PATTERN = /^(\/([^~/]|~[01])*)*$/
const FLOW_KEYS = ['name', 'step', 'role', 'entry', 'subscribes', 'emits', 'awaitBefore', 'awaitAfter', 'triggers']
const BACKOFF_KEYS = ['type', 'delay', 'maxDelay']
const BACKOFF_TYPES = ['fixed', 'exponential']
const ROLES = ['entry', 'step']
/** Environment variable names a step may declare; the same pattern as the Python SDK. */
export const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/

/**
 * Why a key of the seed system's config (nuxt-queue/nvent) is refused, and what to write instead.
 * @type {Record<string, string>}
 */
const SEED_KEY_HINTS = {
  queue: 'the seed\'s queue options are gone; set attempts, backoff and timeout at the top level of config',
  worker: 'worker options are set on the host (flowhost.toml), not per function',
  'flow.stepTimeout': 'use timeout (milliseconds) at the top level of config',
  ...Object.fromEntries(['awaitBefore', 'awaitAfter'].flatMap((position) => [
    [`flow.${position}.path`, 'the resolve URL is made for each run and step; no path is declared'],
    [`flow.${position}.filterKey`, "use match: { payloadField: '/json/pointer/into/the/input' }"],
  ])),
}

/** Await types, and the keys each one takes besides the ones every await takes. */
const AWAIT_TYPE_KEYS = Object.freeze({
  time: ['delay'],
  event: ['event', 'match'],
  webhook: ['method', 'schema'],
  schedule: ['cron', 'timezone'],
})
const AWAIT_COMMON_KEYS = ['type', 'timeout', 'timeoutAction', 'attempts', 'hooks']
const AWAIT_KEYS = [...AWAIT_COMMON_KEYS, ...Object.values(AWAIT_TYPE_KEYS).flat()]
const TIMEOUT_ACTIONS = ['fail', 'continue', 'retry']
const WEBHOOK_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']
const HOOK_KINDS = ['register', 'resolve', 'timeout']
/** Trigger subscriptions' modes; a trigger type is a short lowercase word (the host knows them). */
const TRIGGER_MODES = ['auto', 'manual']
const TRIGGER_TYPE_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/
const TRIGGER_NAME_MAX = 200
const TRIGGERS_KEYS = ['subscribe', 'define', 'mode']
const TRIGGER_SUBSCRIBE_KEYS = ['name', 'mode']
const TRIGGER_DEFINE_KEYS = ['name', 'type', 'displayName', 'description', 'config']
/** Await registrations in all for `timeoutAction: 'retry'`, as in the Python SDK. */
export const DEFAULT_AWAIT_ATTEMPTS = 3
/** A hook is an export of the step's file, by name. */
const EXPORT_NAME_PATTERN = /^[A-Za-z_$][A-Za-z0-9_$]*$/

/**
 * Validate `config` and return the canonical step config (frozen).
 *
 * `file` (a path or a `file:` URL) names the function file in error messages, and gives the step
 * its default name: the file name without its extension, like the Python SDK defaults to the
 * function's name.
 *
 * @param {unknown} config the module's `config` export
 * @param {NormalizeOptions} [options]
 * @returns {StepConfig}
 * @throws {ConfigError} naming the file and the offending field
 */
export function normalizeConfig(config, options = {}) {
  const file = displayPath(options.file)
  const section = expectObject(config, 'config', file)
  rejectUnknownKeys(section, CONFIG_KEYS, '', file)

  if (section.flow === undefined) {
    throw new ConfigError(
      "is required: { name, step, subscribes: [...] } or { name, step, role: 'entry' }",
      { file, field: 'flow' },
    )
  }
  const flow = expectObject(section.flow, 'flow', file)
  rejectUnknownKeys(flow, FLOW_KEYS, 'flow.', file)

  if (Array.isArray(flow.name)) {
    throw new ConfigError(
      `must be one flow name: a function is a step of exactly one flow (got ${formatValue(flow.name)})`,
      { file, field: 'flow.name' },
    )
  }
  const flowName = checkName(flow.name, 'flow.name', file)
  const name = stepName(flow.step, file)
  const entry = isEntry(flow, file)
  const subscribes = eventNames(flow.subscribes, 'flow.subscribes', file)
  const emits = eventNames(flow.emits, 'flow.emits', file)

  if (entry && subscribes.length > 0) {
    throw new ConfigError(
      `an entry step cannot subscribe to events; it receives the run's input (got ${formatValue(subscribes)})`,
      { file, field: 'flow.subscribes' },
    )
  }
  if (!entry && subscribes.length === 0) {
    throw new ConfigError(
      `step '${name}' is not the entry step, so it must subscribe to at least one event ` +
        "(set flow.subscribes, or flow.role: 'entry' for the flow's first step)",
      { file, field: 'flow.subscribes' },
    )
  }

  const flowControl = flowControlKeys(section, entry, file)

  return Object.freeze({
    flow: flowName,
    name,
    entry,
    subscribes: Object.freeze(subscribes),
    emits: Object.freeze(emits),
    attempts: attemptCount(section.attempts, file),
    backoff: Object.freeze(backoffPolicy(section.backoff, file)),
    timeoutMs: timeoutMs(section.timeout, file),
    isolation: isolation(section.isolation, file),
    reuse: section.reuse === undefined ? 1 : positiveInteger(section.reuse, 'reuse', 'jobs one child serves', file),
    // Modules a Python zygote imports before forking; Node children have no zygote.
    preload: Object.freeze([]),
    memoryMb: optionalPositiveInteger(section.memory, 'memory', 'MiB', file),
    cpuMs: optionalPositiveInteger(section.cpu, 'cpu', 'milliseconds of CPU time', file),
    concurrency: optionalPositiveInteger(section.concurrency, 'concurrency', 'attempts queued or running at once, on all hosts', file),
    ...flowControl,
    env: Object.freeze(envNames(section.env, file)),
    awaitBefore: awaitConfig(flow.awaitBefore, 'flow.awaitBefore', file),
    awaitAfter: awaitConfig(flow.awaitAfter, 'flow.awaitAfter', file),
    triggers: triggersConfig(flow.triggers, entry, name, file),
  })
}

/**
 * `flow.triggers` of an entry step: `{ subscribe, define, mode }` → the canonical triggers (the
 * Python SDK's `Triggers.to_dict()`); absent → `null`. Types' configs are checked by the host.
 * @param {unknown} value
 * @param {boolean} entry
 * @param {string} step
 * @param {string | undefined} file
 * @returns {CanonicalTriggers | null}
 */
function triggersConfig(value, entry, step, file) {
  if (value === undefined || value === null) return null
  const field = 'flow.triggers'
  if (!entry) {
    throw new ConfigError(
      `step '${step}' declares triggers, which start the flow: declare them on the flow's entry step`,
      { file, field },
    )
  }
  const section = expectObject(value, field, file)
  rejectUnknownKeys(section, TRIGGERS_KEYS, `${field}.`, file)
  const defaultMode = triggerMode(section.mode ?? 'auto', `${field}.mode`, file)
  const subscribe = triggerSubscriptions(section.subscribe, defaultMode, file)
  const { define = [] } = section
  const items = isPlainObject(define) ? [define] : define
  if (!Array.isArray(items)) {
    throw new ConfigError(`must be an object or a list of them (got ${formatValue(define)})`, { file, field: `${field}.define` })
  }
  const definitions = items.map((item, index) => triggerDefinition(item, `${field}.define[${index}]`, file))
  const names = definitions.map((d) => d.name)
  const twice = names.find((name, index) => names.indexOf(name) !== index)
  if (twice !== undefined) {
    throw new ConfigError(`declares trigger '${twice}' twice`, { file, field: `${field}.define` })
  }
  return Object.freeze({ subscribe: Object.freeze(subscribe), define: Object.freeze(definitions) })
}

/**
 * @param {unknown} value
 * @param {'auto' | 'manual'} defaultMode
 * @param {string | undefined} file
 * @returns {{name: string, mode: 'auto' | 'manual'}[]}
 */
function triggerSubscriptions(value, defaultMode, file) {
  const field = 'flow.triggers.subscribe'
  if (value === undefined) return []
  const items = typeof value === 'string' || isPlainObject(value) ? [value] : value
  if (!Array.isArray(items)) {
    throw new ConfigError(`must be a trigger name or a list of them (got ${formatValue(value)})`, { file, field })
  }
  /** @type {Map<string, 'auto' | 'manual'>} */
  const found = new Map()
  items.forEach((item, index) => {
    const where = `${field}[${index}]`
    let name
    let mode = defaultMode
    if (isPlainObject(item)) {
      rejectUnknownKeys(item, TRIGGER_SUBSCRIBE_KEYS, `${where}.`, file)
      name = triggerName(item.name, `${where}.name`, file)
      mode = triggerMode(item.mode ?? defaultMode, `${where}.mode`, file)
    } else {
      name = triggerName(item, where, file)
    }
    const seen = found.get(name)
    if (seen !== undefined && seen !== mode) {
      throw new ConfigError(`names trigger '${name}' twice, with two modes`, { file, field })
    }
    if (seen === undefined) found.set(name, mode)
  })
  return [...found].map(([name, mode]) => Object.freeze({ name, mode }))
}

/**
 * @param {unknown} value
 * @param {string} field
 * @param {string | undefined} file
 * @returns {CanonicalTriggers['define'][number]}
 */
function triggerDefinition(value, field, file) {
  if (!isPlainObject(value)) {
    throw new ConfigError(`must be an object { name, type, config } (got ${formatValue(value)})`, { file, field })
  }
  rejectUnknownKeys(value, TRIGGER_DEFINE_KEYS, `${field}.`, file)
  const name = triggerName(value.name, `${field}.name`, file)
  const { type, displayName = null, description = null, config = {} } = value
  if (typeof type !== 'string' || !TRIGGER_TYPE_PATTERN.test(type)) {
    throw new ConfigError(
      `must be a trigger type such as 'event', 'webhook', 'schedule' or 'manual' (got ${formatValue(type)})`,
      { file, field: `${field}.type` },
    )
  }
  for (const [key, text] of [['displayName', displayName], ['description', description]]) {
    if (text !== null && typeof text !== 'string') {
      throw new ConfigError(`must be a string (got ${formatValue(text)})`, { file, field: `${field}.${key}` })
    }
  }
  if (!isPlainObject(config)) {
    throw new ConfigError(`must be an object of JSON data (got ${formatValue(config)})`, { file, field: `${field}.config` })
  }
  try {
    assertSendable(config, 'the config', { jsonData: true })
  } catch (error) {
    throw new ConfigError(`must be JSON data: ${/** @type {Error} */ (error).message}`, { file, field: `${field}.config` })
  }
  return Object.freeze({
    name,
    type,
    displayName: /** @type {string | null} */ (displayName),
    description: /** @type {string | null} */ (description),
    config: /** @type {Record<string, unknown>} */ (JSON.parse(JSON.stringify(config))),
  })
}

/**
 * @param {unknown} value
 * @param {string} field
 * @param {string | undefined} file
 * @returns {string}
 */
function triggerName(value, field, file) {
  const name = checkName(value, field, file)
  if (name.length > TRIGGER_NAME_MAX) {
    throw new ConfigError(`must be at most ${TRIGGER_NAME_MAX} characters (got ${name.length})`, { file, field })
  }
  return name
}

/**
 * @param {unknown} value
 * @param {string} field
 * @param {string | undefined} file
 * @returns {'auto' | 'manual'}
 */
function triggerMode(value, field, file) {
  if (typeof value !== 'string' || !TRIGGER_MODES.includes(value)) {
    throw new ConfigError(`must be 'auto' or 'manual' (got ${formatValue(value)})`, { file, field })
  }
  return /** @type {'auto' | 'manual'} */ (value)
}

/**
 * Declare a function's config: `export const config = defineConfig({ flow: {...}, attempts: 3 })`.
 *
 * Validates it as `normalizeConfig` does, so a mistake fails when the file is loaded, and returns
 * `config` itself, unchanged (the host normalises it again when it discovers the file). Error
 * messages name the file that called `defineConfig`.
 *
 * @template {FunctionConfig} C
 * @param {C} config
 * @returns {C}
 * @throws {ConfigError}
 */
export function defineConfig(config) {
  normalizeConfig(config, { file: callerFile(defineConfig) })
  return config
}

/**
 * @param {unknown} value
 * @param {string} field
 * @param {string | undefined} file
 * @returns {Record<string, unknown>}
 */
function expectObject(value, field, file) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`must be an object (got ${formatValue(value)})`, { file, field })
  }
  return /** @type {Record<string, unknown>} */ (value)
}

/**
 * @param {Record<string, unknown>} section
 * @param {string[]} known
 * @param {string} prefix the section's path, with a trailing dot, or '' at the top
 * @param {string | undefined} file
 */
function rejectUnknownKeys(section, known, prefix, file) {
  for (const key of Object.keys(section)) {
    if (known.includes(key)) continue
    const field = `${prefix}${key}`
    const hint = SEED_KEY_HINTS[field] ?? `known keys here: ${known.join(', ')}`
    throw new ConfigError(`unknown key (${hint})`, { file, field })
  }
}

/**
 * @param {unknown} value
 * @param {string} field
 * @param {string | undefined} file
 * @returns {string}
 */
function checkName(value, field, file) {
  if (typeof value !== 'string' || !NAME_PATTERN.test(value)) {
    throw new ConfigError(
      `must be a non-empty name of letters, digits and _ . : - (got ${formatValue(value)})`,
      { file, field },
    )
  }
  return value
}

/**
 * @param {unknown} value
 * @param {string | undefined} file
 * @returns {string}
 */
function stepName(value, file) {
  if (value !== undefined) return checkName(value, 'flow.step', file)
  if (file === undefined) {
    throw new ConfigError('is required (it defaults to the file name only when the file is known)', {
      file,
      field: 'flow.step',
    })
  }
  const fromFile = basename(file, extname(file))
  if (!NAME_PATTERN.test(fromFile)) {
    throw new ConfigError(
      `is not set, and the file name ${formatValue(fromFile)} is not a valid step name; set flow.step`,
      { file, field: 'flow.step' },
    )
  }
  return fromFile
}

/**
 * `role: 'entry' | 'step'` (the seed's spelling) or `entry: true|false` (the Python SDK's).
 * @param {Record<string, unknown>} flow
 * @param {string | undefined} file
 * @returns {boolean}
 */
function isEntry(flow, file) {
  const { role, entry } = flow
  if (role !== undefined && (typeof role !== 'string' || !ROLES.includes(role))) {
    throw new ConfigError(`must be 'entry' or 'step' (got ${formatValue(role)})`, {
      file,
      field: 'flow.role',
    })
  }
  if (entry !== undefined && typeof entry !== 'boolean') {
    throw new ConfigError(`must be true or false (got ${formatValue(entry)})`, {
      file,
      field: 'flow.entry',
    })
  }
  if (role !== undefined && entry !== undefined && (role === 'entry') !== entry) {
    throw new ConfigError(`is ${entry} but flow.role is '${role}'; set only one of them`, {
      file,
      field: 'flow.entry',
    })
  }
  return entry ?? role === 'entry'
}

/**
 * `'a'` or `['a', 'b']` → a list without duplicates, in order; absent → `[]`.
 * @param {unknown} value
 * @param {string} field
 * @param {string | undefined} file
 * @returns {string[]}
 */
function eventNames(value, field, file) {
  if (value === undefined) return []
  if (typeof value === 'string') return [checkName(value, field, file)]
  if (!Array.isArray(value)) {
    throw new ConfigError(
      `must be an event name or a list of event names (got ${formatValue(value)})`,
      { file, field },
    )
  }
  const names = value.map((item, index) => checkName(item, `${field}[${index}]`, file))
  return [...new Set(names)]
}

/**
 * @param {unknown} value
 * @param {string | undefined} file
 * @returns {number}
 */
function attemptCount(value, file) {
  if (value === undefined) return DEFAULT_ATTEMPTS
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new ConfigError(`must be a whole number >= 1, the first try included (got ${formatValue(value)})`, {
      file,
      field: 'attempts',
    })
  }
  return value
}

/**
 * A number is a fixed delay in milliseconds; an object is `{type, delay, maxDelay}` with each key
 * defaulting to `DEFAULT_BACKOFF` (as the Python SDK's `Backoff` does).
 * @param {unknown} value
 * @param {string | undefined} file
 * @returns {StepConfig['backoff']}
 */
function backoffPolicy(value, file) {
  if (value === undefined) return { ...DEFAULT_BACKOFF }
  if (typeof value === 'number') {
    const delayMs = milliseconds(value, 'backoff', file)
    return { type: 'fixed', delayMs, maxDelayMs: delayMs }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(
      `must be milliseconds (a fixed delay) or { type: 'fixed' | 'exponential', delay, maxDelay } (got ${formatValue(value)})`,
      { file, field: 'backoff' },
    )
  }
  const policy = /** @type {Record<string, unknown>} */ (value)
  rejectUnknownKeys(policy, BACKOFF_KEYS, 'backoff.', file)
  const { type = DEFAULT_BACKOFF.type, delay, maxDelay } = policy
  if (typeof type !== 'string' || !BACKOFF_TYPES.includes(type)) {
    throw new ConfigError(`must be 'fixed' or 'exponential' (got ${formatValue(type)})`, {
      file,
      field: 'backoff.type',
    })
  }
  return {
    type: /** @type {'fixed' | 'exponential'} */ (type),
    delayMs: delay === undefined ? DEFAULT_BACKOFF.delayMs : milliseconds(delay, 'backoff.delay', file),
    maxDelayMs:
      maxDelay === undefined ? DEFAULT_BACKOFF.maxDelayMs : milliseconds(maxDelay, 'backoff.maxDelay', file),
  }
}

/**
 * @param {unknown} value
 * @param {string | undefined} file
 * @returns {number | null}
 */
function timeoutMs(value, file) {
  if (value === undefined || value === null) return null
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new ConfigError(`must be a positive number of milliseconds (got ${formatValue(value)})`, {
      file,
      field: 'timeout',
    })
  }
  return Math.max(1, Math.round(value))
}

/**
 * Node steps always run in a child process: only trusted Python functions may share the host's.
 * @param {unknown} value
 * @param {string | undefined} file
 * @returns {'process'}
 */
function isolation(value, file) {
  if (value === undefined || value === 'process') return 'process'
  const reason = value === 'inprocess'
    ? "'inprocess' is not available to JavaScript steps: in-process isolation is for trusted Python " +
      "functions, which run inside the host's own process; Node steps always run in a child process"
    : `must be 'process' (got ${formatValue(value)})`
  throw new ConfigError(reason, { file, field: 'isolation' })
}

/**
 * @param {unknown} value
 * @param {string} field
 * @param {string} unit what the number counts, for the message
 * @param {string | undefined} file
 * @returns {number}
 */
function positiveInteger(value, field, unit, file) {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new ConfigError(`must be a whole number >= 1 (${unit}; got ${formatValue(value)})`, { file, field })
  }
  return value
}

/**
 * `undefined` or `null` (no limit) → `null`; else a positive integer.
 * @param {unknown} value
 * @param {string} field
 * @param {string} unit
 * @param {string | undefined} file
 * @returns {number | null}
 */
function optionalPositiveInteger(value, field, unit, file) {
  return value === undefined || value === null ? null : positiveInteger(value, field, unit, file)
}

/**
 * `maxRuns`, `concurrencyKey`, `keyConcurrency` and `priority`: the flow's flow control, declared
 * on its entry step (the same rules as the Python SDK's `@step`).
 * @param {Record<string, unknown>} section
 * @param {boolean} entry
 * @param {string | undefined} file
 * @returns {{maxRuns: number | null, concurrencyKey: string | null, keyConcurrency: number | null,
 *   priority: number | null}}
 */
function flowControlKeys(section, entry, file) {
  const declared = FLOW_LEVEL_KEYS.filter((key) => section[key] !== undefined && section[key] !== null)
  if (declared.length > 0 && !entry) {
    throw new ConfigError("applies to the whole flow: declare it on the flow's entry step", { file, field: declared[0] })
  }
  const maxRuns = optionalPositiveInteger(section.maxRuns, 'maxRuns', 'runs at once', file)
  const keyConcurrency = optionalPositiveInteger(section.keyConcurrency, 'keyConcurrency', 'runs per key at once', file)
  const { concurrencyKey = null, priority = null } = section
  if (concurrencyKey !== null && (typeof concurrencyKey !== 'string' || !JSON_POINTER_PATTERN.test(concurrencyKey))) {
    throw new ConfigError(
      `must be a JSON Pointer into the run's input, like '/tenant' (got ${formatValue(concurrencyKey)})`,
      { file, field: 'concurrencyKey' },
    )
  }
  if (keyConcurrency !== null && concurrencyKey === null) {
    throw new ConfigError('limits runs per concurrency key: set concurrencyKey too', { file, field: 'keyConcurrency' })
  }
  if (concurrencyKey !== null && keyConcurrency === null && maxRuns === null) {
    throw new ConfigError(
      'needs keyConcurrency (runs per key at once) or maxRuns (shared fairly between keys)',
      { file, field: 'concurrencyKey' },
    )
  }
  if (priority !== null && (typeof priority !== 'number' || !Number.isInteger(priority) || priority < MIN_PRIORITY || priority > MAX_PRIORITY)) {
    throw new ConfigError(`must be a whole number from ${MIN_PRIORITY} to ${MAX_PRIORITY} (got ${formatValue(priority)})`, {
      file,
      field: 'priority',
    })
  }
  return {
    maxRuns,
    concurrencyKey: /** @type {string | null} */ (concurrencyKey),
    keyConcurrency,
    priority: /** @type {number | null} */ (priority),
  }
}

/**
 * The names of the host's environment variables the step receives: deduplicated, in order.
 * @param {unknown} value
 * @param {string | undefined} file
 * @returns {string[]}
 */
function envNames(value, file) {
  if (value === undefined) return []
  if (!Array.isArray(value)) {
    throw new ConfigError(`must be a list of environment variable names (got ${formatValue(value)})`, {
      file,
      field: 'env',
    })
  }
  const names = value.map((name, index) => {
    if (typeof name !== 'string' || !ENV_NAME_PATTERN.test(name)) {
      throw new ConfigError(
        `must be an environment variable name: letters, digits and _, not starting with a digit (got ${formatValue(name)})`,
        { file, field: `env[${index}]` },
      )
    }
    return name
  })
  return [...new Set(names)]
}

/**
 * An await (`flow.awaitBefore` / `flow.awaitAfter`) → its canonical form, or `null` when absent.
 * Durations in ms; a key of another type of await is refused rather than ignored.
 * @param {unknown} value
 * @param {string} field
 * @param {string | undefined} file
 * @returns {CanonicalAwait | null}
 */
function awaitConfig(value, field, file) {
  if (value === undefined || value === null) return null
  const section = expectObject(value, field, file)
  rejectUnknownKeys(section, AWAIT_KEYS, `${field}.`, file)
  const type = section.type
  if (typeof type !== 'string' || !Object.hasOwn(AWAIT_TYPE_KEYS, type)) {
    throw new ConfigError(`must be one of ${Object.keys(AWAIT_TYPE_KEYS).map((t) => `'${t}'`).join(', ')} (got ${formatValue(type)})`, {
      file,
      field: `${field}.type`,
    })
  }
  const own = AWAIT_TYPE_KEYS[/** @type {keyof typeof AWAIT_TYPE_KEYS} */ (type)]
  for (const key of Object.keys(section)) {
    if (AWAIT_COMMON_KEYS.includes(key) || own.includes(key)) continue
    const owner = Object.entries(AWAIT_TYPE_KEYS).find(([, keys]) => keys.includes(key))?.[0]
    throw new ConfigError(`applies to ${owner} awaits only, and this await's type is '${type}'`, {
      file,
      field: `${field}.${key}`,
    })
  }
  const required = { time: 'delay', event: 'event', schedule: 'cron' }[type]
  if (required !== undefined && section[required] === undefined) {
    throw new ConfigError(`is required for ${type === 'event' ? 'an' : 'a'} ${type} await`, { file, field: `${field}.${required}` })
  }
  return Object.freeze({
    type: /** @type {CanonicalAwait['type']} */ (type),
    delayMs: section.delay === undefined ? null : positiveMilliseconds(section.delay, `${field}.delay`, file),
    event: section.event === undefined ? null : checkName(section.event, `${field}.event`, file),
    match: matchPointers(section.match, `${field}.match`, file),
    method: webhookMethod(section.method, `${field}.method`, file),
    schema: jsonSchema(section.schema, `${field}.schema`, file),
    cron: section.cron === undefined ? null : cronExpression(section.cron, `${field}.cron`, file),
    timezone: timezone(section.timezone, `${field}.timezone`, file),
    timeoutMs: section.timeout === undefined || section.timeout === null
      ? null
      : positiveMilliseconds(section.timeout, `${field}.timeout`, file),
    timeoutAction: timeoutAction(section.timeoutAction, `${field}.timeoutAction`, file),
    attempts: section.attempts === undefined
      ? DEFAULT_AWAIT_ATTEMPTS
      : positiveInteger(section.attempts, `${field}.attempts`, "registrations in all for timeoutAction: 'retry'", file),
    hooks: Object.freeze(hookNames(section.hooks, `${field}.hooks`, file)),
  })
}

/**
 * A positive, finite duration in ms, rounded to a whole ms and never below 1.
 * @param {unknown} value
 * @param {string} field
 * @param {string | undefined} file
 * @returns {number}
 */
function positiveMilliseconds(value, field, file) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new ConfigError(`must be a positive, finite number of milliseconds (got ${formatValue(value)})`, { file, field })
  }
  return Math.max(1, Math.round(value))
}

/**
 * `{ payloadField: '/json/pointer' }` (RFC 6901 pointers into the step's input or result); an
 * empty object is no filter.
 * @param {unknown} value
 * @param {string} field
 * @param {string | undefined} file
 * @returns {Readonly<Record<string, string>> | null}
 */
function matchPointers(value, field, file) {
  if (value === undefined || value === null) return null
  if (!isPlainObject(value)) {
    throw new ConfigError(`must be an object of payload field -> JSON Pointer (got ${formatValue(value)})`, { file, field })
  }
  const entries = Object.entries(value)
  for (const [key, pointer] of entries) {
    if (key === '') throw new ConfigError('keys must be non-empty payload field names', { file, field })
    if (typeof pointer !== 'string' || !isJsonPointer(pointer)) {
      throw new ConfigError(
        `must be a JSON Pointer such as '/order/id', or '' for the whole value (got ${formatValue(pointer)})`,
        { file, field: `${field}.${key}` },
      )
    }
  }
  return entries.length === 0 ? null : Object.freeze(/** @type {Record<string, string>} */ (Object.fromEntries(entries)))
}

/**
 * RFC 6901: empty, or `/`-prefixed tokens in which `~` is only `~0` or `~1`.
 * @param {string} text
 */
function isJsonPointer(text) {
  return (text === '' || text.startsWith('/')) && !/~(?![01])/.test(text)
}

/**
 * @param {unknown} value
 * @param {string} field
 * @param {string | undefined} file
 * @returns {string}
 */
function webhookMethod(value, field, file) {
  if (value === undefined) return 'POST'
  const upper = typeof value === 'string' ? value.toUpperCase() : undefined
  if (upper === undefined || !WEBHOOK_METHODS.includes(upper)) {
    throw new ConfigError(`must be one of ${WEBHOOK_METHODS.join(', ')} (got ${formatValue(value)})`, { file, field })
  }
  return upper
}

/**
 * A JSON Schema for the webhook's body: a plain object of JSON data (the host validates bodies).
 * @param {unknown} value
 * @param {string} field
 * @param {string | undefined} file
 * @returns {Readonly<Record<string, unknown>> | null}
 */
function jsonSchema(value, field, file) {
  if (value === undefined || value === null) return null
  if (!isPlainObject(value)) {
    throw new ConfigError(`must be a JSON Schema object (got ${formatValue(value)})`, { file, field })
  }
  try {
    assertSendable(value, 'the schema', { jsonData: true })
  } catch (error) {
    throw new ConfigError(`must be JSON data: ${/** @type {Error} */ (error).message}`, { file, field })
  }
  return /** @type {Record<string, unknown>} */ (JSON.parse(JSON.stringify(value)))
}

/**
 * 5 to 7 fields, or a macro such as `@daily`; whitespace runs become one space. The host parses
 * the expression in full at discovery.
 * @param {unknown} value
 * @param {string} field
 * @param {string | undefined} file
 * @returns {string}
 */
function cronExpression(value, field, file) {
  const parts = typeof value === 'string' ? value.trim().split(/\s+/).filter(Boolean) : []
  const macro = parts.length === 1 && parts[0].startsWith('@')
  if (!macro && (parts.length < 5 || parts.length > 7)) {
    throw new ConfigError(
      `must be a cron expression of 5 to 7 fields or a macro such as '@daily' (got ${formatValue(value)})`,
      { file, field },
    )
  }
  return parts.join(' ')
}

/**
 * @param {unknown} value
 * @param {string} field
 * @param {string | undefined} file
 * @returns {string}
 */
function timezone(value, field, file) {
  if (value === undefined) return 'UTC'
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ConfigError(`must be an IANA time zone name such as 'Europe/Berlin' (got ${formatValue(value)})`, { file, field })
  }
  return value
}

/**
 * @param {unknown} value
 * @param {string} field
 * @param {string | undefined} file
 * @returns {'fail' | 'continue' | 'retry'}
 */
function timeoutAction(value, field, file) {
  if (value === undefined) return 'fail'
  if (typeof value !== 'string' || !TIMEOUT_ACTIONS.includes(value)) {
    throw new ConfigError(`must be 'fail', 'continue' or 'retry' (got ${formatValue(value)})`, { file, field })
  }
  return /** @type {'fail' | 'continue' | 'retry'} */ (value)
}

/**
 * `{ register, resolve, timeout }`: names of functions the file exports (checked at discovery).
 * @param {unknown} value
 * @param {string} field
 * @param {string | undefined} file
 * @returns {CanonicalAwait['hooks']}
 */
function hookNames(value, field, file) {
  /** @type {Record<string, string | null>} */
  const hooks = { register: null, resolve: null, timeout: null }
  if (value === undefined || value === null) return /** @type {CanonicalAwait['hooks']} */ (hooks)
  const section = expectObject(value, field, file)
  rejectUnknownKeys(section, HOOK_KINDS, `${field}.`, file)
  for (const kind of HOOK_KINDS) {
    const name = section[kind]
    if (name === undefined || name === null) continue
    if (typeof name !== 'string' || !EXPORT_NAME_PATTERN.test(name) || name === 'default') {
      throw new ConfigError(
        `must be the name of a function the file exports, e.g. 'sendApprovalMail' for export async function sendApprovalMail(data, ctx) (got ${formatValue(name)})`,
        { file, field: `${field}.${kind}` },
      )
    }
    hooks[kind] = name
  }
  return /** @type {CanonicalAwait['hooks']} */ (hooks)
}

/**
 * @param {unknown} value
 * @returns {value is Record<string, unknown>}
 */
function isPlainObject(value) {
  if (typeof value !== 'object' || value === null) return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/**
 * A finite, non-negative duration in milliseconds, rounded to a whole millisecond.
 * @param {unknown} value
 * @param {string} field
 * @param {string | undefined} file
 * @returns {number}
 */
function milliseconds(value, field, file) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new ConfigError(`must be a finite number of milliseconds >= 0 (got ${formatValue(value)})`, {
      file,
      field,
    })
  }
  return Math.round(value)
}

/**
 * @param {string | URL | undefined} file
 * @returns {string | undefined}
 */
function displayPath(file) {
  if (file === undefined) return undefined
  if (file instanceof URL || file.startsWith('file:')) return fileURLToPath(file)
  return file
}

/**
 * The file of the code that called `fn`, from V8's structured stack trace; undefined if unknown.
 * @param {Function} fn
 * @returns {string | undefined}
 */
function callerFile(fn) {
  const original = Error.prepareStackTrace
  try {
    Error.prepareStackTrace = (_error, callSites) => callSites
    /** @type {{stack?: NodeJS.CallSite[]}} */
    const holder = {}
    Error.captureStackTrace(holder, fn)
    const name = holder.stack?.[0]?.getFileName()
    return name ? displayPath(name) : undefined
  } catch {
    return undefined
  } finally {
    Error.prepareStackTrace = original
  }
}

// Types of @flowhost/worker. Hand-written; `npm run typecheck` checks the JavaScript against them.

// ---------------------------------------------------------------------------------------------
// Function files
// ---------------------------------------------------------------------------------------------

/** A step handler: gets the step's input and the run context, returns the step's result. */
export type StepHandler<TInput = any, TOutput = unknown> = (
  input: TInput,
  ctx: RunContext,
) => TOutput | Promise<TOutput>

/**
 * Declare a file's step handler: `export default defineFunction(async (input, ctx) => result)`.
 * Returns `handler` itself; throws a TypeError if it is not a function taking `(input, ctx)`.
 *
 * The entry step's `input` is the run's input; any other step's `input` maps each event it
 * subscribes to, to the payload that was emitted with it.
 */
export function defineFunction<TInput = any, TOutput = unknown>(
  handler: StepHandler<TInput, TOutput>,
): StepHandler<TInput, TOutput>

/** A function file's `export const config`, as written. Durations are in milliseconds. */
export interface FunctionConfig {
  flow: FlowMembership
  /** Tries in all, the first included. Default 1. */
  attempts?: number
  /** A fixed delay in ms, or a policy. Default `{ type: 'exponential', delay: 1000, maxDelay: 60000 }`. */
  backoff?: number | BackoffConfig
  /** Wall-clock limit of one attempt, in ms. Default: none (the host's default applies). */
  timeout?: number | null
  /**
   * Where the step runs: always `'process'` (its own Node child process) for JavaScript.
   * `'inprocess'` is refused: in-process isolation is for trusted Python functions.
   */
  isolation?: 'process'
  /** Jobs one child process serves, one at a time, before it exits. Default 1 (a fresh process per attempt). */
  reuse?: number
  /** Memory cap of the child process, in MiB (Node's `--max-old-space-size`, and the host's limit). */
  memory?: number | null
  /** CPU time one attempt may use, in ms. */
  cpu?: number | null
  /** Attempts of this step queued or running at once, on all hosts together. Default: no limit. */
  concurrency?: number | null
  /** Entry step only: runs of the flow running or awaiting at once, on all hosts together. */
  maxRuns?: number | null
  /**
   * Entry step only: a JSON Pointer into the run's input (e.g. `'/tenant'`) naming its
   * concurrency key. Waiting runs are served round-robin between keys.
   */
  concurrencyKey?: string | null
  /** Entry step only: runs per concurrency key live at once. Needs `concurrencyKey`. */
  keyConcurrency?: number | null
  /** Entry step only: the runs' default priority, -1000 to 1000 (higher runs first). Default 0. */
  priority?: number | null
  /**
   * Names of the host's environment variables this step receives (children start with a
   * scrubbed environment): `['STRIPE_KEY']`.
   */
  env?: readonly string[]
}

export interface FlowMembership {
  /** The flow this step belongs to. */
  name: string
  /** The step's name; default: the file name without its extension. */
  step?: string
  /** `'entry'` for the flow's first step (the seed's spelling); or use `entry`. */
  role?: 'entry' | 'step'
  /** `true` for the flow's first step (the Python SDK's spelling); or use `role`. */
  entry?: boolean
  /** Events this step waits for, all of them (AND-join). Required unless it is the entry step. */
  subscribes?: string | readonly string[]
  /** Events this step may emit. */
  emits?: string | readonly string[]
  /** Hold the step back until this await resolves; the step then finds the resolution in `ctx.awaited`. */
  awaitBefore?: AwaitConfig | null
  /** Once the step completed, hold back the steps its emits would start until this await resolves. */
  awaitAfter?: AwaitConfig | null
  /**
   * Entry step only: what starts the flow from outside. `subscribe` names triggers whose fires
   * start a run (mode `'auto'`, the default, or `'manual'`: only a fire naming the flow starts
   * it); `define` declares triggers. Defining a trigger does not subscribe the flow to it.
   */
  triggers?: TriggersConfig | null
}

/** `flow.triggers`, as written. */
export interface TriggersConfig {
  /** Trigger names, or `{ name, mode }`. */
  subscribe?: string | TriggerSubscription | readonly (string | TriggerSubscription)[]
  /** One trigger declaration or a list of them. */
  define?: TriggerDefinition | readonly TriggerDefinition[]
  /** The mode of subscriptions given by name alone. Default `'auto'`. */
  mode?: 'auto' | 'manual'
}

export interface TriggerSubscription {
  name: string
  mode?: 'auto' | 'manual'
}

export interface TriggerDefinition {
  name: string
  /** `'event'`, `'webhook'`, `'schedule'`, `'manual'`, `'cloudevents'`, `'mqtt'`, `'amqp'`. */
  type: string
  displayName?: string | null
  description?: string | null
  /**
   * The type's settings, as JSON data. Every type takes `schema`, a JSON Schema each fire's
   * input must match; an event trigger takes `events`, the event names or patterns it fires on.
   */
  config?: Record<string, unknown>
}

/** What an await waits for, as written in `flow.awaitBefore` / `flow.awaitAfter`. Durations in ms. */
export type AwaitConfig = TimeAwait | EventAwait | WebhookAwait | ScheduleAwait

export interface AwaitOptions {
  /** ms until the await times out. Default: 24 h for event and webhook awaits, none for time and schedule. */
  timeout?: number | null
  /** What a timeout does: fail the step (default), continue without data (`ctx.awaited.data` is null), or register the await again. */
  timeoutAction?: 'fail' | 'continue' | 'retry'
  /** With `timeoutAction: 'retry'`: how many times the await is registered in all. Default 3. */
  attempts?: number
  /**
   * Names of functions the file exports, run as `(data, ctx)` when the await is registered,
   * resolved or times out (e.g. send the approval URL by mail on register). `ctx.emit` is refused there.
   */
  hooks?: { register?: string | null; resolve?: string | null; timeout?: string | null }
}

export interface TimeAwait extends AwaitOptions {
  type: 'time'
  /** ms from registration until the await resolves. */
  delay: number
}

export interface EventAwait extends AwaitOptions {
  type: 'event'
  /** The event's name. */
  event: string
  /**
   * Resolve only on an event whose payload fields equal values picked from the step's input
   * (awaitBefore) or result (awaitAfter) by JSON Pointers: `{ orderId: '/order/id' }`.
   */
  match?: Record<string, string> | null
}

export interface WebhookAwait extends AwaitOptions {
  type: 'webhook'
  /** The method the run's resolve URL accepts. Default `'POST'`. */
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  /** A JSON Schema the body must match. */
  schema?: Record<string, unknown> | null
}

export interface ScheduleAwait extends AwaitOptions {
  type: 'schedule'
  /** Resolves at the next fire time of this cron expression (5 or 6 fields, or a macro such as `@daily`). */
  cron: string
  /** IANA time zone of `cron`. Default `'UTC'`. */
  timezone?: string
}

export interface BackoffConfig {
  /** Default `'exponential'`: retry n waits `delay * 2^(n-1)`, capped at `maxDelay`. */
  type?: 'fixed' | 'exponential'
  /** ms; default 1000. */
  delay?: number
  /** ms; default 60000. */
  maxDelay?: number
}

/**
 * The canonical step config, identical to the Python SDK's `StepConfig.to_dict()` (same keys, same
 * order, durations in ms). This is what the host reads when it discovers functions.
 */
export interface StepConfig {
  readonly flow: string
  readonly name: string
  readonly entry: boolean
  readonly subscribes: readonly string[]
  readonly emits: readonly string[]
  readonly attempts: number
  readonly backoff: {
    readonly type: 'fixed' | 'exponential'
    readonly delayMs: number
    readonly maxDelayMs: number
  }
  readonly timeoutMs: number | null
  readonly isolation: 'process' | 'inprocess'
  readonly reuse: number
  /** Modules a Python zygote imports before forking; always `[]` for Node steps. */
  readonly preload: readonly string[]
  readonly memoryMb: number | null
  readonly cpuMs: number | null
  readonly concurrency: number | null
  readonly maxRuns: number | null
  readonly concurrencyKey: string | null
  readonly keyConcurrency: number | null
  readonly priority: number | null
  readonly env: readonly string[]
  readonly awaitBefore: CanonicalAwait | null
  readonly awaitAfter: CanonicalAwait | null
  readonly triggers: CanonicalTriggers | null
}

/** Triggers in the canonical config, the Python SDK's `Triggers.to_dict()`. */
export interface CanonicalTriggers {
  readonly subscribe: readonly { readonly name: string; readonly mode: 'auto' | 'manual' }[]
  readonly define: readonly {
    readonly name: string
    readonly type: string
    readonly displayName: string | null
    readonly description: string | null
    readonly config: Readonly<Record<string, unknown>>
  }[]
}

/** An await in the canonical config, the Python SDK's `Await.to_dict()`: every key, durations in ms. */
export interface CanonicalAwait {
  readonly type: 'time' | 'event' | 'webhook' | 'schedule'
  readonly delayMs: number | null
  readonly event: string | null
  readonly match: Readonly<Record<string, string>> | null
  readonly method: string
  readonly schema: Readonly<Record<string, unknown>> | null
  readonly cron: string | null
  readonly timezone: string
  readonly timeoutMs: number | null
  readonly timeoutAction: 'fail' | 'continue' | 'retry'
  readonly attempts: number
  readonly hooks: {
    readonly register: string | null
    readonly resolve: string | null
    readonly timeout: string | null
  }
}

export interface NormalizeOptions {
  /** The function file (a path or a `file:` URL): named in errors, and the default step name. */
  file?: string | URL | undefined
}

/**
 * Validate a config where it is declared and return it unchanged:
 * `export const config = defineConfig({...})`. Throws a ConfigError naming the calling file.
 */
export function defineConfig<const C extends FunctionConfig>(config: C): C

/** Validate a config and return the canonical, frozen StepConfig; throws a ConfigError. */
export function normalizeConfig(config: unknown, options?: NormalizeOptions): StepConfig

// ---------------------------------------------------------------------------------------------
// The run context (provided by the runtime that executes the step)
// ---------------------------------------------------------------------------------------------

/** What a step handler gets as `ctx`. Payloads and state values must be JSON-serialisable. */
export interface RunContext {
  /** The run this step belongs to. */
  readonly runId: string
  readonly flowName: string
  readonly stepName: string
  /** 1 on the first try, 2 on the first retry, … */
  readonly attempt: number
  /** The step's `attempts`: when `attempt === maxAttempts`, a failure fails the step. */
  readonly maxAttempts: number
  /**
   * `${runId}:${stepName}`: the same on every attempt of this step in this run. Pass it to
   * external systems (e.g. Stripe's `Idempotency-Key`) to make an at-least-once step exactly-once.
   */
  readonly idempotencyKey: string
  /** Aborted when the host cancels this attempt (run cancelled, or the step's timeout passed). */
  readonly signal: AbortSignal
  /**
   * How the step's `awaitBefore` resolved: `{ type, data }` where `data` is the webhook's body, the
   * matching event's payload, `{ scheduled_at }` for a schedule, and null for a time await or a
   * timeout with `timeoutAction: 'continue'`. `null` when the step has no awaitBefore.
   */
  readonly awaited: Awaited | null
  /**
   * In an await hook, which one (`'register'`, `'resolve'`, `'timeout'`); `null` in the step
   * itself. `emit` is refused in hooks.
   */
  readonly hook: HookKind | null
  /**
   * The W3C `traceparent` of the host's span of this attempt, when the host traces with
   * OpenTelemetry; `null` otherwise. Continue the trace from it (docs/metrics.md#tracing).
   */
  readonly traceparent: string | null
  /** Key/value state scoped to the run; every change is an event in the run's history. */
  readonly state: RunState
  /** Structured logs that become `log` events of the run. */
  readonly logger: StepLogger
  /**
   * Record event `name`; steps subscribed to it become ready once this step returns. A name the
   * step does not declare in `emits` is a RangeError. The emit is not answered by the host: it
   * resolves once the event is on its way, ahead of the step's result.
   */
  emit(name: string, payload?: unknown): Promise<void>
  /** Start, cancel or look up runs. */
  readonly flow: FlowControl
  /**
   * Tell the host this attempt is alive. The runtime already beats on its own timer; call this
   * from long synchronous stretches that yield now and then.
   */
  heartbeat(): void
  /** Report how far the attempt is: `value` from 0 to 1, with an optional message. */
  progress(value: number, message?: string | null): void
  /**
   * Messages out, through the host's connection to a `[connectors.NAME]` broker. At least once
   * with the step: a retried attempt publishes again (docs/connectors.md#actions-out).
   */
  readonly publish: Publish
  /**
   * An HTTP request made by the host and recorded in the run, secrets redacted. `url`, header and
   * query values, auth fields and a string `body` may hold `{run_id}`, `{flow}`, `{step}`,
   * `{attempt}`, `{idempotency_key}`, `{timestamp}`, `{uuid}`, `{env:NAME}` (declared in `env`)
   * and `{secret:NAME}` (listed in the host's `http_secrets`). A response status is not an error;
   * a connection failure, a timeout or a body above `maxResponseBytes` rejects with `ActionError`.
   */
  http(method: HttpMethod, url: string, options?: HttpOptions): Promise<HttpResponse>
}

/** Payloads: bytes as they are, a string as UTF-8, anything else as JSON. */
export type Payload = Uint8Array | string | unknown

export interface Publish {
  /** Resolves once the broker has the message (QoS 1: PUBACK; 2: PUBCOMP). */
  mqtt(topic: string, payload?: Payload, options?: MqttPublishOptions): Promise<MqttPublished>
  /**
   * Resolves once the broker confirmed it. `exchange` `''` is the default exchange (routing to the
   * queue named `routingKey`). `messageId` defaults to one built from the step's idempotency key
   * and the publish's place in the attempt: the same when a retried attempt publishes again.
   */
  amqp(exchange: string, routingKey: string, body?: Payload, options?: AmqpPublishOptions): Promise<AmqpPublished>
}

export interface MqttPublishOptions {
  /** Default 1. */
  qos?: 0 | 1 | 2
  retain?: boolean
  /** MQTT 5 properties. */
  contentType?: string
  userProperties?: Record<string, string>
  /** The connector to use; may be left out when the project has one MQTT connector. */
  connector?: string
}

export interface MqttPublished {
  connector: string
  topic: string
  qos: 0 | 1 | 2
  retain: boolean
  size: number
}

export interface AmqpPublishOptions {
  headers?: Record<string, unknown>
  /** Default from the payload: application/json, text/plain; charset=utf-8 or application/octet-stream. */
  contentType?: string
  messageId?: string
  correlationId?: string
  /** Delivery mode 2 (default true). */
  persistent?: boolean
  connector?: string
}

export interface AmqpPublished {
  connector: string
  exchange: string
  routingKey: string
  size: number
  messageId: string
  /** False when no queue took the message (the broker returned it). */
  routed: boolean
}

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'OPTIONS'

export type HttpAuth =
  | { type: 'basic'; username: string; password: string }
  | { type: 'bearer'; token: string }
  | { type: 'api_key'; name: string; value: string; in?: 'header' | 'query' }

export interface HttpOptions {
  headers?: Record<string, string>
  query?: Record<string, string>
  /** A string (placeholders expanded) or bytes. */
  body?: string | Uint8Array | null
  /** Data sent as JSON, as given (no placeholders). */
  json?: unknown
  auth?: HttpAuth
  /** Seconds, default 30, at most 600. */
  timeout?: number
  /** Default 1 MiB, at most 4 MiB. */
  maxResponseBytes?: number
}

export interface HttpResponse {
  status: number
  /** A 2xx status. */
  ok: boolean
  /** Names in lower case; repeated headers joined by ", ". */
  headers: Record<string, string>
  /** The body as text, secrets the host sent replaced by `[secret:NAME]`. */
  body: string
  /** The parsed body when the response is JSON, else null. */
  json: any
}

export type HookKind = 'register' | 'resolve' | 'timeout'

/** `ctx.awaited`. */
export interface Awaited {
  readonly type: 'time' | 'event' | 'webhook' | 'schedule'
  readonly data: any
}

/** An await hook: `export async function sendApprovalMail(data, ctx) {...}`, named in `hooks`. */
export type AwaitHook<TData = any> = (data: TData, ctx: RunContext) => unknown | Promise<unknown>

export interface RunState {
  /** The value stored under `key`, or `defaultValue` (else `null`) if there is none. */
  get<T = unknown>(key: string): Promise<T | null>
  get<T>(key: string, defaultValue: T): Promise<T>
  set(key: string, value: unknown): Promise<void>
  /** Resolves whether there was a value to delete. */
  delete(key: string): Promise<boolean>
  /** The keys of this run's state, sorted. */
  list(): Promise<string[]>
}

/** Extra structured fields of a log line, e.g. `{ orderId: 42 }`. */
export type LogFields = Record<string, unknown>

export interface StepLogger {
  debug(message: string, fields?: LogFields): void
  info(message: string, fields?: LogFields): void
  warn(message: string, fields?: LogFields): void
  error(message: string, fields?: LogFields): void
}

export interface FlowControl {
  /** Start a run of `flowName` with `input`. */
  start(flowName: string, input?: unknown, options?: StartFlowOptions): Promise<StartedRun>
  /** Cancel run `runId` (default: this run). Resolves false if it had already ended. */
  cancel(runId?: string): Promise<boolean>
  /**
   * Whether a run of `flowName` (default: this flow) is running or awaiting; this run excluded
   * unless `options.runId` names it.
   */
  isRunning(flowName?: string, options?: IsRunningOptions): Promise<boolean>
  /**
   * Live runs (queued, running, awaiting) of `flowName` (default: this flow), oldest first, at
   * most 1000; this run and `options.excludeRunIds` left out.
   */
  running(flowName?: string, options?: RunningOptions): Promise<RunningRun[]>
  /** Statistics of `flowName` (default: this flow); `null` if it never ran. */
  stats(flowName?: string): Promise<FlowStats | null>
}

/** Times in seconds, like `RetryRequested`'s delay. At most one of the three start keys. */
export interface StartFlowOptions {
  /**
   * Start at most one run per key: a retried step that starts a flow with the same key gets the
   * run the first attempt started. Tip: derive it from `ctx.idempotencyKey`.
   */
  idempotencyKey?: string
  /** Overrides the flow's priority: -1000 to 1000, higher runs first. */
  priority?: number
  /** Seconds before the run starts (it is queued until then). */
  delay?: number
  /** A start with the same key within `dedupeWindow` seconds of the first returns the first run. */
  dedupeKey?: string
  dedupeWindow?: number
  /**
   * The run starts once no start with this key came for `debounceWindow` seconds; each start
   * before then replaces its input and returns the same run.
   */
  debounceKey?: string
  debounceWindow?: number
}

export interface RunningOptions {
  /** Runs to leave out (this run always is). */
  excludeRunIds?: readonly string[]
}

/** A live run, as `ctx.flow.running` lists it. */
export interface RunningRun {
  readonly runId: string
  readonly flow: string
  readonly status: 'queued' | 'running' | 'awaiting'
  /** ISO 8601. */
  readonly startedAt: string
  readonly stepCount: number
  readonly completedSteps: number
  readonly parentRunId: string | null
}

/** A flow's statistics, keys in camelCase (`total`, `running`, `completed`, `lastRunAt`, …). */
export interface FlowStats {
  readonly flow: string
  readonly total: number
  readonly queued: number
  readonly running: number
  readonly awaiting: number
  readonly completed: number
  readonly failed: number
  readonly canceled: number
  readonly [key: string]: unknown
}

export interface StartedRun {
  readonly runId: string
  readonly flowName: string
}

export interface IsRunningOptions {
  /** Ask about this one run instead of any run of the flow. */
  runId?: string
  /** Runs to leave out (the current run is always left out when `runId` is not given). */
  excludeRunIds?: readonly string[]
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** The root of this package's errors. */
export class WorkerError extends Error {}

/** An action out of the step (`ctx.publish.*`, `ctx.http`) failed; the message never holds a secret. */
export class ActionError extends WorkerError {}

/** A function's config is invalid; the message names the file and the field. */
export class ConfigError extends WorkerError {
  constructor(reason: string, where: { file?: string | undefined; field: string })
  /** The function file, if known. */
  file: string | undefined
  /** The offending field's path in the config, e.g. `flow.subscribes` or `backoff.type`. */
  field: string
  /** The message without the file and field. */
  reason: string
  toJSON(): ConfigErrorJSON
  static fromJSON(data: { type?: string; file?: string | null; field: string; reason: string }): ConfigError
}

export interface ConfigErrorJSON {
  type: 'ConfigError'
  file: string | null
  field: string
  reason: string
  message: string
}

/**
 * Throw it from a handler to be tried again after `delay` seconds (not ms: the same unit as the
 * Python SDK). The attempt counts against `attempts`; the delay replaces the backoff.
 */
export class RetryRequested extends WorkerError {
  constructor(delay?: number, reason?: string)
  /** Seconds, finite and >= 0. */
  delay: number
  reason: string
  toJSON(): RetryRequestedJSON
  /** Rebuild from `toJSON()` output, or from the Python SDK's `to_dict()`. */
  static fromJSON(data: { type?: string; delay?: number; reason?: string }): RetryRequested
}

export interface RetryRequestedJSON {
  type: 'RetryRequested'
  delay: number
  reason: string
  message: string
}

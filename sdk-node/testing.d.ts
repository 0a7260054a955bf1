// Types of @flowhost/worker/testing. Hand-written, like index.d.ts.

import type { Awaited, FlowStats, HookKind, HttpResponse, RunContext, RunningRun, StartFlowOptions } from './index.js'

export interface TestContextOptions {
  /** Default: a random UUID. */
  runId?: string
  /** Default `'test'`. */
  flowName?: string
  /** Default `'step'`. */
  stepName?: string
  attempt?: number
  maxAttempts?: number
  /** The run's state before the call. */
  state?: Record<string, unknown>
  /** `ctx.awaited`: how the step's awaitBefore resolved. Default null. */
  awaited?: { type: Awaited['type']; data?: unknown } | null
  /** Make it an await hook's context (`ctx.emit` then rejects, as in a real run). Default null. */
  hook?: HookKind | null
  /** `ctx.traceparent`. Default null. */
  traceparent?: string | null
  /** What `ctx.flow.running` answers (filtered by flow). Default none. */
  running?: RunningRun[]
  /** What `ctx.flow.stats` answers: flow name -> statistics. Default none (null). */
  stats?: Record<string, FlowStats>
  /** What answers `ctx.http` (the protocol's `http.request` params). Default: it rejects. */
  http?: (request: Record<string, any>) => Partial<HttpResponse> | Promise<Partial<HttpResponse>>
}

export interface TestContext {
  ctx: RunContext
  /** The run's state, as the handler left it. */
  state: Map<string, unknown>
  emitted: { name: string; payload: unknown }[]
  logs: { level: string; message: string; fields: Record<string, unknown> }[]
  /** Runs the handler started with `ctx.flow.start` (a start key seen before starts none). */
  started: { flowName: string; input: unknown; options: StartFlowOptions }[]
  /** `ctx.publish` calls: the protocol's params, payloads as bytes. */
  published: { kind: 'mqtt' | 'amqp'; params: Record<string, any> }[]
  /** `ctx.http` calls: the protocol's `http.request` params. */
  requests: Record<string, any>[]
}

/** A `ctx` for calling a step handler or an await hook directly in a test. */
export function createTestContext(options?: TestContextOptions): TestContext

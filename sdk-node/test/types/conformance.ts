// Checked by `npm run typecheck`, never run: the JavaScript implementation fits the hand-written
// index.d.ts that users see, and the public types read well in a typical function file.
import * as api from '@flowhost/worker'

import * as config from '../../src/config.js'
import * as errors from '../../src/errors.js'
import * as handler from '../../src/function.js'

export const implementation: {
  defineConfig: typeof api.defineConfig
  normalizeConfig: typeof api.normalizeConfig
  defineFunction: typeof api.defineFunction
  WorkerError: typeof api.WorkerError
  ConfigError: typeof api.ConfigError
  RetryRequested: typeof api.RetryRequested
} = {
  defineConfig: config.defineConfig,
  normalizeConfig: config.normalizeConfig,
  defineFunction: handler.defineFunction,
  WorkerError: errors.WorkerError,
  ConfigError: errors.ConfigError,
  RetryRequested: errors.RetryRequested,
}

// A typical function file: ctx is typed without annotations, input when the author says so.
type Validated = { 'order.validated': { id: number; total: number } }

export const charge = api.defineFunction(async (input: Validated, ctx) => {
  const charges: number = await ctx.state.get('charges', 0)
  const maybe: string | null = await ctx.state.get<string>('note')
  ctx.logger.warn('charging', { id: input['order.validated'].id, charges, maybe })
  ctx.signal.throwIfAborted()
  const { runId } = await ctx.flow.start('invoices', { id: 1 }, { idempotencyKey: ctx.idempotencyKey })
  await ctx.emit('order.charged', { runId })
  const deleted: boolean = await ctx.state.delete('note')
  const keys: string[] = await ctx.state.list()
  const running: boolean = await ctx.flow.isRunning(undefined, { excludeRunIds: [runId] })
  await ctx.flow.start('mail', null, { priority: 5, delay: 1.5, dedupeKey: 'd', dedupeWindow: 60 })
  const live: api.RunningRun[] = await ctx.flow.running('mail', { excludeRunIds: [runId] })
  const stats: api.FlowStats | null = await ctx.flow.stats()
  ctx.logger.info('live', { live: live.map((run) => run.startedAt), total: stats?.total ?? 0 })
  ctx.progress(0.5, `${keys.length} keys, deleted ${deleted}, running ${running}`)
  ctx.progress(1)
  ctx.heartbeat()
  if (ctx.attempt < ctx.maxAttempts) throw new api.RetryRequested(1.5, 'again')
  return { ok: true }
})

export const declared = api.defineConfig({
  flow: { name: 'orders', step: 'charge', subscribes: ['order.validated'] },
  backoff: { type: 'fixed', delay: 100 },
  isolation: 'process',
  reuse: 20,
  memory: 256,
  cpu: 5000,
  concurrency: 2,
  env: ['STRIPE_KEY'],
})

export const entry = api.defineConfig({
  flow: { name: 'mail', role: 'entry' },
  maxRuns: 10,
  concurrencyKey: '/tenant',
  keyConcurrency: 2,
  priority: 5,
})
export const flowControl: [number | null, string | null, number | null, number | null] = [
  api.normalizeConfig(entry).maxRuns,
  api.normalizeConfig(entry).concurrencyKey,
  api.normalizeConfig(entry).keyConcurrency,
  api.normalizeConfig(entry).priority,
]

// The canonical config carries the process keys.
const canonical: api.StepConfig = api.normalizeConfig(declared)
export const limits: [number, number | null, number | null, readonly string[], readonly string[]] = [
  canonical.reuse, canonical.memoryMb, canonical.cpuMs, canonical.env, canonical.preload,
]

// @ts-expect-error in-process isolation is for trusted Python functions
api.defineConfig({ flow: { name: 'orders', role: 'entry' }, isolation: 'inprocess' })
// `const` inference keeps literal types of the declared config.
export const stepName: 'charge' = declared.flow.step

// @ts-expect-error role is 'entry' | 'step'
api.defineConfig({ flow: { name: 'orders', role: 'start' } })

/**
 * @flowhost/worker — write flowhost step functions in JavaScript.
 *
 * ```js
 * import { defineConfig, defineFunction } from '@flowhost/worker'
 *
 * export const config = defineConfig({
 *   flow: { name: 'orders', step: 'charge', subscribes: ['order.validated'], emits: ['order.charged'] },
 *   attempts: 3,
 * })
 *
 * export default defineFunction(async (input, ctx) => {
 *   await ctx.emit('order.charged', { id: input['order.validated'].id })
 * })
 * ```
 *
 * Importing this module loads no native code: ZeroMQ and msgpack belong to the child-process
 * runtime, which imports them itself.
 */

export { defineConfig, normalizeConfig } from './src/config.js'
export { ActionError, ConfigError, RetryRequested, WorkerError } from './src/errors.js'
export { defineFunction } from './src/function.js'

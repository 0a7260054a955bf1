import { formatValue } from './format.js'

/**
 * Declare a file's step handler: `export default defineFunction(async (input, ctx) => result)`.
 *
 * Returns `handler` itself. It only checks the shape, so a mistake shows up when the file is
 * loaded rather than when the first job runs: it must be a function (not a class) taking at most
 * the two parameters `(input, ctx)`. A callback-style `(input, ctx, done)` is refused: return the
 * result, or a Promise of it.
 *
 * @template {(input: any, ctx: import('../index.js').RunContext) => unknown} H
 * @param {H} handler
 * @returns {H}
 */
export function defineFunction(handler) {
  if (typeof handler !== 'function') {
    throw new TypeError(
      `defineFunction expects the step handler, a function (input, ctx) => result; got ${formatValue(handler)}`,
    )
  }
  if (/^class\b/.test(Function.prototype.toString.call(handler))) {
    throw new TypeError(
      `defineFunction expects a function (input, ctx) => result, not the class ${handler.name || '(anonymous)'}`,
    )
  }
  if (handler.length > 2) {
    throw new TypeError(
      `step handler ${handler.name || '(anonymous)'} declares ${handler.length} parameters; a handler takes ` +
        '(input, ctx) and returns its result or a Promise of it (callback-style handlers are not supported)',
    )
  }
  return handler
}

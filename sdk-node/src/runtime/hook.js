/**
 * Module resolve hook, registered by the child runtime and the describer (`module.register`):
 * `@flowhost/worker` in a function file is this SDK, so a functions directory needs no
 * node_modules of its own, and every file shares the runtime's `RetryRequested` class. Any other
 * specifier resolves as Node would. Runs on Node's loader thread: keep it tiny.
 */

const SDK_ENTRY = new URL('../../index.js', import.meta.url).href

/**
 * @param {string} specifier
 * @param {object} context
 * @param {(specifier: string, context: object) => Promise<{url: string}>} nextResolve
 */
export async function resolve(specifier, context, nextResolve) {
  if (specifier === '@flowhost/worker') return { url: SDK_ENTRY, format: 'module', shortCircuit: true }
  return nextResolve(specifier, context)
}

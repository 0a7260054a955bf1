/**
 * Import a function file and take its handler, for `execute`. Modules stay cached for the
 * child's life, so a reused child (`reuse` > 1) imports each file once and later jobs start
 * without waiting for anything.
 */

import { pathToFileURL } from 'node:url'

import { formatValue } from '../format.js'
import { ErrorCode, ProtocolError } from '../protocol.js'
import { describeThrown } from './values.js'

/** @type {Map<string, Record<string, unknown>>} function file path → module namespace */
const modules = new Map()

/**
 * The handler, at once, when its file was imported by an earlier job; else `undefined`.
 * @param {string} file
 * @param {string} exportName
 * @returns {Function | undefined}
 */
export function cachedHandler(file, exportName) {
  const namespace = modules.get(file)
  return namespace === undefined ? undefined : handlerOf(namespace, file, exportName)
}

/**
 * Import `file` (an absolute path) and return its export `exportName` (`"default"` for the
 * default export). Throws a ProtocolError -32053 whose `data` describes the failure as -32050
 * does: a syntax error, an error thrown while importing, a missing export or one that is no
 * function.
 * @param {string} file
 * @param {string} exportName
 * @returns {Promise<Function>}
 */
export async function loadHandler(file, exportName) {
  let namespace = modules.get(file)
  if (namespace === undefined) {
    try {
      namespace = /** @type {Record<string, unknown>} */ (await import(pathToFileURL(file).href))
    } catch (error) {
      const data = describeThrown(error)
      throw new ProtocolError(ErrorCode.HANDLER_NOT_LOADABLE, `cannot load ${file}: ${data.type}: ${data.message}`, { data })
    }
    modules.set(file, namespace)
  }
  return handlerOf(namespace, file, exportName)
}

/**
 * @param {Record<string, unknown>} namespace
 * @param {string} file
 * @param {string} exportName
 * @returns {Function}
 */
function handlerOf(namespace, file, exportName) {
  const handler = namespace[exportName]
  if (typeof handler === 'function') return handler
  const what = exportName === 'default' ? 'default export' : `export '${exportName}'`
  // Steps are default exports; a named export is an await hook.
  const hint = exportName === 'default'
    ? 'export the handler: export default defineFunction(async (input, ctx) => ...)'
    : `export the hook: export async function ${exportName}(data, ctx) { ... }`
  const message = Object.hasOwn(namespace, exportName)
    ? `the ${what} of ${file} is not a function (got ${formatValue(handler)}); ${hint}`
    : `${file} has no ${what}; ${hint}`
  throw new ProtocolError(ErrorCode.HANDLER_NOT_LOADABLE, message, {
    data: { type: 'TypeError', message, stack: null, retry_delay: null },
  })
}

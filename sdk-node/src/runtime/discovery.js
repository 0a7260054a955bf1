/**
 * Find the function files under a directory and describe each one: its step (file, line, handler,
 * canonical config) or its problem (file, line, message). Same rules and output as the Python
 * SDK's `flowhost_worker.loader` and `describe`.
 *
 * `hooks` maps each hook name the step's awaits use to whether the file exports a function by
 * that name; the host reports the ones that do not resolve, with the file and line.
 *
 * @typedef {{file: string, line: number, function: 'default', config: import('../../index.js').StepConfig,
 *   hooks: Record<string, boolean>}} FoundStep
 * @typedef {{file: string, line: number, message: string}} Problem
 */

import { spawnSync } from 'node:child_process'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { extname, join } from 'node:path'
import { pathToFileURL } from 'node:url'

import { normalizeConfig } from '../config.js'
import { formatValue } from '../format.js'

export const DEFAULT_EXTENSIONS = Object.freeze(['.js', '.mjs'])
const SKIPPED_DIRECTORIES = new Set(['node_modules', '__pycache__'])

/**
 * The files under `root` with one of `extensions`, sorted by path; any path part starting with
 * `.` or `_`, and node_modules and __pycache__, are skipped. Symlinked files count; symlinked
 * directories are not followed (a link back up would never end).
 * @param {string} root an absolute path
 * @param {readonly string[]} extensions with their dot
 * @returns {string[]}
 */
export function functionFiles(root, extensions) {
  /** @type {string[][]} */
  const found = []
  /** @param {string[]} parts relative to root */
  const walk = (parts) => {
    for (const entry of readdirSync(join(root, ...parts), { withFileTypes: true })) {
      const name = entry.name
      if (name.startsWith('.') || name.startsWith('_') || SKIPPED_DIRECTORIES.has(name)) continue
      if (entry.isDirectory()) walk([...parts, name])
      else if (extensions.includes(extname(name)) && isFile(join(root, ...parts, name))) found.push([...parts, name])
    }
  }
  walk([])
  return found.sort(comparePaths).map((parts) => join(root, ...parts))
}

/**
 * Part by part, as Python sorts paths: `a/b.js` before `a-b.js`.
 * @param {string[]} left
 * @param {string[]} right
 */
function comparePaths(left, right) {
  for (let index = 0; index < Math.min(left.length, right.length); index++) {
    if (left[index] !== right[index]) return left[index] < right[index] ? -1 : 1
  }
  return left.length - right.length
}

/** @param {string} path */
function isFile(path) {
  try {
    return statSync(path).isFile()
  } catch {
    return false // a dangling link
  }
}

/**
 * Import `file` and describe it: its step, a problem, or `null` for a helper module (a file
 * without a `config` export).
 * @param {string} file an absolute path
 * @returns {Promise<{step: FoundStep} | {problem: Problem} | null>}
 */
export async function describeFile(file) {
  /** @type {Record<string, unknown>} */
  let module
  try {
    module = await import(pathToFileURL(file).href)
  } catch (error) {
    return { problem: importProblem(error, file) }
  }
  if (!Object.hasOwn(module, 'config')) return null
  /** @type {import('../../index.js').StepConfig} */
  let config
  try {
    config = normalizeConfig(module.config, { file })
  } catch (error) {
    return { problem: { file, line: configLine(file), message: errorText(error) } }
  }
  const handler = module.default
  if (typeof handler !== 'function') {
    const message = Object.hasOwn(module, 'default')
      ? `the default export must be the step handler, a function (got ${formatValue(handler)})`
      : 'a file with a config export needs the step handler as its default export: export default defineFunction(async (input, ctx) => ...)'
    return { problem: { file, line: sourceLine(file, /^\s*export\s+default\b/m) ?? configLine(file), message } }
  }
  const line = sourceLine(file, /^\s*export\s+default\b/m) ?? 1
  return { step: { file, line, function: 'default', config, hooks: hooksFound(module, config) } }
}

/**
 * Each hook name of the step's awaits → whether the module exports a function by that name.
 * @param {Record<string, unknown>} module
 * @param {import('../../index.js').StepConfig} config
 * @returns {Record<string, boolean>}
 */
export function hooksFound(module, config) {
  /** @type {Record<string, boolean>} */
  const found = {}
  for (const declared of [config.awaitBefore, config.awaitAfter]) {
    for (const name of Object.values(declared?.hooks ?? {})) {
      if (name !== null) found[name] = Object.hasOwn(module, name) && typeof module[name] === 'function'
    }
  }
  return found
}

/**
 * Where importing `file` failed: a config error at `export const config`, a syntax error at its
 * line, anything else at the deepest stack frame in the file (else line 1).
 * @param {unknown} error
 * @param {string} file
 * @returns {Problem}
 */
function importProblem(error, file) {
  const message = errorText(error)
  if (isConfigError(error)) return { file, line: configLine(file), message }
  const line = stackLine(error, file) ??
    (error instanceof SyntaxError ? syntaxErrorLine(file) : undefined)
  return { file, line: line ?? 1, message }
}

/** @param {unknown} error */
function isConfigError(error) {
  return error instanceof Error && error.name === 'ConfigError'
}

/**
 * The line of the first (deepest) stack frame in `file`, or of a `file:LINE` header that Node
 * puts first in some syntax errors' stacks.
 * @param {unknown} error
 * @param {string} file
 * @returns {number | undefined}
 */
function stackLine(error, file) {
  const stack = error instanceof Error ? error.stack ?? '' : ''
  const url = pathToFileURL(file).href
  for (const location of [url, file]) {
    const escaped = location.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    const match = new RegExp(`(?:^|\\(|\\s)${escaped}:(\\d+)`, 'm').exec(stack)
    if (match) return Number(match[1])
  }
  return undefined
}

/**
 * Node 20 reports an ES module's syntax error without its position (it keeps it for the uncaught
 * error banner). `node --check` of the source, as a module, prints it: worth a process only when
 * a file is broken. Not for other extensions (TypeScript), which plain Node cannot parse.
 * @param {string} file
 * @returns {number | undefined}
 */
function syntaxErrorLine(file) {
  if (!DEFAULT_EXTENSIONS.includes(extname(file))) return undefined
  const check = spawnSync(process.execPath, ['--input-type=module', '--check'], {
    input: readFileSync(file),
    encoding: 'utf8',
    timeout: 10_000,
  })
  const match = /^\[stdin\]:(\d+)$/m.exec(check.stderr ?? '')
  return match ? Number(match[1]) : undefined
}

/**
 * @param {string} file
 * @returns {number}
 */
function configLine(file) {
  return sourceLine(file, /^\s*export\s+(?:const|let|var)\s+config\b/m) ?? 1
}

/**
 * The 1-based line of the first match of `pattern` in the file's source.
 * @param {string} file
 * @param {RegExp} pattern
 * @returns {number | undefined}
 */
function sourceLine(file, pattern) {
  let source
  try {
    source = readFileSync(file, 'utf8')
  } catch {
    return undefined
  }
  const match = pattern.exec(source)
  if (!match) return undefined
  const start = match.index + (match[0].length - match[0].trimStart().length)
  return source.slice(0, start).split('\n').length
}

/** @param {unknown} error */
function errorText(error) {
  if (error instanceof Error) return `${error.name}: ${error.message}`
  return `a non-Error value was thrown: ${formatValue(error)}`
}

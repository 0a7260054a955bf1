/**
 * Describe the step functions under a directory, as one JSON line on stdout:
 * `node src/runtime/describe.js DIR [--ext .ts]...` prints
 * `{"steps": [{file, line, function, config}], "problems": [{file, line, message}]}` and exits 0
 * (docs/protocol.md, "Starting a child"). Run by the host in a child process, so user code is
 * never imported into the host just to learn what it declares.
 *
 * `*.js` and `*.mjs` files are described; `--ext .ts` (repeatable, also `--ext=.ts`) adds an
 * extension, for a host that runs Node with a TypeScript loader (`node --import tsx`). A file
 * that fails to load is a problem with its file and line; the others still load.
 */

import './register-hook.js'

import { statSync } from 'node:fs'
import { resolve } from 'node:path'

import { DEFAULT_EXTENSIONS, describeFile, functionFiles } from './discovery.js'

const USAGE = 'usage: node describe.js FUNCTIONS_DIR [--ext .ts]...'

/**
 * @param {string[]} argv
 * @returns {{root: string, extensions: string[]}}
 */
function parseArguments(argv) {
  /** @type {string[]} */
  const directories = []
  const extensions = [...DEFAULT_EXTENSIONS]
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index]
    if (argument === '--ext' || argument.startsWith('--ext=')) {
      const extension = argument === '--ext' ? argv[++index] : argument.slice('--ext='.length)
      if (!extension || !/^\.[A-Za-z0-9]+$/.test(extension)) usageError(`--ext takes an extension such as .ts (got ${extension ?? 'nothing'})`)
      if (!extensions.includes(extension)) extensions.push(extension)
    } else if (argument.startsWith('-')) {
      usageError(`unknown option ${argument}`)
    } else {
      directories.push(argument)
    }
  }
  if (directories.length !== 1) usageError('give exactly one functions directory')
  const root = resolve(directories[0])
  let isDirectory = false
  try {
    isDirectory = statSync(root).isDirectory()
  } catch {
    // reported below
  }
  if (!isDirectory) usageError(`not a directory: ${root}`)
  return { root, extensions }
}

/**
 * @param {string} reason
 * @returns {never}
 */
function usageError(reason) {
  process.stderr.write(`${USAGE}\n${reason}\n`)
  process.exit(2)
}

const { root, extensions } = parseArguments(process.argv.slice(2))

// Output of function files while they are imported (console.log at the top level) goes to
// stderr: stdout carries the JSON and nothing else.
const stdout = process.stdout
const writeJson = stdout.write.bind(stdout)
stdout.write = /** @type {typeof stdout.write} */ (process.stderr.write.bind(process.stderr))

/** @type {import('./discovery.js').FoundStep[]} */
const steps = []
/** @type {import('./discovery.js').Problem[]} */
const problems = []
for (const file of functionFiles(root, extensions)) {
  const described = await describeFile(file)
  if (described === null) continue
  if ('step' in described) steps.push(described.step)
  else problems.push(described.problem)
}

// Exit once written: a function file may have left timers or sockets open at import.
writeJson(`${JSON.stringify({ steps, problems })}\n`, () => process.exit(0))

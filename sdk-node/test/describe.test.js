// The describer as the host runs it: `node src/runtime/describe.js DIR`, one JSON line on stdout.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const DESCRIBE = fileURLToPath(new URL('../src/runtime/describe.js', import.meta.url))
const run = promisify(execFile)

/** @type {string} */
let root

// No package.json and no node_modules: .js files are ES modules by Node's syntax detection, and
// `@flowhost/worker` resolves through the runtime's hook.
const FILES = {
  'charge.js': [
    "import { defineConfig, defineFunction } from '@flowhost/worker'",
    "console.log('noise on stdout at import')",
    'export const config = defineConfig({',
    "  flow: { name: 'orders', subscribes: 'order.validated', emits: ['order.charged'] },",
    '  attempts: 3, memory: 128, env: [\'STRIPE_KEY\'], reuse: 10,',
    '})',
    '',
    'export default defineFunction(async (input, ctx) => input)',
  ].join('\n'),
  'validate.mjs': [
    "export const config = { flow: { name: 'orders', step: 'validate', role: 'entry' } }",
    'export default async function validate() {}',
  ].join('\n'),
  'helpers.js': "process.stdout.write('helper noise\\n')\nexport const format = (x) => String(x)\n",
  'broken/syntax.js': "export const config = {}\nexport default () => {\n  return 1 +\n}\n",
  'broken/bad-config.js': [
    '// a config the SDK refuses',
    "import { defineConfig } from '@flowhost/worker'",
    '',
    "export const config = defineConfig({ flow: { name: 'orders', role: 'entry' }, isolation: 'inprocess' })",
    'export default () => 1',
  ].join('\n'),
  'broken/raw-config.mjs': "export default () => 1\n\nexport const config = { flow: { name: 'orders', role: 'entry' }, attempts: 0 }\n",
  'broken/throws.js': [
    "export const config = { flow: { name: 'orders', role: 'entry' } }",
    'function connect() {',
    "  throw new Error('no database at import')",
    '}',
    'connect()',
    'export default () => 1',
  ].join('\n'),
  'broken/no-handler.js': "export const config = { flow: { name: 'orders', step: 'x', role: 'entry' } }\n",
  'broken/handler-not-function.js': "export const config = { flow: { name: 'orders', step: 'y', role: 'entry' } }\nexport default 42\n",
  'typed.ts': "export const config = { flow: { name: 'orders', role: 'entry' } }\nexport default (input: number) => input\n",
  '_private/skipped.js': 'throw new Error("never imported")',
  '.hidden/skipped.js': 'throw new Error("never imported")',
  'node_modules/pkg/index.js': 'throw new Error("never imported")',
}

before(() => {
  root = mkdtempSync(join(tmpdir(), 'fh-describe-'))
  for (const [name, source] of Object.entries(FILES)) {
    mkdirSync(dirname(join(root, name)), { recursive: true })
    writeFileSync(join(root, name), source)
  }
})

after(() => rmSync(root, { recursive: true, force: true }))

/** @param {string[]} extra */
async function describeRoot(...extra) {
  const { stdout, stderr } = await run(process.execPath, [DESCRIBE, root, ...extra], { cwd: root })
  const lines = stdout.split('\n').filter(Boolean)
  assert.equal(lines.length, 1, `one JSON line on stdout, got: ${stdout}`)
  return { output: JSON.parse(lines[0]), stderr }
}

test('describes the steps, skips helpers, and keeps import-time output off stdout', async () => {
  const { output, stderr } = await describeRoot()
  assert.deepEqual(output.steps.map((/** @type {any} */ step) => [step.file, step.line, step.function]), [
    [join(root, 'charge.js'), 8, 'default'],
    [join(root, 'validate.mjs'), 2, 'default'],
  ])
  assert.deepEqual(output.steps[0].config, {
    flow: 'orders',
    name: 'charge',
    entry: false,
    subscribes: ['order.validated'],
    emits: ['order.charged'],
    attempts: 3,
    backoff: { type: 'exponential', delayMs: 1000, maxDelayMs: 60000 },
    timeoutMs: null,
    isolation: 'process',
    reuse: 10,
    preload: [],
    memoryMb: 128,
    cpuMs: null,
    concurrency: null,
    maxRuns: null,
    concurrencyKey: null,
    keyConcurrency: null,
    priority: null,
    env: ['STRIPE_KEY'],
    awaitBefore: null,
    awaitAfter: null,
    triggers: null,
  })
  assert.match(stderr, /noise on stdout at import/)
  assert.match(stderr, /helper noise/)
})

test('problems carry their file and line, sorted by path', async () => {
  const { output } = await describeRoot()
  const problems = Object.fromEntries(output.problems.map((/** @type {any} */ problem) => [
    problem.file.slice(root.length + 1), [problem.line, problem.message],
  ]))
  assert.deepEqual(Object.keys(problems), [
    'broken/bad-config.js',
    'broken/handler-not-function.js',
    'broken/no-handler.js',
    'broken/raw-config.mjs',
    'broken/syntax.js',
    'broken/throws.js',
  ])
  assert.equal(problems['broken/bad-config.js'][0], 4)
  assert.match(problems['broken/bad-config.js'][1], /^ConfigError: .*bad-config\.js: isolation: .*in-process isolation is for trusted Python functions/)
  assert.deepEqual(problems['broken/raw-config.mjs'][0], 3)
  assert.match(problems['broken/raw-config.mjs'][1], /^ConfigError: .*: attempts: must be a whole number >= 1/)
  assert.deepEqual(problems['broken/syntax.js'], [4, "SyntaxError: Unexpected token '}'"])
  assert.deepEqual(problems['broken/throws.js'], [3, 'Error: no database at import'])
  assert.equal(problems['broken/no-handler.js'][0], 1)
  assert.match(problems['broken/no-handler.js'][1], /needs the step handler as its default export/)
  assert.deepEqual(problems['broken/handler-not-function.js'], [2, 'the default export must be the step handler, a function (got 42)'])
})

test('--ext adds TypeScript files (which plain Node cannot load: a problem, not a crash)', async () => {
  for (const args of [['--ext', '.ts'], ['--ext=.ts']]) {
    const { output } = await describeRoot(...args)
    const typed = output.problems.find((/** @type {any} */ problem) => problem.file === join(root, 'typed.ts'))
    assert.ok(typed, 'typed.ts is described')
    assert.match(typed.message, /Unknown file extension "\.ts"|SyntaxError/)
  }
})

test('bad usage exits 2 with a usage line on stderr', async () => {
  for (const args of [[], [root, root], [root, '--ext'], [root, '--ext', 'ts'], [root, '--verbose'], [join(root, 'charge.js')]]) {
    await assert.rejects(run(process.execPath, [DESCRIBE, ...args]), (/** @type {any} */ error) => {
      assert.equal(error.code, 2, `args ${args.join(' ')}`)
      assert.match(error.stderr, /^usage: node describe\.js FUNCTIONS_DIR \[--ext \.ts\]\.\.\./)
      assert.equal(error.stdout, '')
      return true
    })
  }
})

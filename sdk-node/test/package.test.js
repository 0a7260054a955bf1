import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { test } from 'node:test'

import * as worker from '@flowhost/worker'

test('exports exactly the public API', () => {
  assert.deepEqual(Object.keys(worker).sort(), [
    'ActionError',
    'ConfigError',
    'RetryRequested',
    'WorkerError',
    'defineConfig',
    'defineFunction',
    'normalizeConfig',
  ])
})

test('@flowhost/worker/testing exports the test context', async () => {
  const testing = await import('@flowhost/worker/testing')
  assert.deepEqual(Object.keys(testing).sort(), ['createTestContext'])
})

test('importing the package loads neither zeromq nor msgpackr (they are for the runtime)', () => {
  const script = `
    import { createRequire } from 'node:module'
    await import('@flowhost/worker')
    await import('@flowhost/worker/testing')
    const loaded = Object.keys(createRequire(import.meta.url).cache)
    process.stdout.write(JSON.stringify(loaded.filter((path) => /[\\\\/]node_modules[\\\\/]/.test(path))))
  `
  const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: new URL('..', import.meta.url),
    encoding: 'utf8',
  })
  assert.deepEqual(JSON.parse(output), [])
})

test('the runtime dependencies are installed and load', async () => {
  const { pack, unpack } = await import('msgpackr')
  assert.deepEqual(unpack(pack({ jsonrpc: '2.0', id: 1 })), { jsonrpc: '2.0', id: 1 })
  const zmq = await import('zeromq')
  assert.match(zmq.version, /^4\./)
})

/**
 * An in-memory RunContext for calling a handler in a test, recording what it did: the public
 * `createTestContext`, with this suite's default flow name.
 */

import { createTestContext } from '@flowhost/worker/testing'

/** @param {import('@flowhost/worker/testing').TestContextOptions} [options] */
export function fakeContext(options = {}) {
  return createTestContext({ runId: 'run-1', flowName: 'orders', ...options })
}

/**
 * Install runtime/hook.js before any function file is imported. `module.register` exists from
 * Node 20.6; the hook then resolves `@flowhost/worker` to this SDK in every later import.
 */

import { register } from 'node:module'

register(new URL('./hook.js', import.meta.url))

import { inspect } from 'node:util'

const MAX_LENGTH = 80

/**
 * A short, unambiguous rendering of a user's value for an error message: `''`, `[ 'a', 3 ]`,
 * `undefined`, `[Function: charge]`; cut at 80 characters.
 * @param {unknown} value
 * @returns {string}
 */
export function formatValue(value) {
  const text = inspect(value, { depth: 2, breakLength: Infinity, maxArrayLength: 10 })
  return text.length > MAX_LENGTH ? `${text.slice(0, MAX_LENGTH - 1)}…` : text
}

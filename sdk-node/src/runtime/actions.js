/**
 * Actions out of a step: `ctx.publish.mqtt`, `ctx.publish.amqp` and `ctx.http`, as the protocol's
 * `publish.mqtt`, `publish.amqp` and `http.request` calls (docs/protocol.md). The host does the
 * work (it holds the broker connections and the secrets); this module checks the arguments and
 * shapes the params. A payload is sent as bytes: a Buffer or Uint8Array as it is, a string as
 * UTF-8, anything else as JSON. The Python SDK's twin is `flowhost_worker.actions`.
 *
 * Actions happen at least once with their step: a retried attempt publishes again.
 *
 * @typedef {import('../../index.js').RunContext} RunContext
 * @typedef {(method: string, params: Record<string, unknown>) => Promise<any>} Call
 */

import { ActionError, WorkerError } from '../errors.js'
import { formatValue } from '../format.js'
import { ErrorCode } from '../protocol.js'
import { assertSendable } from './values.js'

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']
const AUTH_TYPES = ['basic', 'bearer', 'api_key']
const MAX_HTTP_TIMEOUT = 600
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024
const CONTENT_TYPES = { json: 'application/json', text: 'text/plain; charset=utf-8', bytes: 'application/octet-stream' }

/**
 * @param {Call} call the protocol call of the job (or a test's stand-in)
 * @returns {{publish: RunContext['publish'], http: RunContext['http']}}
 */
export function createActions(call) {
  /** @type {Call} */
  const act = async (method, params) => {
    try {
      const answer = await call(method, params)
      if (typeof answer !== 'object' || answer === null) throw new WorkerError(`the host answered ${method} without a map`)
      return answer
    } catch (error) {
      if (error instanceof WorkerError && /** @type {any} */ (error).code === ErrorCode.ACTION_FAILED) {
        throw new ActionError(error.message)
      }
      throw error
    }
  }

  const publish = Object.freeze({
    /** @type {RunContext['publish']['mqtt']} */
    async mqtt(topic, payload = null, options = {}) {
      nonEmptyString(topic, 'publish.mqtt: topic')
      const { qos = 1, retain = false, contentType, userProperties, connector } = known(options, 'publish.mqtt', [
        'qos', 'retain', 'contentType', 'userProperties', 'connector',
      ])
      if (![0, 1, 2].includes(/** @type {number} */ (qos))) throw new RangeError(`publish.mqtt: qos must be 0, 1 or 2 (got ${formatValue(qos)})`)
      if (typeof retain !== 'boolean') throw new TypeError('publish.mqtt: retain must be true or false')
      /** @type {Record<string, unknown>} */
      const properties = {}
      if (contentType !== undefined) properties.content_type = nonEmptyString(contentType, 'publish.mqtt: contentType')
      if (userProperties !== undefined) {
        properties.user_properties = Object.entries(stringMap(userProperties, 'publish.mqtt: userProperties'))
      }
      const params = {
        connector: optionalString(connector, 'publish.mqtt: connector'),
        topic,
        payload: encode(payload, 'publish.mqtt').bytes,
        qos,
        retain,
        properties,
      }
      return /** @type {any} */ (await act('publish.mqtt', params))
    },

    /** @type {RunContext['publish']['amqp']} */
    async amqp(exchange, routingKey, body = null, options = {}) {
      if (typeof exchange !== 'string') throw new TypeError('publish.amqp: exchange must be a string ("" for the default exchange)')
      if (typeof routingKey !== 'string') throw new TypeError('publish.amqp: routingKey must be a string')
      const { headers = {}, contentType, messageId, correlationId, persistent = true, connector } = known(
        options, 'publish.amqp', ['headers', 'contentType', 'messageId', 'correlationId', 'persistent', 'connector'],
      )
      assertSendable(headers, 'publish.amqp: headers', { jsonData: true })
      if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
        throw new TypeError('publish.amqp: headers must be an object')
      }
      if (typeof persistent !== 'boolean') throw new TypeError('publish.amqp: persistent must be true or false')
      const encoded = encode(body, 'publish.amqp')
      /** @type {Record<string, unknown>} */
      const params = {
        connector: optionalString(connector, 'publish.amqp: connector'),
        exchange,
        routing_key: routingKey,
        body: encoded.bytes,
        headers,
        content_type: contentType === undefined ? CONTENT_TYPES[encoded.kind] : nonEmptyString(contentType, 'publish.amqp: contentType'),
        persistent,
      }
      if (messageId !== undefined) params.message_id = nonEmptyString(messageId, 'publish.amqp: messageId')
      if (correlationId !== undefined) params.correlation_id = nonEmptyString(correlationId, 'publish.amqp: correlationId')
      const answer = await act('publish.amqp', params)
      return {
        connector: answer.connector,
        exchange: answer.exchange,
        routingKey: answer.routing_key,
        size: answer.size,
        messageId: answer.message_id,
        routed: answer.routed,
      }
    },
  })

  /** @type {RunContext['http']} */
  const http = async (method, url, options = {}) => {
    if (typeof method !== 'string' || !HTTP_METHODS.includes(method.toUpperCase())) {
      throw new RangeError(`http: method must be one of ${HTTP_METHODS.join(', ')} (got ${formatValue(method)})`)
    }
    nonEmptyString(url, 'http: url')
    const given = known(options, 'http', ['headers', 'query', 'body', 'json', 'auth', 'timeout', 'maxResponseBytes'])
    const { timeout = 30, maxResponseBytes = 1024 * 1024 } = given
    if (typeof timeout !== 'number' || !(timeout > 0 && timeout <= MAX_HTTP_TIMEOUT)) {
      throw new RangeError(`http: timeout must be above 0 and at most ${MAX_HTTP_TIMEOUT} seconds`)
    }
    if (!Number.isInteger(maxResponseBytes) || !(/** @type {number} */ (maxResponseBytes) > 0 && /** @type {number} */ (maxResponseBytes) <= MAX_RESPONSE_BYTES)) {
      throw new RangeError(`http: maxResponseBytes must be an integer from 1 to ${MAX_RESPONSE_BYTES}`)
    }
    const headers = stringMap(given.headers ?? {}, 'http: headers')
    /** @type {Record<string, unknown>} */
    const params = {
      method: method.toUpperCase(),
      url,
      headers,
      query: stringMap(given.query ?? {}, 'http: query'),
      body: null,
      auth: null,
      timeout,
      max_response_bytes: maxResponseBytes,
    }
    if ('json' in given) {
      if (given.body !== undefined) throw new TypeError('http: give body or json, not both')
      // Sent as given: placeholders in JSON data are not expanded (data from outside must never
      // reach a secret).
      params.body = encode(given.json, 'http').bytes
      if (!Object.keys(headers).some((name) => name.toLowerCase() === 'content-type')) headers['Content-Type'] = 'application/json'
    } else if (given.body !== undefined && given.body !== null) {
      if (typeof given.body === 'string') params.body = given.body
      else if (given.body instanceof Uint8Array) params.body = given.body
      else throw new TypeError('http: body must be a string (a template) or bytes; use json for data')
    }
    if (given.auth !== undefined && given.auth !== null) {
      const auth = stringMap(given.auth, 'http: auth')
      if (!AUTH_TYPES.includes(auth.type)) throw new RangeError(`http: auth type must be one of ${AUTH_TYPES.join(', ')}`)
      params.auth = auth
    }
    return /** @type {any} */ (await act('http.request', params))
  }

  return { publish, http }
}

/**
 * @param {unknown} value
 * @param {string} where
 * @returns {{bytes: Uint8Array, kind: 'json' | 'text' | 'bytes'}}
 */
function encode(value, where) {
  if (value instanceof Uint8Array) return { bytes: value, kind: 'bytes' }
  if (typeof value === 'string') return { bytes: Buffer.from(value, 'utf8'), kind: 'text' }
  assertSendable(value, `${where}: the payload`, { jsonData: true })
  return { bytes: Buffer.from(JSON.stringify(value ?? null), 'utf8'), kind: 'json' }
}

/**
 * @param {unknown} options
 * @param {string} method
 * @param {string[]} names
 * @returns {Record<string, unknown>}
 */
function known(options, method, names) {
  if (typeof options !== 'object' || options === null) throw new TypeError(`${method}: options must be an object`)
  for (const name of Object.keys(options)) {
    if (!names.includes(name)) throw new TypeError(`${method}: unknown option '${name}' (known: ${names.join(', ')})`)
  }
  return /** @type {Record<string, unknown>} */ (options)
}

/**
 * @param {unknown} value
 * @param {string} what
 * @returns {Record<string, string>}
 */
function stringMap(value, what) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TypeError(`${what} must be an object of strings`)
  for (const [key, entry] of Object.entries(value)) {
    if (!key || typeof entry !== 'string') throw new TypeError(`${what} must map names to strings (got ${formatValue(key)})`)
  }
  return { .../** @type {Record<string, string>} */ (value) }
}

/**
 * @param {unknown} value
 * @param {string} what
 * @returns {string}
 */
function nonEmptyString(value, what) {
  if (typeof value !== 'string' || value === '') throw new TypeError(`${what} must be a non-empty string (got ${formatValue(value)})`)
  return value
}

/**
 * @param {unknown} value
 * @param {string} what
 * @returns {string | null}
 */
function optionalString(value, what) {
  return value === undefined || value === null ? null : nonEmptyString(value, what)
}

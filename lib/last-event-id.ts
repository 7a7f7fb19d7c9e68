import type { FastifyRequest } from 'fastify'
import { isSafeId } from './encoder.js'

const NON_ASCII = /[^\x00-\x7f]/ // eslint-disable-line no-control-regex
// Fatal: bytes that are not UTF-8 were not sent by a browser, but one byte per character by a
// fetch-based client (eventsource, under Node); those mean the latin1 value as it stands.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** The request's slot for its last event id, read once: `null` until then. */
export const kLastEventId = Symbol('fastify-sse-stream.lastEventId')

type Slot = FastifyRequest & { [kLastEventId]: string | undefined | null }

/**
 * Reads the client's last event id: the `Last-Event-ID` header, else the query parameter
 * `queryName` (for polyfills, and for a first load that resumes from a known id).
 *
 * Browsers send the header as UTF-8 bytes, and Node hands header values over decoded as latin1,
 * so a non-ASCII value is decoded again as UTF-8. A value that could never have come from one of
 * our frames (too long, or breaking the rules of an `id`: a control character, a space or tab at
 * either edge) is treated as absent and logged at debug level, and so are two headers at once
 * (Node would join them as `a, b`).
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#last-event-id
 */
export function readLastEventId (
  request: FastifyRequest,
  queryName: string | false,
  maxLength: number
): string | undefined {
  let value: unknown = request.headers['last-event-id']
  let from = 'header'
  if (typeof value === 'string' && value !== '') {
    if (value.includes(',') && request.raw.headersDistinct['last-event-id']!.length > 1) {
      request.log.debug({ from }, 'fastify-sse-stream: ignoring a repeated Last-Event-ID header')
      return undefined
    }
    if (NON_ASCII.test(value)) {
      try {
        value = UTF8.decode(Buffer.from(value, 'latin1'))
      } catch {}
    }
  } else if (queryName !== false) {
    value = (request.query as Record<string, unknown> | undefined)?.[queryName]
    from = 'query'
  }
  if (typeof value !== 'string' || value === '') return undefined
  if (value.length > maxLength || !isSafeId(value)) {
    request.log.debug({ lastEventIdLength: value.length, from }, 'fastify-sse-stream: ignoring an invalid last event id')
    return undefined
  }
  return value
}

/** `readLastEventId()` with the plugin's options, once per request. */
export function cachedLastEventId (request: FastifyRequest, queryName: string | false, maxLength: number): string | undefined {
  const slot = request as Slot
  let value = slot[kLastEventId]
  if (value === null) value = slot[kLastEventId] = readLastEventId(request, queryName, maxLength)
  return value
}

import type { FastifyRequest } from 'fastify'

const NON_ASCII = /[^\x00-\x7f]/ // eslint-disable-line no-control-regex
const FORBIDDEN = /[\r\n\0]/
// Fatal: bytes that are not UTF-8 were not sent by a browser, but one byte per character by a
// fetch-based client (eventsource, under Node); those mean the latin1 value as it stands.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * Reads the client's last event id: the `Last-Event-ID` header, else the query parameter
 * `queryName` (for polyfills, and for a first load that resumes from a known id).
 *
 * Browsers send the header as UTF-8 bytes, and Node hands header values over decoded as latin1,
 * so a non-ASCII value is decoded again as UTF-8. A value that is too long or holds CR, LF or NUL
 * could never have come from one of our frames: it is treated as absent and logged at debug level.
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
  if (value.length > maxLength || FORBIDDEN.test(value)) {
    request.log.debug({ lastEventIdLength: value.length, from }, 'fastify-sse-stream: ignoring an invalid last event id')
    return undefined
  }
  return value
}

import createError from '@fastify/error'

/**
 * Every error is made by `@fastify/error`, as Fastify's own are: a stable `code`, a `statusCode`,
 * the name `FastifyError`, a printf-style message and an optional `{ cause }` last argument.
 * `instanceof` checks the `Symbol.for('fastify-error <code>')` brand, so it holds across duplicate
 * copies of this package (or of `@fastify/error`).
 */
export interface SseError extends Error {
  readonly code: string
  readonly statusCode: number
}

export interface SseErrorConstructor<A extends unknown[] = unknown[]> {
  new (...args: [...A, { cause: unknown }?]): SseError
  (...args: [...A, { cause: unknown }?]): SseError
  readonly prototype: SseError
  /** The code of the errors it makes. */
  readonly code: string
}

/** `@fastify/error`'s constructor, typed with its arguments, and with the code on it as well. */
function define<A extends unknown[] = []> (
  code: string,
  message: string,
  statusCode: number,
  Base: ErrorConstructor
): SseErrorConstructor<A> {
  return Object.defineProperty(createError(code, message, statusCode, Base), 'code', { value: code }) as unknown as SseErrorConstructor<A>
}

/** Event encoding */
export const FST_ERR_SSE_INVALID_EVENT = define<[received: string]>(
  'FST_ERR_SSE_INVALID_EVENT', 'An SSE event must be an object, instead got %s', 500, TypeError)
export const FST_ERR_SSE_INVALID_EVENT_NAME = define<[received: string]>(
  'FST_ERR_SSE_INVALID_EVENT_NAME', 'The event name must be a string without CR, LF or lone surrogates, instead got %s', 500, TypeError)
export const FST_ERR_SSE_INVALID_ID = define<[received: string]>(
  'FST_ERR_SSE_INVALID_ID',
  'The event id must be a finite number, or a string without CR, LF, NUL or other control characters, lone surrogates, or leading/trailing spaces or tabs, instead got %s',
  500, TypeError)
export const FST_ERR_SSE_INVALID_RETRY = define<[received: string]>(
  'FST_ERR_SSE_INVALID_RETRY', 'retry must be an integer from 0 to 2147483647 (ms), instead got %s', 500, RangeError)
export const FST_ERR_SSE_INVALID_COMMENT = define<[received: string]>(
  'FST_ERR_SSE_INVALID_COMMENT', 'A comment must be a string, instead got %s', 500, TypeError)
export const FST_ERR_SSE_INVALID_DATA = define<[received: string]>(
  'FST_ERR_SSE_INVALID_DATA', 'The serializer must return a string for event data, instead got %s', 500, TypeError)

/** Plugin and reply usage */
export const FST_ERR_SSE_INVALID_OPTION = define<[name: string, expected: string, received: string]>(
  'FST_ERR_SSE_INVALID_OPTION', "The '%s' option should be %s, instead got %s", 500, TypeError)
export const FST_ERR_SSE_INVALID_SOURCE = define<[received: string]>(
  'FST_ERR_SSE_INVALID_SOURCE',
  'reply.sse() takes an AsyncIterable, an Iterable or a function returning one, instead got %s', 500, TypeError)
export const FST_ERR_SSE_ALREADY_SENT = define(
  'FST_ERR_SSE_ALREADY_SENT', 'reply.sse() was called on a reply that was already sent or hijacked', 500, Error)

/** Describes a received value for an error message without dumping it whole. */
export function describe (value: unknown): string {
  if (typeof value === 'string') {
    return JSON.stringify(value.length > 64 ? value.slice(0, 64) + '…' : value)
  }
  if (typeof value === 'function') return 'a function'
  if (value === null || value === undefined) return String(value)
  if (typeof value === 'object') return Array.isArray(value) ? 'an array' : 'an object'
  return `${typeof value} ${String(value)}`
}

/** Stream lifecycle: the `reason` of a stream's aborted signal. */
export const FST_ERR_SSE_CLOSED = define<[reason: string]>(
  'FST_ERR_SSE_CLOSED', 'The SSE stream ended: %s', 500, Error)
export const FST_ERR_SSE_SERVER_CLOSING = define(
  'FST_ERR_SSE_SERVER_CLOSING', 'The server is shutting down; reconnect later', 503, Error)

/** Admission control: the answers to a stream refused before its reply is taken */
export const FST_ERR_SSE_TOO_MANY_STREAMS = define<[limit: number]>(
  'FST_ERR_SSE_TOO_MANY_STREAMS', 'The server holds its limit of %s open streams; reconnect later', 503, Error)
export const FST_ERR_SSE_TOO_MANY_STREAMS_PER_KEY = define<[limit: number]>(
  'FST_ERR_SSE_TOO_MANY_STREAMS_PER_KEY', 'This client holds its limit of %s open streams; close one or reconnect later', 429, Error)
export const FST_ERR_SSE_ADMISSION_KEY = define<[received: string]>(
  'FST_ERR_SSE_ADMISSION_KEY', 'The admissionKey option must return a string, instead it %s', 500, Error)

/** The hub */
export const FST_ERR_SSE_INVALID_TOPIC = define<[received: string]>(
  'FST_ERR_SSE_INVALID_TOPIC',
  'A topic must be a non-empty string of at most 256 characters, without control characters or lone surrogates, instead got %s',
  500, TypeError)
export const FST_ERR_SSE_ID_ASSIGNED = define<[received: string]>(
  'FST_ERR_SSE_ID_ASSIGNED', 'app.sse.publish() assigns the event id: the event must not bring one, instead got id %s', 500, TypeError)
export const FST_ERR_SSE_HUB_CLOSED = define(
  'FST_ERR_SSE_HUB_CLOSED', 'The hub is closed: the server is shutting down', 503, Error)
export const FST_ERR_SSE_BROKER = define(
  'FST_ERR_SSE_BROKER', 'The broker did not store the event', 503, Error)

import { format } from 'node:util'

/**
 * Errors in the style of `@fastify/error`: each has a stable `code`, a `statusCode`, the name
 * `FastifyError`, and a printf-style message. `instanceof` works across duplicate copies of the
 * package because it checks a `Symbol.for()` brand, not the prototype chain.
 *
 * Written here rather than imported so that `fastify-plugin` stays the only runtime dependency.
 */
export interface SseError extends Error {
  readonly code: string
  readonly statusCode: number
}

export interface SseErrorConstructor<A extends unknown[] = unknown[]> {
  new (...args: [...A, { cause: unknown }?]): SseError
  (...args: [...A, { cause: unknown }?]): SseError
  readonly prototype: SseError
  readonly code: string
}

function createError<A extends unknown[] = []> (
  code: string,
  message: string,
  statusCode = 500,
  Base: ErrorConstructor = Error
): SseErrorConstructor<A> {
  const brand = Symbol.for(`fastify-error ${code}`)
  function FastifyError (this: SseError & { cause?: unknown }, ...args: unknown[]): SseError {
    if (!new.target) return new (FastifyError as unknown as new (...a: unknown[]) => SseError)(...args)
    const last = args[args.length - 1]
    if (args.length > 0 && typeof last === 'object' && last !== null && 'cause' in last) {
      this.cause = (args.pop() as { cause: unknown }).cause
    }
    Object.defineProperty(this, 'message', { value: format(message, ...args), writable: true, configurable: true })
    Error.captureStackTrace(this, FastifyError)
    return this
  }
  FastifyError.prototype = Object.create(Base.prototype, {
    constructor: { value: FastifyError, writable: true, configurable: true },
    name: { value: 'FastifyError', writable: true, configurable: true },
    code: { value: code, enumerable: true },
    statusCode: { value: statusCode, enumerable: true },
    [brand]: { value: true },
    toString: {
      value: function toString (this: SseError) { return `${this.name} [${this.code}]: ${this.message}` },
      writable: true,
      configurable: true
    }
  })
  Object.defineProperty(FastifyError, 'code', { value: code })
  Object.defineProperty(FastifyError, Symbol.hasInstance, {
    value: (instance: unknown) => typeof instance === 'object' && instance !== null && brand in instance
  })
  return FastifyError as unknown as SseErrorConstructor<A>
}

/** Event encoding */
export const FST_ERR_SSE_INVALID_EVENT = createError<[received: string]>(
  'FST_ERR_SSE_INVALID_EVENT', 'An SSE event must be an object, instead got %s', 500, TypeError)
export const FST_ERR_SSE_INVALID_EVENT_NAME = createError<[received: string]>(
  'FST_ERR_SSE_INVALID_EVENT_NAME', 'The event name must be a string without CR, LF or lone surrogates, instead got %s', 500, TypeError)
export const FST_ERR_SSE_INVALID_ID = createError<[received: string]>(
  'FST_ERR_SSE_INVALID_ID',
  'The event id must be a finite number, or a string without CR, LF, NUL or other control characters, lone surrogates, or leading/trailing spaces or tabs, instead got %s',
  500, TypeError)
export const FST_ERR_SSE_INVALID_RETRY = createError<[received: string]>(
  'FST_ERR_SSE_INVALID_RETRY', 'retry must be an integer from 0 to 2147483647 (ms), instead got %s', 500, RangeError)
export const FST_ERR_SSE_INVALID_COMMENT = createError<[received: string]>(
  'FST_ERR_SSE_INVALID_COMMENT', 'A comment must be a string, instead got %s', 500, TypeError)
export const FST_ERR_SSE_INVALID_DATA = createError<[received: string]>(
  'FST_ERR_SSE_INVALID_DATA', 'The serializer must return a string for event data, instead got %s', 500, TypeError)

/** Plugin and reply usage */
export const FST_ERR_SSE_INVALID_OPTION = createError<[name: string, expected: string, received: string]>(
  'FST_ERR_SSE_INVALID_OPTION', "The '%s' option should be %s, instead got %s", 500, TypeError)
export const FST_ERR_SSE_INVALID_SOURCE = createError<[received: string]>(
  'FST_ERR_SSE_INVALID_SOURCE',
  'reply.sse() takes an AsyncIterable, an Iterable or a function returning one, instead got %s', 500, TypeError)
export const FST_ERR_SSE_ALREADY_SENT = createError(
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
export const FST_ERR_SSE_CLOSED = createError<[reason: string]>(
  'FST_ERR_SSE_CLOSED', 'The SSE stream ended: %s', 500, Error)
export const FST_ERR_SSE_SERVER_CLOSING = createError(
  'FST_ERR_SSE_SERVER_CLOSING', 'The server is shutting down; reconnect later', 503, Error)

/** The hub */
export const FST_ERR_SSE_INVALID_TOPIC = createError<[received: string]>(
  'FST_ERR_SSE_INVALID_TOPIC',
  'A topic must be a non-empty string of at most 256 characters, without control characters or lone surrogates, instead got %s',
  500, TypeError)
export const FST_ERR_SSE_ID_ASSIGNED = createError<[received: string]>(
  'FST_ERR_SSE_ID_ASSIGNED', 'app.sse.publish() assigns the event id: the event must not bring one, instead got id %s', 500, TypeError)
export const FST_ERR_SSE_HUB_CLOSED = createError(
  'FST_ERR_SSE_HUB_CLOSED', 'The hub is closed: the server is shutting down', 503, Error)
export const FST_ERR_SSE_BROKER = createError(
  'FST_ERR_SSE_BROKER', 'The broker did not store the event', 503, Error)

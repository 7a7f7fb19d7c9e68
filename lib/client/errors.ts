// Typed errors of the client. Each class sets its `name` as a string literal, because a minifier
// renames classes. `retriable` says whether the client would reconnect after it.

/** The base class of every error the client raises. */
export class SseError extends Error {
  override name = 'SseError'
  /** Whether the client reconnects after this error, when it may re-send the request. */
  readonly retriable: boolean

  constructor (message: string, retriable = false, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause })
    this.retriable = retriable
  }
}

/**
 * A response with a status other than 200 or 204. Retriable for 408, 425, 429 and 5xx, after
 * `retryAfter` ms when the response carried a valid `Retry-After`.
 */
export class SseHttpError extends SseError {
  override name = 'SseHttpError'
  readonly status: number
  readonly response: Response
  readonly retryAfter: number | undefined

  constructor (response: Response, retryAfter?: number) {
    const status = response.status
    super(`HTTP ${status}`, status > 499 || status === 408 || status === 425 || status === 429)
    this.status = status
    this.response = response
    this.retryAfter = retryAfter
  }
}

/** The response or the stream broke the protocol: a wrong content type, an oversized line, data that is not JSON. Fatal. */
export class SseProtocolError extends SseError {
  override name = 'SseProtocolError'
}

/** The connection failed or the server ended the body. Retriable. */
export class SseNetworkError extends SseError {
  override name = 'SseNetworkError'

  constructor (message: string, cause?: unknown) {
    super(message, true, cause)
  }
}

/** No byte arrived for the idle timeout. Retriable. */
export class SseTimeoutError extends SseError {
  override name = 'SseTimeoutError'
  readonly timeout: number

  constructor (timeout: number) {
    super(`no data for ${timeout} ms`, true)
    this.timeout = timeout
  }
}

/**
 * A non-idempotent request (POST and the like) was interrupted and cannot be resumed safely:
 * the server gave no resume URL, and there is no idempotency key with an event ID to resume
 * from. `cause` holds the interruption. Fatal: the request is never re-sent blindly.
 */
export class SseInterruptedError extends SseError {
  override name = 'SseInterruptedError'

  constructor (method: string, cause: unknown) {
    super(`the ${method} stream was interrupted and cannot be resumed safely: no resume URL, and no idempotency key with an event ID`, false, cause)
  }
}

/** An event's `data` failed its Standard Schema. Fatal. */
export class SseValidationError extends SseError {
  override name = 'SseValidationError'
  readonly event: string
  readonly issues: ReadonlyArray<{ readonly message: string }>

  constructor (event: string, issues: ReadonlyArray<{ readonly message: string }>) {
    super(`invalid data for event "${event}": ${issues.map((issue) => issue.message).join('; ')}`)
    this.event = event
    this.issues = issues
  }
}

/** Whether `error` was raised by the client. */
export function isSseError (error: unknown): error is SseError {
  return error instanceof SseError
}

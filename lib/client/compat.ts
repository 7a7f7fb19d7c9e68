// fastify-sse-stream/client/compat: fetchEventSource() with the API of
// @microsoft/fetch-event-source 2.0.1, over this package's client. Code written for that library
// runs with only its import line changed; docs/client.md lists each behaviour that differs.
import { connect, type ConnectOptions } from './index.js'

export const EventStreamContentType = 'text/event-stream'

/** One event, as fetch-event-source hands it to `onmessage`. */
export interface EventSourceMessage {
  /** The last event ID (as in EventSource): the event's own, or the one before it; '' when none. */
  id: string
  /** The event name; '' for an unnamed event. */
  event: string
  data: string
  /** Never set: the client applies `retry:` itself. */
  retry?: number
}

type CoreOptions = Omit<ConnectOptions, 'url' | 'onEvent' | 'onResponse' | 'onEnd' | 'shouldRetry' | 'fetch'>

export interface FetchEventSourceInit extends CoreOptions, Omit<RequestInit, 'method' | 'headers' | 'body' | 'signal'> {
  /** Called with each response but a 204. Throwing makes it an error, for `onerror`. The default checks the media type. */
  onopen?: (response: Response) => Promise<void> | void
  onmessage?: (event: EventSourceMessage) => void
  /** Called when the server ends the body. Return to stop; throw to retry (if it can be resumed safely). */
  onclose?: () => void
  /** Called with each error. Throw to stop; return a number to set the next delay; return nothing to retry. */
  onerror?: (error: any) => number | null | undefined | void // eslint-disable-line @typescript-eslint/no-explicit-any
  /** `false` closes the connection while the page is hidden, when it can be resumed. Default: stays open. */
  openWhenHidden?: boolean
  fetch?: (input: Request) => Promise<Response>
}

async function defaultOnOpen (response: Response): Promise<void> {
  const type = response.headers.get('content-type')?.split(';')[0]!.trim().toLowerCase()
  if (type !== EventStreamContentType) throw new Error(`Expected content-type to be ${EventStreamContentType}, Actual: ${type}`)
}

/**
 * Streams `input` like fetch-event-source's fetchEventSource(). Resolves when the stream ends
 * (the `end` event by default, a 204, `onclose` returning, or an abort); rejects with the error
 * that stopped it.
 */
export function fetchEventSource (input: string | URL, init: FetchEventSourceInit): Promise<void> {
  const {
    onopen = defaultOnOpen, onmessage, onclose, onerror, openWhenHidden,
    method, headers, body, signal, fetch, terminalEvent = 'end',
    lastEventId, idempotencyKey, retryDelay, maxRetryDelay, jitter, maxRetries, totalTimeout, idleTimeout,
    maxEventSize, lifecycle, random, timers, onOpen, onRetry, onStateChange, onReset, onClose,
    ...requestInit
  } = init
  let reported: unknown
  let stopError: unknown
  let stopped = false
  const stop = (error: unknown): void => {
    stopped = true
    stopError = error
    stream.close()
  }
  // Asks onerror about an error: it returns (retry, maybe with a delay) or throws (stop).
  const ask = (error: unknown): number | undefined => {
    reported = error
    try {
      const verdict = onerror?.(error)
      return typeof verdict === 'number' ? verdict : undefined
    } catch (thrown) {
      reported = thrown
      throw thrown
    }
  }
  const stream = connect(input, {
    method, headers, body, signal, terminalEvent, lastEventId, idempotencyKey, retryDelay, maxRetryDelay, jitter,
    maxRetries, totalTimeout, idleTimeout, maxEventSize, random, timers, onOpen, onRetry, onStateChange, onReset, onClose,
    init: requestInit,
    ...(fetch ? { fetch } : {}),
    lifecycle: lifecycle ?? (openWhenHidden === false ? { hiddenTimeout: 0 } : undefined),
    onResponse: onopen,
    onEnd: () => {
      onclose?.()
      return 'stop'
    },
    shouldRetry: (error) => ask(error) ?? true,
    onEvent: (event) => {
      try {
        onmessage?.({ id: event.id, event: event.event === 'message' ? '' : event.event, data: event.data })
      } catch (error) {
        // A throwing onmessage goes to onerror: if that throws, the stream stops; otherwise it
        // goes on. The request is never re-sent for it.
        try {
          ask(error)
        } catch (thrown) {
          stop(thrown)
        }
      }
    }
  } as ConnectOptions)
  return stream.closed.then(({ reason, error }) => {
    if (stopped) throw stopError
    if (reason === 'fatal' || reason === 'gave-up') {
      // A fatal error that onerror has not seen yet (a 404, a protocol error) is reported to it
      // too; what it returns cannot bring the stream back, but what it throws is rejected with.
      if (error !== reported) ask(error)
      throw error
    }
  })
}

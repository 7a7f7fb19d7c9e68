// The seed's front end, kept as written: POST with a JSON body, the exact content-type check in
// onopen, RetriableError versus FatalError, and onclose throwing RetriableError so that a
// closed stream is retried. Added: hooks for the page (onEvent, onState), error messages, a stop
// on the `end` event, after which the seed's stream has nothing more to say (and nothing after it
// is handed on), and optional extra request headers (an `Idempotency-Key`, with which every
// retry resumes the same work).
import { fetchEventSource, EventStreamContentType } from '/vendor/fetch-event-source/index.js'

export class RetriableError extends Error {}
export class FatalError extends Error {}

/**
 * Runs the seed's client against `url`. Returns `{ ctrl, done }`: `ctrl.abort()` stops it,
 * `done` resolves when it stopped (the `end` event, or abort) and rejects with a FatalError.
 */
export function runSeedClient (url, { body = { foo: 'bar' }, headers = {}, onEvent = () => {}, onState = () => {} } = {}) {
  const ctrl = new AbortController()
  const done = fetchEventSource(url, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      ...headers
    },
    body: JSON.stringify(body),
    signal: ctrl.signal,
    async onopen (response) {
      if (
        response.ok &&
        response.headers.get('content-type') === EventStreamContentType
      ) {
        onState('open')
        return // everything's good
      } else if (
        response.status >= 400 &&
        response.status < 500 &&
        response.status !== 429
      ) {
        // client-side errors are usually non-retriable:
        throw new FatalError(`HTTP ${response.status}`)
      } else {
        throw new RetriableError(`HTTP ${response.status}, content-type ${response.headers.get('content-type')}`)
      }
    },
    onmessage (msg) {
      onEvent(msg)
      // if the server emits an error message, throw an exception
      // so it gets handled by the onerror callback below:
      if (msg.event === 'FatalError') {
        throw new FatalError(msg.data)
      }
      // The seed's stream is over: stop here rather than retry it from the start.
      if (msg.event === 'end') {
        onState('ended')
        ctrl.abort()
      }
    },
    onclose () {
      // if the server closes the connection unexpectedly, retry:
      throw new RetriableError('the server closed the stream')
    },
    onerror (err) {
      if (err instanceof FatalError) {
        onState('failed', err)
        throw err // rethrow to stop the operation
      } else {
        // do nothing to automatically retry. You can also
        // return a specific retry interval here.
        onState('retrying', err)
      }
    }
  })
  return { ctrl, done }
}

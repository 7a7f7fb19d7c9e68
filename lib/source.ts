import type { FastifyBaseLogger } from 'fastify'
import type { EventObject } from './encoder.js'
import { encodeEvent } from './encoder.js'
import { describe } from './errors.js'
import { type Producer, type SseStream, kRelease, kResume } from './stream.js'

type AnyIterator = Iterator<EventObject> | AsyncIterator<EventObject>

export function isIterable (value: unknown): value is AsyncIterable<EventObject> | Iterable<EventObject> {
  return typeof value === 'object' && value !== null &&
    (typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' ||
      typeof (value as Iterable<unknown>)[Symbol.iterator] === 'function')
}

export function isThenable (value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as PromiseLike<unknown>).then === 'function'
}

const STOP_FAILED = 'fastify-sse-stream: the event source failed while stopping'

/**
 * Calls an iterator's `return()`, if it has one. What it throws or rejects with is logged, and so
 * is a `return` or `then` getter that throws: this runs from close(), where a throw is uncaught.
 */
function stopIterator (it: unknown, log: FastifyBaseLogger): void {
  try {
    const ret = (it as { return?: unknown }).return
    if (typeof ret !== 'function') return
    const result: unknown = ret.call(it)
    if (isThenable(result)) result.then(undefined, (err: unknown) => log.error({ err }, STOP_FAILED))
  } catch (err) {
    log.error({ err }, STOP_FAILED)
  }
}

/**
 * Stops a source that will never be pulled (the stream was refused, or the client left before a
 * source promise settled): an iterator that already holds something (a listener, a cursor) gets
 * its `return()`, and a source promise never rejects unhandled. Iterables are not iterated.
 */
export function dropSource (value: unknown, log: FastifyBaseLogger): void {
  try {
    if (isThenable(value)) {
      value.then((late) => dropSource(late, log), (err: unknown) => {
        log.debug({ err }, 'fastify-sse-stream: a source that was not needed any more failed')
      })
      return
    }
  } catch (err) {
    // A `then` getter or method that throws: there is nothing left to stop.
    return log.error({ err }, STOP_FAILED)
  }
  if (typeof value === 'object' && value !== null) stopIterator(value, log)
}

// Frames pulled within one tick are joined and written as one chunk, up to this many UTF-16
// units: a source that yields from memory would otherwise cost one write per event (three
// buffered writes each, with chunked encoding). Node's own write buffer starts refusing at 16 KiB.
// A full batch is also where the pump gives the event loop a turn (see write()).
const BATCH_LIMIT = 16384

/**
 * Pulls events from an iterable into a stream, one at a time, as `for await` would: the next item
 * is asked for only after the previous frame was accepted by the socket or the socket drained. At
 * most one batch (see BATCH_LIMIT) waits here, so a client that reads nothing holds the source still.
 *
 * Every user-supplied object is read inside a `try`: an iterator, a result or a value whose
 * getters throw ends the stream as `error`, never the process.
 */
export class SourcePump implements Producer {
  private readonly it: AnyIterator
  // A sync iterator's values are awaited, as `for await` awaits them; an async iterator's are not.
  private readonly sync: boolean = false
  private finished = false
  private batch = ''
  private batched = 0
  private flushQueued = false

  constructor (private readonly stream: SseStream, iterable: AsyncIterable<EventObject> | Iterable<EventObject>) {
    let it: unknown
    try {
      const asyncIterator = (iterable as AsyncIterable<EventObject>)[Symbol.asyncIterator]
      this.sync = typeof asyncIterator !== 'function'
      it = this.sync
        ? (iterable as Iterable<EventObject>)[Symbol.iterator]()
        : asyncIterator.call(iterable)
      // As for await does: an iterator that is not an object is a TypeError.
      if (typeof it !== 'object' || it === null) throw new TypeError(`The iterator ${describe(it)} is not an object`)
    } catch (error) {
      // The stream is open (the head is out): end it as failed, as when next() throws. There is
      // no iterator to return, and pull() finds the stream closed.
      this.it = it as AnyIterator
      this.finished = true
      stream.fail(error)
      return
    }
    this.it = it as AnyIterator
    // The stream may already be over (the client left, or HEAD): stop the source at once.
    if (stream.closed) this[kRelease]()
    else stream.producer = this
  }

  readonly pull = (): void => {
    const stream = this.stream
    while (!stream.closed) {
      let result
      try {
        result = this.it.next()
        // An async iterator's result is awaited; a sync iterator's result is read as it is.
        if (!this.sync && isThenable(result)) {
          result.then(this.onResult, this.onError)
          return
        }
      } catch (error) {
        return this.end(error, true)
      }
      if (!this.handle(result)) return
    }
  }

  private readonly onResult = (result: unknown): void => {
    if (this.handle(result)) this.pull()
  }

  private readonly onError = (error: unknown): void => {
    this.end(error, true)
  }

  // A sync source's value, once awaited.
  private readonly onValue = (value: unknown): void => {
    if (this.write(value)) this.pull()
  }

  // A sync source's value rejected: as for await does, the iterator is closed (released).
  private readonly onValueError = (error: unknown): void => {
    if (!this.stream.closed) this.end(error, false)
  }

  /**
   * Ends the stream after writing what is batched: as done when `error` is undefined, else as
   * failed. `exhausted` says the iterator is over (it finished or threw), so it is not returned.
   */
  private end (error: unknown, exhausted: boolean): void {
    if (exhausted) this.finished = true
    this.flush()
    if (error === undefined) this.stream.close('done')
    else this.stream.fail(error)
  }

  /** Writes the batch; false when the socket is full. */
  private flush (): boolean {
    if (this.batched === 0 || this.stream.closed) return true
    const text = this.batch
    const count = this.batched
    this.batch = ''
    this.batched = 0
    return this.stream.writeFrames(text, count)
  }

  // Runs once the microtasks of this tick have run: the source is now waiting on something.
  private readonly flushTick = (): void => {
    this.flushQueued = false
    this.flush()
  }

  /** Reads one iterator result; true when the next one may be pulled at once. */
  private handle (result: unknown): boolean {
    // The stream closed while this item was pending: release() has already run.
    if (this.stream.closed) return false
    let value
    try {
      // As for await does: a result that is not an object is a TypeError, `done` is tested for
      // truthiness, and the iterator is not closed when reading the result throws.
      if (typeof result !== 'object' || result === null) {
        throw new TypeError(`The iterator result ${describe(result)} is not an object`)
      }
      if ((result as IteratorResult<unknown>).done) {
        this.end(undefined, true)
        return false
      }
      value = (result as IteratorResult<unknown>).value
      if (this.sync && isThenable(value)) {
        value.then(this.onValue, this.onValueError)
        return false
      }
    } catch (error) {
      this.end(error, true)
      return false
    }
    return this.write(value)
  }

  /** Encodes and batches one value; true when the next one may be pulled at once. */
  private write (value: unknown): boolean {
    const stream = this.stream
    if (stream.closed) return false
    let frame
    try {
      frame = encodeEvent(value as EventObject, stream.options.serializer)
    } catch (error) {
      // The iterator is not over: the release that follows returns it.
      this.end(error, false)
      return false
    }
    // An event with no field sends nothing, and is not counted as one.
    if (frame === '') return true
    this.batch += frame
    this.batched++
    if (this.batch.length >= BATCH_LIMIT) {
      // A full batch: write it, then give the event loop a turn before pulling on. A source that
      // never waits (a sync iterable, an async generator settling in microtasks) would otherwise
      // hold the process for as long as a fast client reads: no timer, request or close would run.
      if (this.flush()) setImmediate(this.pull)
      else stream.whenDrained()
      return false
    }
    if (!stream.backpressured) {
      if (!this.flushQueued) {
        this.flushQueued = true
        process.nextTick(this.flushTick)
      }
      return true
    }
    // Full socket (at the last tick's flush): resume once it drains.
    stream.whenDrained()
    return false
  }

  // The socket drained: write what waited, then pull on, after the event loop's turn: a 16 KiB
  // write that returned false is often taken by the kernel at once, and its drain comes in the
  // same tick. Should that write fill the socket again, the next item pulled waits in the batch
  // for the next drain (write() sees the full socket).
  [kResume] (): void {
    this.flush()
    setImmediate(this.pull)
  }

  /**
   * Stops the producer: `return()` runs its `finally` blocks. An async generator that is
   * suspended in an `await` handles it only after that await settles, which is why sources
   * are given an AbortSignal to end their waits.
   */
  [kRelease] (): void {
    if (this.finished) return
    this.finished = true
    stopIterator(this.it, this.stream.log)
  }
}

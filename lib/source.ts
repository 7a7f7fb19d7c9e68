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

/** Calls an iterator's `return()`, if it has one; what it throws or rejects with is logged. */
function stopIterator (it: unknown, log: FastifyBaseLogger): void {
  const ret = (it as { return?: unknown }).return
  if (typeof ret !== 'function') return
  try {
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
  if (isThenable(value)) {
    value.then((late) => dropSource(late, log), (err: unknown) => {
      log.debug({ err }, 'fastify-sse-stream: a source that was not needed any more failed')
    })
  } else if (typeof value === 'object' && value !== null) {
    stopIterator(value, log)
  }
}

// Frames pulled within one tick are joined and written as one chunk, up to this many UTF-16
// units: a source that yields from memory would otherwise cost one write per event (three
// buffered writes each, with chunked encoding). Node's own write buffer starts refusing at 16 KiB.
const BATCH_LIMIT = 16384

/**
 * Pulls events from an iterable into a stream, one at a time: the next item is asked for only
 * after the previous frame was accepted by the socket or the socket drained. At most one batch
 * (see BATCH_LIMIT) waits here, so a client that reads nothing holds the source still.
 */
export class SourcePump implements Producer {
  private readonly it: AnyIterator
  private finished = false
  private batch = ''
  private batched = 0
  private flushQueued = false

  constructor (private readonly stream: SseStream, iterable: AsyncIterable<EventObject> | Iterable<EventObject>) {
    let it: unknown
    try {
      const asyncIterator = (iterable as AsyncIterable<EventObject>)[Symbol.asyncIterator]
      it = typeof asyncIterator === 'function'
        ? asyncIterator.call(iterable)
        : (iterable as Iterable<EventObject>)[Symbol.iterator]()
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
      } catch (error) {
        return this.end(error, true)
      }
      if (isThenable(result)) {
        result.then(this.onResult, this.onError)
        return
      }
      if (!this.handle(result)) return
    }
  }

  private readonly onResult = (result: IteratorResult<EventObject>): void => {
    if (this.handle(result)) this.pull()
  }

  private readonly onError = (error: unknown): void => {
    this.end(error, true)
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

  /** Writes one result; true when the next one may be pulled at once. */
  private handle (result: IteratorResult<EventObject>): boolean {
    const stream = this.stream
    // The stream closed while this item was pending: release() has already run.
    if (stream.closed) return false
    // As for await does: a result that is not an object is a TypeError, and the iterator is not
    // closed. Reading `done` from it would throw out of a promise callback (an unhandled rejection).
    if (typeof result !== 'object' || result === null) {
      this.end(new TypeError(`The iterator result ${describe(result)} is not an object`), true)
      return false
    }
    if (result.done === true) {
      this.end(undefined, true)
      return false
    }
    let frame
    try {
      frame = encodeEvent(result.value, stream.options.serializer)
    } catch (error) {
      // The iterator is not over: the release that follows returns it.
      this.end(error, false)
      return false
    }
    this.batch += frame
    this.batched++
    if (this.batch.length >= BATCH_LIMIT) {
      if (this.flush()) return true
    } else if (!stream.backpressured) {
      if (!this.flushQueued) {
        this.flushQueued = true
        process.nextTick(this.flushTick)
      }
      return true
    }
    // Full socket (now, or at the last tick's flush): resume once it drains.
    stream.whenDrained()
    return false
  }

  // The socket drained: write what waited, then pull on. Should that write fill the socket again,
  // the next frame waits in the batch for the next drain, so at most one batch is ever held.
  [kResume] (): void {
    this.flush()
    this.pull()
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

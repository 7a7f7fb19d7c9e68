import type { SseSink } from '../types/index.js'
import type { EventObject, PreparedEvent } from './encoder.js'
import { encodeComment, encodeEvent } from './encoder.js'
import { type Producer, type SseStream, kRelease, kResume, kShutdown } from './stream.js'

interface Queued {
  frame: string
  events: number
  resolve: (written: boolean) => void
}

const WRITTEN = Promise.resolve(true)
const NOT_WRITTEN = Promise.resolve(false)

/**
 * The push-style face of a stream, for producers that are callbacks or emitters. It writes through
 * the stream's one ordered path: at once while the socket takes data, else into a FIFO queue of at
 * most `queueLimit` events that drains in order. A caller that awaits `send()` never fills it.
 */
export class Sink implements SseSink<EventObject>, Producer {
  // Made the first time an event must wait: most sinks never fill their socket.
  private queue: Queued[] | null = null
  // Resolves the send whose write filled the socket, once it drains.
  private waiter: ((written: boolean) => void) | null = null
  private ending = false

  constructor (private readonly stream: SseStream) {
    stream.producer = this
  }

  get signal (): AbortSignal { return this.stream.signal }
  get lastEventId (): string | undefined { return this.stream.lastEventId }
  get pending (): number { return this.queue === null ? 0 : this.queue.length }
  get closed (): boolean { return this.stream.closed }
  get done (): Promise<void> { return this.stream.done }

  send (event: EventObject | PreparedEvent): Promise<boolean> {
    // Encoded now, so a bad event throws to its caller and the stream carries on.
    const frame = encodeEvent(event, this.stream.options.serializer)
    // An event with no field sends nothing and is not counted; it is as done as it will be.
    if (frame === '') return this.stream.closed || this.ending ? NOT_WRITTEN : WRITTEN
    return this.push(frame, 1)
  }

  comment (text: string): Promise<boolean> {
    return this.push(encodeComment(text), 0)
  }

  end (): void {
    if (this.ending || this.stream.closed) return
    this.ending = true
    if (this.pending === 0 && !this.stream.backpressured) this.stream.close('ended')
    else this.stream.whenDrained()
  }

  private push (frame: string, events: number): Promise<boolean> {
    const stream = this.stream
    if (stream.closed || this.ending) return NOT_WRITTEN
    if (!stream.backpressured) {
      if (stream.writeFrames(frame, events)) return WRITTEN
      stream.whenDrained()
      return new Promise((resolve) => { this.waiter = resolve })
    }
    const queue = this.queue ??= []
    if (queue.length >= stream.options.queueLimit) {
      // The client is too slow for this producer: close, so that it reconnects and resumes
      // from its Last-Event-ID, rather than buffer without bound or drop events silently.
      stream.close('overflow')
      return NOT_WRITTEN
    }
    // The write that filled the socket may not have been ours (a heartbeat, say): make sure the
    // queue is flushed when it drains. Only the sink waits on drain, so this never displaces anyone.
    stream.whenDrained()
    return new Promise((resolve) => { queue.push({ frame, events, resolve }) })
  }

  /** The socket drained: settle the send that filled it, write the queue in order, and end if asked. */
  [kResume] (): void {
    const stream = this.stream
    this.waiter?.(true)
    this.waiter = null
    const queue = this.queue
    while (queue !== null && queue.length > 0) {
      const next = queue.shift()!
      if (!stream.writeFrames(next.frame, next.events)) {
        this.waiter = next.resolve
        stream.whenDrained()
        return
      }
      next.resolve(true)
    }
    if (this.ending) stream.close('ended')
  }

  /**
   * Server shutdown. A sink whose signal was never read cannot hear of it, and has no farewell to
   * send in the grace period: it ends now, as end() ends it (what it queued goes out first).
   */
  [kShutdown] (): void {
    if (!this.stream.signalRead) this.end()
  }

  /** The stream closed: whatever was not written resolves false. */
  [kRelease] (): void {
    this.waiter?.(false)
    this.waiter = null
    const queue = this.queue
    if (queue === null || queue.length === 0) return
    for (const queued of queue) queued.resolve(false)
    queue.length = 0
  }
}

import type { FastifyBaseLogger, FastifyReply } from 'fastify'
import type { SseCloseReason } from '../types/index.js'
import { channels } from './diagnostics.js'
import { FST_ERR_SSE_ADMISSION_KEY, FST_ERR_SSE_TOO_MANY_STREAMS, FST_ERR_SSE_TOO_MANY_STREAMS_PER_KEY, describe } from './errors.js'
import type { Hub, HubStats } from './hub/hub.js'
import type { ResolvedPluginOptions } from './options.js'
import { Scheduler } from './scheduler.js'
import { refuse } from './sse-route.js'
import { type SseStream, flushed } from './stream.js'

/** Why admission control refused a stream. */
export type RefusalReason = 'global' | 'per-key' | 'key-error'

/** What `app.sse.stats()` returns: a snapshot, made when asked. */
export interface SseStats {
  readonly streams: {
    /** Open now, hub subscriptions included. */
    readonly open: number
    /** Opened since the plugin registered. */
    readonly opened: number
    /** Open now, per route URL (as declared: `/events/:room`). */
    readonly byRoute: Record<string, number>
    /** Hub subscriptions open now, per topic (a stream of several topics counts in each). */
    readonly byTopic: Record<string, number>
  }
  /** Events written (comments and heartbeats are not events), by every stream so far. */
  readonly events: number
  /** Bytes written, by every stream so far (heads not included). */
  readonly bytes: number
  /** Streams ended so far, per reason. */
  readonly ended: Record<SseCloseReason, number>
  /** Streams refused by admission control so far, per reason. */
  readonly refused: Record<RefusalReason, number>
  /** Admission keys that hold open streams now. */
  readonly keys: number
  /** The hub: topics held, resets sent, policy actions, and the slowest subscribers. */
  readonly hub: Omit<HubStats, 'byTopic'>
}

const REASONS: readonly SseCloseReason[] = ['done', 'ended', 'client-closed', 'error', 'stalled', 'overflow', 'shutdown', 'reset', 'max-age', 'expired']

function counters<K extends string> (keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>
}

/**
 * The open streams of a plugin instance: an array of slots, each stream knowing its own, so that a
 * stream's open and end (every connect) are a store into a slot rather than an insert into a hash
 * table and a delete from it. A slot freed is reused. Iterating skips a stream that ends
 * meanwhile, as iterating a Set does. (Streams never point at each other: a list threaded through
 * them would let an ended stream that the GC has promoted keep the next one alive.)
 */
export class OpenStreams implements Iterable<SseStream> {
  size = 0
  private readonly slots: Array<SseStream | null> = []
  private readonly free: number[] = []

  add (stream: SseStream): void {
    const slot = this.free.length === 0 ? this.slots.length : this.free.pop()!
    this.slots[slot] = stream
    stream.slot = slot
    this.size++
  }

  /** Takes out a stream that add() put in; nothing else (another stream's slot stays as it is). */
  delete (stream: SseStream): void {
    if (this.slots[stream.slot] !== stream) return
    // The last one: the slots start over. (While any stream is open, the slots of a past peak stay,
    // and each pass of the scheduler looks at them: a comparison each, once a second at most.)
    if (--this.size === 0) {
      this.slots.length = 0
      this.free.length = 0
      return
    }
    this.slots[stream.slot] = null
    this.free.push(stream.slot)
  }

  * [Symbol.iterator] (): Iterator<SseStream> {
    const slots = this.slots
    for (let i = 0; i < slots.length; i++) {
      const stream = slots[i]
      if (stream !== null) yield stream
    }
  }
}

/** The grace period `grace` is over: the streams given it end now, between two frames. */
function endGrace (streams: OpenStreams, grace: number): void {
  for (const stream of Array.from(streams)) if (stream.options.shutdownGrace === grace) stream.close('shutdown')
}

/**
 * Everything one plugin instance holds across its streams: the open streams, the replies of
 * `sse: true` handlers waiting for their stream, the shared scheduler, the hub, admission
 * control, the counters behind `app.sse.stats()`, and the shutdown. The reply decorators, the
 * route hook and each stream reach it; none of it lives on them.
 */
export class PluginState {
  /** The open streams, for the scheduler, the stats and the shutdown. */
  readonly streams = new OpenStreams()
  /** Replies of `sse: true` routes whose handler returned and waits for reply.sse(). */
  readonly waiting = new Set<FastifyReply>()
  /** One timer for the heartbeats and the lifetimes of every stream. */
  readonly scheduler: Scheduler
  /** Set once the app begins to close: no stream opens after it. */
  closing = false
  /** Open streams per admission key; a key leaves when its last stream ends. */
  private readonly keys = new Map<string, number>()
  private openedTotal = 0
  // The events and bytes of the streams that have ended; the open ones are summed when asked.
  private events = 0
  private bytes = 0
  private readonly ended = counters(REASONS)
  private readonly refused = counters<RefusalReason>(['global', 'per-key', 'key-error'])
  // Set while a shutdown waits out the grace periods: called once the last stream has ended.
  private drained: (() => void) | null = null

  constructor (
    readonly options: ResolvedPluginOptions,
    readonly hub: Hub,
    readonly log: FastifyBaseLogger
  ) {
    this.scheduler = new Scheduler(this.streams)
  }

  /**
   * Admission control, before a stream takes its reply: throws the error Fastify then answers
   * (503 over the global limit, 429 over the key's, 500 when the key function fails), with
   * `Retry-After` set for the first two. Returns the stream's key when keys are counted. Nothing
   * is counted here: a stream counts once it has opened (see opened()), so a refusal, or an open
   * that fails after this, leaves nothing behind.
   */
  admit (reply: FastifyReply): string | undefined {
    const { maxStreams, maxStreamsPerKey } = this.options
    if (maxStreams > 0 && this.streams.size >= maxStreams) {
      this.refuse(reply, 'global', undefined, maxStreams)
      throw new FST_ERR_SSE_TOO_MANY_STREAMS(maxStreams)
    }
    if (maxStreamsPerKey === 0) return undefined
    let key: unknown
    try {
      key = this.options.admissionKey(reply.request)
    } catch (error) {
      return this.keyFailed(reply, 'threw', error)
    }
    if (typeof key !== 'string') return this.keyFailed(reply, `returned ${describe(key)}`, undefined)
    if ((this.keys.get(key) ?? 0) >= maxStreamsPerKey) {
      this.refuse(reply, 'per-key', key, maxStreamsPerKey)
      throw new FST_ERR_SSE_TOO_MANY_STREAMS_PER_KEY(maxStreamsPerKey)
    }
    return key
  }

  private refuse (reply: FastifyReply, reason: RefusalReason, key: string | undefined, limit: number | undefined): void {
    this.refused[reason]++
    if (reason !== 'key-error') reply.header('retry-after', String(this.options.retryAfter))
    if (channels.admissionRefused.hasSubscribers) {
      channels.admissionRefused.publish({ request: reply.request, reason, key, limit })
    }
  }

  private keyFailed (reply: FastifyReply, what: string, cause: unknown): never {
    const error = cause === undefined ? new FST_ERR_SSE_ADMISSION_KEY(what) : new FST_ERR_SSE_ADMISSION_KEY(what, { cause })
    reply.log.error({ err: error }, 'fastify-sse-stream: the admissionKey option failed; the stream is refused')
    this.refuse(reply, 'key-error', undefined, undefined)
    throw error
  }

  /** A stream opened (its head is out): it counts now, against the limits and in the stats. */
  opened (stream: SseStream): void {
    this.streams.add(stream)
    this.openedTotal++
    const key = stream.key
    if (key !== undefined) this.keys.set(key, (this.keys.get(key) ?? 0) + 1)
  }

  /**
   * A stream that opened has ended. (Only those call it: one refused, or abandoned before its
   * head, never counted and ends through abandon().)
   */
  closed (stream: SseStream, reason: SseCloseReason): void {
    this.streams.delete(stream)
    this.ended[reason]++
    this.events += stream.events
    this.bytes += stream.bytes
    const key = stream.key
    if (key !== undefined) {
      const n = this.keys.get(key)! - 1
      if (n === 0) this.keys.delete(key)
      else this.keys.set(key, n)
    }
    if (this.drained !== null && this.streams.size === 0) this.drained()
  }

  /** `app.sse.stats()`: counted when asked, from the open streams and the totals of the ended ones. */
  stats (): SseStats {
    let events = this.events
    let bytes = this.bytes
    const byRoute: Record<string, number> = {}
    for (const stream of this.streams) {
      events += stream.events
      bytes += stream.bytes
      byRoute[stream.route] = (byRoute[stream.route] ?? 0) + 1
    }
    const { byTopic, ...hub } = this.hub.stats()
    return {
      streams: { open: this.streams.size, opened: this.openedTotal, byRoute, byTopic },
      events,
      bytes,
      ended: { ...this.ended },
      refused: { ...this.refused },
      keys: this.keys.size,
      hub
    }
  }

  /**
   * The app's preClose: no new stream, and every open one gets its signal, its grace period and
   * its end. An `sse: true` handler still waiting for its reply.sse() gets the 503 a late stream gets.
   *
   * A stream ends at once when nothing can send a farewell on it (grace 0, a sink whose signal
   * was never read, a hub subscription); the others end when their grace period is over, or
   * sooner. One timer per grace period in use (a per-call `shutdownGrace` may differ), not one per
   * stream; then one wait, bounded by one timer, for every response to leave its socket.
   */
  async shutdown (): Promise<void> {
    this.closing = true
    for (const reply of Array.from(this.waiting)) void refuse(this, reply)
    const streams = Array.from(this.streams)
    for (const stream of streams) stream.shutdown()
    if (this.streams.size > 0) await this.graceOver()
    await flushed(streams)
  }

  /** Settles once every stream still open has ended: within its grace period, or at its end. */
  private graceOver (): Promise<void> {
    return new Promise((resolve) => {
      const timers = new Map<number, NodeJS.Timeout>()
      this.drained = () => {
        this.drained = null
        for (const timer of timers.values()) clearTimeout(timer)
        resolve()
      }
      for (const stream of this.streams) {
        const grace = stream.options.shutdownGrace
        if (!timers.has(grace)) timers.set(grace, setTimeout(endGrace, grace, this.streams, grace))
      }
    })
  }

  /** The app's onClose: the scheduler stops and the hub closes. */
  async close (): Promise<void> {
    this.scheduler.stop()
    await this.hub.close()
  }
}

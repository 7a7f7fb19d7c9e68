import type { FastifyBaseLogger } from 'fastify'
import { channels } from '../diagnostics.js'
import type { EventObject } from '../encoder.js'
import { type Producer, type SseStream, kRelease, kResume, kShutdown } from '../stream.js'
import type { Entry, TopicLog } from './log.js'
import { type Position, formatId, formatPosition } from './position.js'

export type SubscribePolicy = 'catch-up' | 'disconnect' | 'skip-to-head' | 'conflate'
export type ResetReason = 'trimmed' | 'unknown' | 'lost' | 'too-far' | 'overflow'

/** A subscription's settings, resolved. */
export interface Subscription {
  readonly policy: SubscribePolicy
  readonly key: ((event: EventObject) => string) | undefined
  readonly filter: ((event: EventObject, topic: string) => boolean) | undefined
  readonly lag: { readonly events: number, readonly bytes: number, readonly ms: number }
  readonly reset: 'continue' | 'close'
  readonly resetEvent: string
}

/** Resets sent and policy actions taken by the subscribers of a hub. */
export interface HubCounters {
  /** Reset frames sent, per reason. */
  readonly resets: Record<ResetReason, number>
  /**
   * Slow-subscriber policy actions: streams closed by `disconnect`, topics skipped to the head
   * by `skip-to-head` (also counted as `overflow` resets), events left out by `conflate`.
   */
  readonly policy: { disconnected: number, skipped: number, conflated: number }
}

/** How far behind a subscriber is: the events it has yet to be sent, and the age of the oldest. */
export interface Lag {
  readonly route: string
  readonly topics: string[]
  readonly events: number
  readonly ms: number
}

/** What a subscriber asks of its hub. */
export interface SubscriberHost {
  schedule (subscriber: Subscriber): void
  release (log: TopicLog, subscriber: Subscriber): void
  readonly log: FastifyBaseLogger
  readonly counters: HubCounters
  /** Whether a position older than a topic's cache is read from the broker, a page at a time. */
  readonly pages: boolean
  page (log: TopicLog, after: Position, live: () => boolean): Promise<readonly Entry[] | ResetReason>
}

// One write carries at most this many bytes of frames (more waits for the next turn): a replay of
// thousands of events goes out in slices with backpressure, never as one huge buffer.
const WRITE_LIMIT = 65536

/**
 * One stream's reading of one or more topics: a position in each topic's log, and nothing queued.
 * New events wake it; the hub flushes it in slices, and each flush writes everything after its
 * positions (up to WRITE_LIMIT) in one write. Replay and live delivery are the same read.
 */
export class Subscriber implements Producer {
  /** In the hub's flush queue. */
  queued = false
  /** Per topic, the position of the last event this client has (or was told to skip to). */
  readonly positions: Position[]
  // The id the client claimed, for the `from` of an `unknown` reset.
  private unknown: string | undefined
  // Per topic, a reset to tell at the next flush; null while there is none (the usual case).
  private resets: Array<ResetReason | undefined> | null
  private endedTopics = 0
  // The topic the next flush starts at, for several topics.
  private turn = 0
  // Per topic, whether it reached its end marker; null until one does.
  private ended: boolean[] | null = null
  // Per topic, the page of older history being read (or true while it is fetched); null until a
  // position falls behind its topic's cache.
  private pages: Array<readonly Entry[] | true | undefined> | null = null

  constructor (
    private readonly host: SubscriberHost,
    readonly stream: SseStream,
    readonly logs: readonly TopicLog[],
    start: { readonly positions: Position[], readonly resets: Array<ResetReason | undefined>, readonly unknown: string | undefined },
    private readonly hash: string,
    private readonly options: Subscription
  ) {
    this.positions = start.positions
    this.resets = start.resets.some((r) => r !== undefined) ? start.resets : null
    this.unknown = start.unknown
    for (const log of logs) log.subscribers.add(this)
    stream.producer = this
  }

  /** The id that carries every position. */
  get id (): string {
    return formatId(this.hash, this.positions)
  }

  /** A topic has new events. */
  wake (): void {
    if (this.stream.backpressured && this.options.policy !== 'catch-up' && this.options.policy !== 'conflate') {
      // Blocked on a full socket: a lag bound is checked now, not once the socket drains.
      for (let i = 0; i < this.logs.length; i++) {
        if (this.lagging(i, Date.now())) return this.overLag(i)
      }
      return
    }
    this.host.schedule(this)
  }

  /** The topic at `i` lost its history: its position is told as lost at the next flush. */
  lose (log: TopicLog): void {
    this.setReset(this.logs.indexOf(log), 'lost')
    this.host.schedule(this)
  }

  private setReset (i: number, reason: ResetReason): void {
    this.resets ??= this.logs.map(() => undefined)
    this.resets[i] = reason
  }

  private overLag (i: number): void {
    if (this.options.policy === 'disconnect') {
      this.host.counters.policy.disconnected++
      this.host.log.info({ topic: this.logs[i]!.name }, 'fastify-sse-stream: a subscriber lagged past its bound; closing it')
      this.stream.close('overflow')
    } else {
      this.setReset(i, 'overflow')
    }
  }

  /** Whether the subscriber is behind on topic `i` by more than its lag bounds. */
  private lagging (i: number, now: number): boolean {
    const log = this.logs[i]!
    const position = this.positions[i]!
    if (position.o >= log.head.o) return false
    const lag = this.options.lag
    if (log.head.o - position.o > lag.events) return true
    const next = log.at(position.o + 1)
    if (next === undefined) return false // trimmed: the flush resets it
    return log.total - next.total + next.frame.length > lag.bytes || now - next.t > lag.ms
  }

  /** Writes what is pending: resets, then each topic's events after its position. */
  flush (): void {
    const stream = this.stream
    if (stream.closed) return
    if (stream.backpressured) return stream.whenDrained()
    const parts: Buffer[] = []
    // The entry whose frame is the only part, when it is: written as its shared chunk.
    let shared: Entry | undefined
    let size = 0
    let events = 0
    let more = false
    let closeAfter = false
    const { policy, filter } = this.options
    try {
      // Each flush starts at the next topic: a busy topic that fills every write cannot keep the
      // others waiting.
      const count = this.logs.length
      const first = count === 1 ? 0 : this.turn++ % count
      for (let k = 0; k < count && size < WRITE_LIMIT; k++) {
        const i = first + k < count ? first + k : first + k - count
        if (this.hasEnded(i)) continue
        const log = this.logs[i]!
        let position = this.positions[i]!
        let reason = this.resets?.[i]
        const behind = position.o < log.firstOffset - 1
        if (reason === undefined && position.o < log.head.o) {
          if (behind && !this.host.pages) reason = 'trimmed'
          // 'disconnect' is checked only while the socket is full (wake()): a flush means the
          // client reads, and a resume starts past the bound that closed it, by construction.
          else if (policy === 'skip-to-head' && this.lagging(i, Date.now())) reason = 'overflow'
        }
        if (reason !== undefined) {
          if (this.resets !== null) this.resets[i] = undefined
          const frame = this.resetFrame(i, reason)
          parts.push(frame)
          size += frame.length
          events++
          if (this.options.reset === 'close') {
            closeAfter = true
            break
          }
          position = this.positions[i]!
        }
        if (position.o >= log.head.o) {
          // Moved to the end of a finished stream by a reset: nothing follows.
          if (log.ended) this.end(i)
          continue
        }
        // What to send: entries of a list (a page, or a conflated backlog) from `at`, or, when list
        // is null, the log's own entries after the position (no copy, no iterator).
        let list: readonly Entry[] | null = null
        let at = 0
        if (behind) {
          // Older than the cache: read from the broker a page at a time, each page once written.
          const page = this.page(i, log, position)
          if (page === undefined) continue
          list = page
          at = position.o + 1 - page[0]!.o
        } else {
          // Caught up with the cache: a page read before is not needed any more.
          if (this.pages !== null) this.pages[i] = undefined
          if (policy === 'conflate' && log.head.o - position.o > 1) {
            list = this.conflated(log, position)
            this.host.counters.policy.conflated += log.head.o - position.o - list.length
          }
        }
        const stop = list === null ? log.head.o - position.o : list.length
        for (let n = at, o = position.o + 1; n < stop; n++, o++) {
          const entry = list === null ? log.at(o)! : list[n]!
          if (size >= WRITE_LIMIT) {
            more = true
            break
          }
          this.positions[i] = entry
          // The end marker writes nothing: a client whose last id is the stream's last event has
          // all of it, and gets 204 if it comes back (an id-only frame would be an empty message
          // to fetch-event-source).
          if (entry.end) {
            this.end(i)
            break
          }
          if (filter !== undefined && !filter(entry.event!, log.name)) continue
          events++
          const frame = this.logs.length === 1 ? entry.frame : this.multiFrame(entry)
          shared = parts.length === 0 && frame === entry.frame ? entry : undefined
          parts.push(frame)
          size += frame.length
        }
        if (this.positions[i]!.o < log.head.o && !this.hasEnded(i) && this.pages?.[i] !== true) more = true
      }
    } catch (error) {
      // A filter or key function threw: this subscriber alone ends.
      stream.log.error({ err: error }, 'fastify-sse-stream: a subscription filter or key function failed')
      stream.close('error')
      return
    }
    let ok = true
    if (parts.length > 0) {
      ok = shared !== undefined && parts.length === 1
        ? stream.writeShared(shared.frame, shared.chunk, events)
        : stream.writeParts(parts, size, events)
      if (closeAfter) return stream.close('reset')
    }
    if (this.endedTopics === this.logs.length) return stream.close('done')
    if (!ok) return stream.whenDrained()
    if (more) this.host.schedule(this)
  }

  private hasEnded (i: number): boolean {
    return this.ended !== null && this.ended[i] === true
  }

  /** Topic `i` reached its end marker. */
  private end (i: number): void {
    this.ended ??= this.logs.map(() => false)
    this.ended[i] = true
    this.endedTopics++
  }

  /**
   * The page that holds the event after `position` in topic `i`, or undefined while it is read:
   * the flush that follows its arrival writes it. One page at a time, read only once the previous
   * one is written: a slow client holds one page, and the broker is read at the client's pace.
   */
  private page (i: number, log: TopicLog, position: Position): readonly Entry[] | undefined {
    this.pages ??= this.logs.map(() => undefined)
    const held = this.pages[i]
    if (held === true) return undefined
    if (held !== undefined) {
      const k = position.o + 1 - held[0]!.o
      if (k >= 0 && k < held.length) return held
    }
    this.pages[i] = true
    // It never rejects: a read that fails is retried while this stream is open.
    void this.host.page(log, position, () => !this.stream.closed).then((result) => {
      const pages = this.pages!
      pages[i] = undefined
      // Its client left while the page was read.
      if (this.stream.closed) return
      if (typeof result === 'string') this.setReset(i, result)
      else pages[i] = result
      this.host.schedule(this)
    })
    return undefined
  }

  /** The newest event per key of the backlog, in the order of their last occurrence. */
  private conflated (log: TopicLog, position: Position): Entry[] {
    const key = this.options.key!
    const newest = new Map<string, Entry>()
    for (let o = position.o + 1; o <= log.head.o; o++) {
      const entry = log.at(o)!
      const k = entry.end ? '\0end' : String(key(entry.event!))
      newest.delete(k)
      newest.set(k, entry)
    }
    return Array.from(newest.values())
  }

  /** An event of one of several topics: its fields, and the id of every position. */
  private multiFrame (entry: Entry): Buffer {
    const id = Buffer.from('id: ' + this.id + '\n\n', 'latin1')
    return Buffer.concat([entry.frame.subarray(0, entry.bodyLength), id])
  }

  /** Tells the client that topic `i` cannot go on from its position, and moves it to the head. */
  private resetFrame (i: number, reason: ResetReason): Buffer {
    const log = this.logs[i]!
    const from = reason === 'unknown' ? this.unknown! : formatPosition(this.positions[i]!)
    this.positions[i] = log.head
    const head = formatPosition(log.head)
    const counters = this.host.counters
    counters.resets[reason]++
    if (reason === 'overflow') counters.policy.skipped++
    if (channels.reset.hasSubscribers) {
      channels.reset.publish({ reqId: this.stream.reqId, route: this.stream.route, topic: log.name, reason, from, head })
    }
    const data = JSON.stringify({ topic: log.name, reason, from, head })
    return Buffer.from(`event: ${this.options.resetEvent}\nid: ${this.id}\ndata: ${data}\n\n`)
  }

  /** How far behind this subscriber is, over its topics, at `now` (ms since the epoch). */
  lag (now: number): Lag {
    let events = 0
    let ms = 0
    this.logs.forEach((log, i) => {
      const position = this.positions[i]!
      if (this.hasEnded(i) || position.o >= log.head.o) return
      events += log.head.o - position.o
      const next = log.at(position.o + 1)
      if (next !== undefined) ms = Math.max(ms, now - next.t)
    })
    return { route: this.stream.route, topics: this.logs.map((log) => log.name), events, ms }
  }

  [kResume] (): void {
    this.host.schedule(this)
  }

  /** Shutdown: what is pending goes out, then the stream ends. */
  [kShutdown] (): void {
    this.flush()
    this.stream.close('shutdown')
  }

  [kRelease] (): void {
    for (const log of this.logs) {
      log.subscribers.delete(this)
      this.host.release(log, this)
    }
  }
}

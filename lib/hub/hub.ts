import type { FastifyBaseLogger } from 'fastify'
import { channels } from '../diagnostics.js'
import { type EventObject, encodeEvent } from '../encoder.js'
import { FST_ERR_SSE_BROKER, FST_ERR_SSE_HUB_CLOSED, FST_ERR_SSE_ID_ASSIGNED, FST_ERR_SSE_INVALID_EVENT, FST_ERR_SSE_INVALID_OPTION, FST_ERR_SSE_INVALID_TOPIC, describe } from '../errors.js'
import { isIterable, isThenable } from '../source.js'
import type { SseStream } from '../stream.js'
import type { BrokerHost, BrokerRecord, HubBroker } from './broker.js'
import { type Entry, type Retention, type Stored, TopicLog, makeEntry } from './log.js'
import { ORIGIN, type Position, formatPosition, parseId, topicsHash } from './position.js'
import { type HubCounters, type Lag, type ResetReason, Subscriber, type SubscriberHost, type Subscription } from './subscriber.js'

export interface HubSettings {
  readonly history: Retention & { readonly totalBytes: number }
  readonly broker: HubBroker
  readonly resetEvent: string
}

/** Where a new subscription starts, and what it must be told first. */
export interface Start {
  readonly positions: Position[]
  readonly resets: Array<ResetReason | undefined>
  /** Every topic has ended and the client has all of it: nothing to stream (204). */
  readonly over: boolean
  /** The id the client claimed, when it was not one this subscription gave. */
  readonly unknown: string | undefined
}

const MAX_TOPIC_LENGTH = 256
export const MAX_TOPICS = 256
// eslint-disable-next-line no-control-regex
const TOPIC_UNSAFE = /[\x00-\x1f\x7f]/
// Subscribers flushed per macrotask: publishes keep arriving between slices, and the next write
// to each socket carries all of them. 1,024 (a few ms of writes): a pass over a thousand sockets
// takes one turn, as a hand-written loop would (slices of 256 put the last quarter three turns
// behind: p99 latency 1.42x node:http's at 1,000 clients against 0.96x, in one run), and a pass
// over thousands still leaves the loop every few ms (5,000 clients x 50/s stays on schedule).
const SLICE = 1024
// Events per page read from a shared broker, for a cursor older than the topic's cache.
export const PAGE = 512

/** A page of a topic older than its cache, or why the cursor cannot be served from it. */
export type PageResult = readonly Entry[] | ResetReason

interface PageWaiter {
  readonly after: Position
  readonly live: () => boolean
  readonly resolve: (result: PageResult) => void
}

/** A page read after offset `from`, up to a multiple of PAGE (or to the cache). */
interface Page {
  readonly from: number
  readonly entries: readonly Entry[]
}

// Pages kept per topic while it has subscribers: clients of a reconnect storm, at different
// places, find theirs without another read.
const PAGES_KEPT = 4

/** The pages of one topic: one read at a time, its waiters served together. */
interface Pager {
  waiters: PageWaiter[]
  /** The last pages read, by `floor(end / PAGE)`, least recently read first. */
  readonly pages: Map<number, Page>
  running: boolean
}

export function checkTopic (topic: unknown): string {
  if (typeof topic !== 'string' || topic === '' || topic.length > MAX_TOPIC_LENGTH || TOPIC_UNSAFE.test(topic) || !topic.isWellFormed()) {
    throw new FST_ERR_SSE_INVALID_TOPIC(describe(topic))
  }
  return topic
}

/** Options of `app.sse.publish()`. */
export interface PublishOptions {
  /**
   * Stores the event once per key (for a while): a publish retried with the same key resolves with
   * the first one's id. Printable ASCII without braces, up to 200 characters. The memory broker
   * ignores it: a publish there cannot fail halfway.
   */
  readonly idempotencyKey?: string | undefined
}

const IDEMPOTENCY_KEY = /^[\x21-\x7a|~]{1,200}$/

function checkPublishOptions (options: unknown): string | undefined {
  if (options === undefined) return undefined
  if (typeof options !== 'object' || options === null) throw new FST_ERR_SSE_INVALID_OPTION('publish options', 'an object', describe(options))
  const key = (options as PublishOptions).idempotencyKey
  if (key !== undefined && (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key))) {
    throw new FST_ERR_SSE_INVALID_OPTION('idempotencyKey', 'printable ASCII without braces, 1 to 200 characters', describe(key))
  }
  return key
}

type PipeSource = AsyncIterable<EventObject> | Iterable<EventObject>

/** How many of the slowest subscribers `stats()` lists. */
const SLOWEST = 10

/** The hub's part of `app.sse.stats()`. */
export interface HubStats extends HubCounters {
  /** Topics held (with history, subscribers or a running pipe). */
  readonly topics: number
  /** Subscribers reading each topic now. */
  readonly byTopic: Record<string, number>
  /** The subscribers furthest behind (at most 10), the furthest first; those with no lag are left out. */
  readonly slowest: Lag[]
}

/**
 * Topics, their bounded logs, and the subscribers reading them. Publishing stores an event once
 * (through the broker), encoded once; every subscriber then writes the same bytes.
 */
export class Hub implements BrokerHost, SubscriberHost {
  private readonly topics = new Map<string, TopicLog>()
  private readonly pipes = new Map<string, Promise<void>>()
  private readonly pagers = new Map<string, Pager>()
  private readonly controller = new AbortController()
  private bytes = 0
  private dirty: Subscriber[] = []
  private next = 0
  private flushing = false
  private closed = false
  private readonly sweeper: NodeJS.Timeout
  readonly broker: HubBroker
  /** Resets sent and policy actions taken, since the start. */
  readonly counters: HubCounters = {
    resets: { trimmed: 0, unknown: 0, lost: 0, 'too-far': 0, overflow: 0 },
    policy: { disconnected: 0, skipped: 0, conflated: 0 }
  }
  /**
   * Whether a cursor older than a topic's cache is paged from the broker: a broker shared by
   * several processes (one with `sync`) holds more history than this process's cache.
   */
  readonly pages: boolean

  constructor (private readonly settings: HubSettings, readonly log: FastifyBaseLogger) {
    this.broker = settings.broker
    this.pages = settings.broker.sync !== undefined
    this.broker.attach(this)
    const every = Math.max(10, Math.min(settings.history.maxAge, 1000))
    this.sweeper = setInterval(() => this.sweep(), every).unref()
  }

  /** The name of the event that tells a client its position could not be served. */
  get resetEvent (): string {
    return this.settings.resetEvent
  }

  // BrokerHost

  head (topic: string): Position {
    return this.topics.get(topic)?.head ?? ORIGIN
  }

  deliver (topic: string, entries: readonly Stored[]): void {
    const log = this.topic(topic)
    const retention = this.settings.history
    for (const stored of entries) {
      if (stored.o !== log.head.o + 1 || stored.t < log.head.t) {
        // Not the next event of the history held: another history (lost, or restarted). What was
        // held is dropped, and every reader of it is told.
        this.dropHistory(log)
        log.head = { t: stored.t, o: stored.o - 1 }
      }
      this.bytes += log.append(stored).frame.length
    }
    this.bytes -= log.trim(retention, Date.now())
    // Least recently published last: the total budget evicts from the front.
    this.topics.delete(topic)
    this.topics.set(topic, log)
    if (this.bytes > retention.totalBytes) this.evict(log)
    for (const subscriber of log.subscribers) (subscriber as Subscriber).wake()
  }

  lost (topic: string, head?: Position): void {
    const log = this.topics.get(topic)
    if (log === undefined) return
    this.dropHistory(log)
    // Readers are told at their next flush, from the head the broker holds now.
    if (head !== undefined) log.head = head
  }

  private dropHistory (log: TopicLog): void {
    while (log.size > 0) this.bytes -= log.shift()
    log.ended = false
    this.pagers.get(log.name)?.pages.clear()
    for (const subscriber of log.subscribers) (subscriber as Subscriber).lose(log)
  }

  /** Frees history from the least recently published topics until the hub is within its budget. */
  private evict (keep: TopicLog): void {
    for (const log of this.topics.values()) {
      if (this.bytes <= this.settings.history.totalBytes) return
      while (log.size > (log === keep ? 1 : 0) && this.bytes > this.settings.history.totalBytes) this.bytes -= log.shift()
      this.free(log)
    }
  }

  private topic (name: string): TopicLog {
    let log = this.topics.get(name)
    if (log === undefined) {
      log = new TopicLog(name)
      this.topics.set(name, log)
    }
    return log
  }

  /** Drops a topic that holds nothing and that nobody reads or writes. */
  private free (log: TopicLog): void {
    if (log.size === 0 && log.subscribers.size === 0 && !this.pipes.has(log.name) && this.topics.get(log.name) === log) {
      this.topics.delete(log.name)
    }
  }

  /** Trims aged history and frees empty topics; runs on a timer, unref'd. */
  sweep (): void {
    const now = Date.now()
    for (const log of this.topics.values()) {
      this.bytes -= log.trim(this.settings.history, now)
      this.free(log)
    }
  }

  /** How many topics are held (for tests and stats). */
  get size (): number {
    return this.topics.size
  }

  /** The hub's part of `app.sse.stats()`: counted when asked. */
  stats (): HubStats {
    const byTopic: Record<string, number> = {}
    const readers = new Set<Subscriber>()
    for (const log of this.topics.values()) {
      if (log.subscribers.size === 0) continue
      byTopic[log.name] = log.subscribers.size
      for (const subscriber of log.subscribers) readers.add(subscriber as Subscriber)
    }
    const now = Date.now()
    const lags: Lag[] = []
    for (const subscriber of readers) {
      const lag = subscriber.lag(now)
      if (lag.events > 0) lags.push(lag)
    }
    lags.sort((a, b) => b.events - a.events || b.ms - a.ms)
    const { resets, policy } = this.counters
    return { topics: this.topics.size, byTopic, resets: { ...resets }, policy: { ...policy }, slowest: lags.slice(0, SLOWEST) }
  }

  // Publishing

  publish (topic: string, event: EventObject, options?: PublishOptions): Promise<string> {
    try {
      checkTopic(topic)
      if (typeof event !== 'object' || event === null || Array.isArray(event)) throw new FST_ERR_SSE_INVALID_EVENT(describe(event))
      if (event.id !== undefined) throw new FST_ERR_SSE_ID_ASSIGNED(describe(event.id))
      const key = checkPublishOptions(options)
      if (this.closed) throw new FST_ERR_SSE_HUB_CLOSED()
      // Without an id, a frame is its fields and a closing blank line: the body is the fields.
      const frame = encodeEvent(event)
      const body = Buffer.from(frame.endsWith('\n\n') ? frame.slice(0, -1) : frame)
      return this.append(topic, key === undefined ? { body, event } : { body, event, key })
    } catch (error) {
      return Promise.reject(error)
    }
  }

  private append (topic: string, record: BrokerRecord): Promise<string> {
    let stored: Promise<Position>
    try {
      stored = this.broker.append(topic, record)
    } catch (error) {
      return Promise.reject(new FST_ERR_SSE_BROKER({ cause: error }))
    }
    return stored.then((position) => {
      const id = formatPosition(position)
      if (channels.publish.hasSubscribers && record.end !== true) channels.publish.publish({ topic, id, bytes: record.body.length })
      return id
    }, (error: unknown) => { throw new FST_ERR_SSE_BROKER({ cause: error }) })
  }

  /**
   * Runs a producer into a topic, independently of any connection: it runs to its end even when
   * every client has gone, and ends with a marker that ends its subscribers' streams cleanly.
   * One producer per topic: while one runs, or while a finished one's history is held, a second
   * call starts nothing (a source function is not even called) and settles with the first. With a
   * broker shared by several processes (one with `claim`), the work starts only once the broker
   * grants this process the topic: a call that another process won, or that finds the topic's
   * events in the broker, starts nothing and resolves at once; one the broker cannot answer rejects
   * with FST_ERR_SSE_BROKER, and starts nothing either.
   */
  pipe (topic: string, source: PipeSource | ((signal: AbortSignal) => PipeSource | Promise<PipeSource>)): Promise<void> {
    try {
      checkTopic(topic)
      if (this.closed) throw new FST_ERR_SSE_HUB_CLOSED()
    } catch (error) {
      return Promise.reject(error)
    }
    const running = this.pipes.get(topic)
    if (running !== undefined) return running
    if (this.topics.get(topic)?.ended === true) return Promise.resolve()
    const run = this.broker.claim === undefined ? this.run(topic, source) : this.claimed(topic, source)
    this.pipes.set(topic, run)
    const done = (): void => {
      this.pipes.delete(topic)
      const log = this.topics.get(topic)
      if (log !== undefined) this.free(log)
    }
    // A claim the broker could not answer rejects: the caller is told, through `run`.
    void run.then(done, done)
    return run
  }

  /** Runs the producer once the broker grants this process the topic. */
  private async claimed (topic: string, source: PipeSource | ((signal: AbortSignal) => PipeSource | Promise<PipeSource>)): Promise<void> {
    let mine: boolean
    try {
      mine = await this.broker.claim!(topic)
    } catch (error) {
      throw new FST_ERR_SSE_BROKER({ cause: error })
    }
    // An app that closed while the broker answered starts nothing.
    if (mine && !this.closed) await this.run(topic, source)
  }

  private async run (topic: string, source: PipeSource | ((signal: AbortSignal) => PipeSource | Promise<PipeSource>)): Promise<void> {
    const signal = this.controller.signal
    try {
      let iterable: unknown = typeof source === 'function' ? source(signal) : source
      if (isThenable(iterable)) iterable = await iterable
      if (!isIterable(iterable)) throw new FST_ERR_SSE_INVALID_EVENT(describe(iterable))
      // Once the app closes, the next publish is refused: the loop ends and the source is returned.
      for await (const event of iterable as PipeSource) await this.publish(topic, event)
    } catch (error) {
      if (!signal.aborted) this.log.error({ err: error, topic }, 'fastify-sse-stream: a piped source failed')
    }
    if (!this.closed) await this.append(topic, { body: Buffer.alloc(0), end: true }).catch((error: unknown) => {
      this.log.error({ err: error, topic }, 'fastify-sse-stream: the end of a piped stream could not be stored')
    })
  }

  // Subscribing

  /**
   * What a shared broker must bring up to date before a subscription to `names` is judged: the
   * topics no one here reads yet (their logs may be stale or empty), and those the client's cursor
   * is ahead of (another process served it an event this one has yet to receive). Undefined when
   * nothing is to wait for: the memory broker, or cursors within the logs of topics being read.
   */
  prepare (names: readonly string[], lastEventId: string | undefined): Promise<void> | undefined {
    const broker = this.broker
    if (broker.sync === undefined) return undefined
    const cursors = lastEventId === undefined ? undefined : parseId(lastEventId, topicsHash(names), names.length)
    const waits: Array<Promise<void>> = []
    names.forEach((name, i) => {
      const log = this.topics.get(name)
      if (log === undefined || log.subscribers.size === 0 || (cursors !== undefined && cursors[i]!.o > log.head.o)) {
        waits.push(broker.sync!(name, this.settings.history.size))
      }
    })
    // A broker's sync never rejects; should one, the hub judges with what it holds.
    return waits.length === 0 ? undefined : Promise.all(waits).then(() => {}, () => {})
  }

  /**
   * Where a subscription to `names` starts: after `lastEventId` when the client has one, else at the
   * head (or the oldest event held, with `from: 'oldest'`). A cursor that cannot be served is
   * answered with a reset per topic: told, never passed over in silence.
   */
  start (names: readonly string[], lastEventId: string | undefined, invalidId: boolean, from: 'live' | 'oldest', maxReplay: number): Start {
    const logs = names.map((name) => this.topic(name))
    const hash = topicsHash(names)
    const resets: Array<ResetReason | undefined> = names.map(() => undefined)
    const cursors = lastEventId === undefined ? undefined : parseId(lastEventId, hash, names.length)
    let positions: Position[]
    if (cursors !== undefined) {
      // A reset frame moves its topic to the head, from the client's cursor.
      positions = cursors
      cursors.forEach((cursor, i) => { resets[i] = this.check(logs[i]!, cursor, maxReplay) })
    } else {
      positions = logs.map((log) => from === 'oldest' && log.size > 0 ? { t: log.first()!.t, o: log.firstOffset - 1 } : log.head)
      // An id this subscription never gave, or one the plugin refused (too long, say).
      if (lastEventId !== undefined || invalidId) resets.fill('unknown')
    }
    // The head of an ended topic is its marker, which carries no event: a client one before it has
    // everything. (Clients that ignore an id-only frame, eventsource@4 and fetch-event-source among
    // them, never take the marker's own id and would be sent it again after every reconnect.)
    const over = logs.every((log, i) => log.ended && resets[i] === undefined && positions[i]!.o >= log.head.o - 1)
    return { positions, resets, over, unknown: cursors === undefined ? lastEventId ?? '' : undefined }
  }

  /** Why a cursor into `log` cannot be served, or undefined when it can. */
  private check (log: TopicLog, cursor: Position, maxReplay: number): ResetReason | undefined {
    const head = log.head
    if (cursor.o > head.o) return 'lost'
    if (cursor.o === head.o) return head.o > 0 && cursor.t !== head.t ? 'lost' : undefined
    if (cursor.o < log.firstOffset - 1) {
      if (!this.pages) return 'trimmed'
      // Older than the cache: paged from the broker, which judges the cursor against what it holds.
      // A cursor later than the oldest event held, at a lower offset, is of another history.
      if (log.size > 0 && cursor.t > log.first()!.t) return 'lost'
      return head.o - cursor.o > maxReplay ? 'too-far' : undefined
    }
    const at = log.at(cursor.o)
    if (at !== undefined ? at.t !== cursor.t : log.first()!.t < cursor.t) return 'lost'
    if (head.o - cursor.o > maxReplay) return 'too-far'
    return undefined
  }

  subscribe (stream: SseStream, names: readonly string[], start: Start, subscription: Subscription): Subscriber {
    const logs = names.map((name) => this.topic(name))
    for (const log of logs) if (log.subscribers.size === 0) this.broker.watch(log.name, log.head)
    const subscriber = new Subscriber(this, stream, logs, start, topicsHash(names), subscription)
    this.schedule(subscriber)
    return subscriber
  }

  /** Queues a subscriber for the next flush pass. */
  schedule (subscriber: Subscriber): void {
    if (subscriber.queued) return
    subscriber.queued = true
    this.dirty.push(subscriber)
    if (!this.flushing) {
      this.flushing = true
      setImmediate(this.flushSlice)
    }
  }

  // A pass over the queued subscribers, SLICE at a time, one macrotask each.
  private readonly flushSlice = (): void => {
    const list = this.dirty
    const end = Math.min(list.length, this.next + SLICE)
    let i = this.next
    for (; i < end; i++) {
      const subscriber = list[i]!
      subscriber.queued = false
      subscriber.flush()
    }
    if (i < list.length) {
      this.next = i
      setImmediate(this.flushSlice)
    } else {
      this.dirty = []
      this.next = 0
      this.flushing = false
    }
  }

  /**
   * The events of `log` after `after`, older than its cache, read from the broker: one read per
   * topic at a time, serving every waiter whose cursor it covers (a resume storm costs one read).
   * Resolves with a page that starts at or before `after.o + 1`, or with the reason the cursor
   * cannot be served. A read that fails is retried while a waiter is `live`; once the hub has
   * closed, waiters are dropped unsettled (their streams have ended).
   */
  page (log: TopicLog, after: Position, live: () => boolean): Promise<PageResult> {
    return new Promise((resolve) => {
      let pager = this.pagers.get(log.name)
      if (pager === undefined) this.pagers.set(log.name, pager = { waiters: [], pages: new Map(), running: false })
      const waiter = { after, live, resolve }
      if (this.kept(pager, waiter)) return
      pager.waiters.push(waiter)
      if (!pager.running) {
        pager.running = true
        // A turn later: the requests of a reconnect storm are read together.
        setImmediate(() => { void this.paging(log, pager) })
      }
    })
  }

  private async paging (log: TopicLog, pager: Pager): Promise<void> {
    for (let attempt = 0; pager.waiters.length > 0;) {
      // Those that came while the last page was read may find their place in it.
      const waiters = pager.waiters.filter((w) => w.live() && !this.kept(pager, w))
      pager.waiters = []
      if (this.closed || waiters.length === 0) break
      let min = waiters[0]!.after
      for (const w of waiters) if (w.after.o < min.o) min = w.after
      // Pages end at multiples of PAGE (or at the cache): clients that started at different
      // cursors ask for the same pages after their first.
      const end = Math.min((Math.floor(min.o / PAGE) + 1) * PAGE, log.firstOffset - 1)
      let stored: readonly Stored[]
      try {
        // From the cursor's own event (when it has one), to check it is of the history held.
        stored = await this.broker.range(log.name, min.o === 0 ? ORIGIN : { t: min.t, o: min.o - 1 }, Math.max(2, end - min.o + 1))
        attempt = 0
      } catch (error) {
        if (attempt++ === 0) this.log.warn({ err: error, topic: log.name }, 'fastify-sse-stream: older history could not be read; retrying')
        pager.waiters.push(...waiters)
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, 1000)))
        continue
      }
      // Contiguous offsets only: a read never spans two histories.
      const page: Entry[] = []
      let total = 0
      for (const s of stored) {
        if (page.length > 0 && s.o !== page[page.length - 1]!.o + 1) break
        const entry = makeEntry(s, total)
        total = entry.total
        page.push(entry)
      }
      const block = Math.floor(min.o / PAGE)
      pager.pages.delete(block)
      pager.pages.set(block, { from: min.o, entries: page })
      if (pager.pages.size > PAGES_KEPT) pager.pages.delete(pager.pages.keys().next().value!)
      for (const waiter of waiters) {
        if (this.serve(page, waiter)) continue
        // The read started at this cursor and found nothing after it, though the cache holds
        // later events: the broker lost them.
        if (waiter.after.o === min.o) waiter.resolve('lost')
        // A cursor past this page waits for the next read (which starts at it).
        else pager.waiters.push(waiter)
      }
    }
    pager.running = false
    if (log.subscribers.size === 0) this.pagers.delete(log.name)
  }

  /**
   * Serves a waiter from a kept page that covers its cursor. (A cursor before a page's start is
   * not judged by it: that page was read after another cursor.)
   */
  private kept (pager: Pager, waiter: PageWaiter): boolean {
    const page = pager.pages.get(Math.floor(waiter.after.o / PAGE))
    return page !== undefined && waiter.after.o >= page.from && this.serve(page.entries, waiter)
  }

  /** Serves a waiter from a page that covers its cursor; false when the cursor is past the page. */
  private serve (page: readonly Entry[], waiter: PageWaiter): boolean {
    const { after } = waiter
    const first = page[0]
    // Nothing after the cursor's offset is held any more (or nothing at all).
    if (first === undefined || after.o < first.o - 1) {
      waiter.resolve('trimmed')
      return true
    }
    const k = after.o - first.o
    if (k >= page.length - 1) return false
    if (k >= 0) waiter.resolve(page[k]!.t === after.t ? page : 'lost')
    // The cursor's own event is gone but the next one is there: of this history unless it is later.
    else waiter.resolve(after.o === 0 || first.t >= after.t ? page : 'lost')
    return true
  }

  release (log: TopicLog): void {
    if (log.subscribers.size === 0) {
      const pager = this.pagers.get(log.name)
      if (pager !== undefined && !pager.running) this.pagers.delete(log.name)
      this.broker.unwatch(log.name)
      this.free(log)
    }
  }

  /** The app is closing: producers stop, publishing is refused, the broker closes. */
  async close (): Promise<void> {
    this.closed = true
    clearInterval(this.sweeper)
    // Piped producers are told to stop; the close does not wait on one that ignores its signal.
    this.controller.abort()
    await this.broker.close()
  }
}

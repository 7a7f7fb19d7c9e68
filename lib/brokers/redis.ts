import { randomBytes } from 'node:crypto'
import type { EventEmitter } from 'node:events'
import type { EventObject } from '../encoder.js'
import { FST_ERR_SSE_INVALID_OPTION, describe } from '../errors.js'
import type { BrokerHost, BrokerRecord, HubBroker } from '../hub/broker.js'
import type { Stored } from '../hub/log.js'
import { ORIGIN, type Position, formatPosition } from '../hub/position.js'
import { CLAIM, PROBE, PUBLISH, type Script } from './redis-scripts.js'

/**
 * The part of an ioredis (or iovalkey) client the broker uses. Typed here, not imported: the
 * package never loads a Redis client of its own.
 */
export interface RedisClient extends EventEmitter {
  readonly status?: string
  readonly isCluster?: boolean
  duplicate (override?: Record<string, unknown>): RedisClient
  evalsha (sha: string, keys: number, ...args: Array<string | Buffer | number>): Promise<unknown>
  eval (script: string, keys: number, ...args: Array<string | Buffer | number>): Promise<unknown>
  xrevrangeBuffer (key: string, end: string, start: string, count: 'COUNT', n: number): Promise<unknown>
  xreadBuffer (...args: Array<string | number>): Promise<unknown>
  xrangeBuffer (key: string, start: string, end: string, count: 'COUNT', n: number): Promise<unknown>
  xadd (...args: string[]): Promise<unknown>
  pexpire (key: string, ms: number): Promise<unknown>
  del (key: string): Promise<unknown>
  disconnect (reconnect?: boolean): void
}

export interface RedisBrokerOptions {
  /** An ioredis (or iovalkey) client. The broker uses it, opens its own duplicate for reading, and never closes it. */
  client: RedisClient
  /** Prefix of every key. Default `sse:`. */
  prefix?: string
  /** How each topic's keys are hash-tagged: `'topic'` (default: a slot per topic) or `'prefix'` (one slot for all; for Redis Cluster). */
  tag?: 'topic' | 'prefix'
  /** Events kept per topic (`XADD MAXLEN ~`). Default 1000: at least the hub's `history.size`. */
  maxLen?: number
  /** ms an event is kept (`XTRIM MINID ~`); 0 keeps them by count alone. Default 600000. */
  maxAge?: number
  /** ms a topic's stream lives after its last publish. Default 86400000 (a day). */
  ttl?: number
  /** ms a topic's offsets live after its last publish: past it, a topic starts again at 1 (old cursors are told `lost`). Default 30 days. */
  metaTtl?: number
  /** ms an idempotency key is remembered. Default 300000. */
  idempotencyTtl?: number
  /** Store each event's JSON next to its frame, for filters and conflation keys on every process. Default true. */
  storeEvent?: boolean
  /** ms one blocking read waits (`XREAD BLOCK`). Default 5000. */
  block?: number
  /** ms past `block` after which a read that has not answered counts as wedged: its connection is replaced. Default 2000. */
  grace?: number
  /** ms a publish (or any other command of the broker) may take: past it, it rejects. Default 5000. */
  timeout?: number
}

/** What the broker has done, for tests and metrics. */
export interface RedisBrokerStats {
  publishes: number
  syncs: number
  /** XRANGE pages read for cursors older than the hub's cache. */
  ranges: number
  reads: number
  wakes: number
  connects: number
  wedges: number
  losses: number
}

interface Watched {
  readonly topic: string
  readonly stream: string
  readonly meta: string
  /** The id after which the reader reads. */
  last: string
}

const COUNT = 512
const PROBE_BATCH = 256

function invalid (name: string, expected: string, value: unknown): never {
  throw new FST_ERR_SSE_INVALID_OPTION(name, expected, describe(value))
}

function ms (name: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) invalid(name, `an integer of at least ${min}`, value)
  return value
}

function parseEntryId (id: string): Position {
  const dash = id.indexOf('-')
  return { t: Number(id.slice(0, dash)), o: Number(id.slice(dash + 1)) }
}

/** One stream entry ([id, [field, value, …]]) as the hub stores it. */
function toStored (raw: unknown): Stored {
  const [id, fields] = raw as [Buffer, Buffer[]]
  const position = parseEntryId(id.toString('latin1'))
  let body: Buffer = Buffer.alloc(0)
  let event: EventObject | undefined
  let end = false
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!.toString('latin1')
    if (name === 'd') body = fields[i + 1]!
    else if (name === 'e') event = JSON.parse(fields[i + 1]!.toString()) as EventObject
    else if (name === 'x') end = true
  }
  if (end) return { t: position.t, o: position.o, body, end }
  return { t: position.t, o: position.o, body, event: event ?? parseBody(body) }
}

/** An event stored without its JSON (`storeEvent: false`), read back from its fields: `data` is text. */
function parseBody (body: Buffer): EventObject {
  const event: EventObject = {}
  for (const line of body.toString().split('\n')) {
    if (line === '') continue
    const colon = line.indexOf(':')
    const field = line.slice(0, colon)
    // The encoder writes every line `<field>: <value>`, comments `: <text>`.
    const value = line.slice(colon + 2)
    if (field === 'data') event.data = event.data === undefined ? value : event.data as string + '\n' + value
    else if (field === 'event') event.event = value
    else if (field === '') event.comment = event.comment === undefined ? value : event.comment + '\n' + value
  }
  return event
}

/**
 * An XREAD reply as [key, entries] pairs (null when the read timed out). ioredis 6 gives the
 * nested pairs of RESP2 under RESP3 as well (its map reply turned into pairs), and iovalkey speaks
 * RESP2.
 */
function streamsOf (reply: unknown): Array<[string, unknown[]]> {
  if (reply === null) return []
  return (reply as Array<[Buffer, unknown[]]>).map(([key, entries]) => [key.toString(), entries])
}

function after (a: Position, b: Position): boolean {
  return a.t > b.t || (a.t === b.t && a.o > b.o)
}

function delay (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}

class TimeoutError extends Error {
  readonly code = 'ETIMEDOUT'
}

/**
 * The PUBLISH script met a command of this process older than one it applied to the topic, and did
 * not find its event among the topic's newest: a re-sent publish whose event was trimmed since, or
 * (Redis Cluster moving a slot) a publish that overtook an older one.
 */
class ResentError extends Error {
  readonly code = 'ERESENT'
}

/** The script's answer to a re-sent publish it could not match, as its own error. */
function resent (error: unknown): never {
  if (String((error as Error)?.message).startsWith('ERR fastify-sse-stream RESENT')) {
    throw new ResentError('a publish re-sent after a reconnect was applied already, and its event is no longer among the topic\'s newest: its id is unknown', { cause: error })
  }
  throw error
}

/**
 * A broker on Redis Streams, shared by every process of a deployment. One stream per topic; a
 * publish is one script that assigns the topic's next position and appends the encoded frame; each
 * process runs one blocking read over the topics it has subscribers for.
 */
export class RedisBroker implements HubBroker {
  readonly stats: RedisBrokerStats = { publishes: 0, syncs: 0, ranges: 0, reads: 0, wakes: 0, connects: 0, wedges: 0, losses: 0 }
  private host: BrokerHost | null = null
  private readonly client: RedisClient
  private readonly prefix: string
  private readonly byPrefix: boolean
  private readonly maxLen: number
  private readonly maxAge: number
  private readonly ttl: number
  private readonly metaTtl: number
  private readonly idempotencyTtl: number
  private readonly storeEvent: boolean
  private readonly block: number
  private readonly grace: number
  private readonly timeout: number
  private readonly wakeKey: string
  /** This broker's id in the claims of the producers it runs. */
  private readonly id = randomBytes(12).toString('base64url')
  private readonly watched = new Map<string, Watched>()
  private readonly byKey = new Map<string, Watched>()
  private readonly syncs = new Map<string, Promise<void>>()
  // Commands waiting for the user's client to be ready (see whenReady), or null when none is.
  private waiting: Set<() => void> | null = null
  private reader: RedisClient | null = null
  private running: Promise<void> | null = null
  private wakeId = '0-0'
  // The reader is blocked on a read whose topics are no longer those watched: it needs a wake.
  private reading = false
  private changed = false
  private wakeQueued = false
  private idle: (() => void) | null = null
  // The reader's connection was lost: before reading on, check each topic for lost history.
  private stale = false
  private closed = false
  // Each publish's token, for the script to know a command re-sent after a reconnect: this
  // broker's random node id and its publish count.
  private readonly node = randomBytes(6).toString('base64url')
  private seq = 0
  // Publishes held back while the EVAL fallbacks of commands that met NOSCRIPT go out (see publish()).
  private held: Array<() => void> | null = null
  // Settles once the reply to the newest PUBLISH command sent has been handled.
  private lastSent: Promise<void> = Promise.resolve()

  constructor (options: RedisBrokerOptions) {
    if (typeof options !== 'object' || options === null) invalid('redisBroker options', 'an object', options)
    const client = options.client
    if (typeof client !== 'object' || client === null || typeof client.duplicate !== 'function' || typeof client.evalsha !== 'function') {
      invalid('client', 'an ioredis or iovalkey client', client)
    }
    const prefix = options.prefix ?? 'sse:'
    if (typeof prefix !== 'string' || prefix.length > 128 || !/^[\x21-\x7a|~]*$/.test(prefix)) invalid('prefix', 'printable ASCII without braces or spaces, up to 128 characters', prefix)
    const tag = options.tag ?? 'topic'
    if (tag !== 'topic' && tag !== 'prefix') invalid('tag', "'topic' or 'prefix'", tag)
    // One read covers every watched topic: Redis Cluster takes that only for keys of one slot.
    if (client.isCluster === true && tag !== 'prefix') invalid('tag', "'prefix' with a Redis Cluster client", tag)
    if (options.storeEvent !== undefined && typeof options.storeEvent !== 'boolean') invalid('storeEvent', 'a boolean', options.storeEvent)
    this.client = client
    this.prefix = prefix
    this.byPrefix = tag === 'prefix'
    this.maxLen = ms('maxLen', options.maxLen, 1000, 1)
    this.maxAge = ms('maxAge', options.maxAge, 600_000, 0)
    this.ttl = ms('ttl', options.ttl, 86_400_000, 1000)
    this.metaTtl = ms('metaTtl', options.metaTtl, 30 * 86_400_000, 1000)
    this.idempotencyTtl = ms('idempotencyTtl', options.idempotencyTtl, 300_000, 1000)
    this.storeEvent = options.storeEvent ?? true
    this.block = ms('block', options.block, 5000, 10)
    this.grace = ms('grace', options.grace, 2000, 10)
    this.timeout = ms('timeout', options.timeout, 5000, 10)
    this.wakeKey = (this.byPrefix ? '{' + prefix + '}' : prefix) + ':w:' + randomBytes(9).toString('base64url')
  }

  /**
   * A topic's keys start `<prefix>{<topic>}` (or `{<prefix>}<topic>}`, one slot for all), then
   * `:s` (its stream), `:m` (its head), `:p` (its producer's claim) or `:r:<key>` (an idempotency key). Neither a prefix nor an
   * idempotency key holds a brace, so no two topics' keys meet.
   */
  private base (topic: string): string {
    return this.byPrefix ? '{' + this.prefix + '}' + topic + '}' : this.prefix + '{' + topic + '}'
  }

  attach (host: BrokerHost): void {
    this.host = host
  }

  private warn (message: string, extra: Record<string, unknown>): void {
    this.host!.log.warn(extra, 'fastify-sse-stream/redis: ' + message)
  }

  /**
   * Runs a command on the user's client within `timeout`: sent only once the client is ready (a
   * client still connecting is waited for, one that stays down is never sent the command), and
   * rejected past the bound (the command may then still run: a publish is at least once on retry).
   */
  private command<T> (run: () => Promise<T>): Promise<T> {
    const client = this.client
    return new Promise<T>((resolve, reject) => {
      let sent = false
      const onReady = (): void => {
        sent = true
        run().then((value) => {
          clearTimeout(timer)
          resolve(value)
        }, (error: unknown) => {
          clearTimeout(timer)
          reject(error)
        })
      }
      const timer = setTimeout(() => {
        this.waiting?.delete(onReady)
        reject(new TimeoutError(sent ? `Redis did not answer within ${this.timeout} ms` : `Redis was not reachable within ${this.timeout} ms`))
      }, this.timeout)
      const status = client.status
      if (status === undefined || status === 'ready' || status === 'wait') onReady()
      else this.whenReady(onReady)
    })
  }

  /**
   * Runs `fn` once the user's client is ready. Every command waiting shares one 'ready' listener:
   * a burst of publishes during an outage adds one listener to the user's client, not one each
   * (past ten, Node would warn of a leak).
   */
  private whenReady (fn: () => void): void {
    let waiting = this.waiting
    if (waiting === null) {
      const set = new Set<() => void>()
      waiting = set
      this.waiting = set
      this.client.once('ready', () => {
        this.waiting = null
        for (const run of set) run()
      })
    }
    waiting.add(fn)
  }

  private script (target: RedisClient, script: Script, keys: string[], args: Array<string | Buffer | number>): Promise<unknown> {
    return target.evalsha(script.sha, keys.length, ...keys, ...args).catch((error: unknown) => {
      // Only NOSCRIPT is answered by sending the script itself; any other error (a command of the
      // script failing: WRONGTYPE, say) is the caller's, and the script is not run twice.
      if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error
      return target.eval(script.source, keys.length, ...keys, ...args)
    })
  }

  append (topic: string, record: BrokerRecord): Promise<Position> {
    if (this.closed) return Promise.reject(new Error('the Redis broker is closed'))
    const base = this.base(topic)
    const keys = [base + ':s', base + ':m']
    if (record.key !== undefined) keys.push(base + ':r:' + record.key)
    const event = this.storeEvent && record.event !== undefined ? JSON.stringify(record.event) : ''
    const args = [record.body, event, record.end === true ? '1' : '0', this.maxLen, this.maxAge, this.ttl, this.metaTtl, this.idempotencyTtl, this.node]
    this.stats.publishes++
    const started = Date.now()
    return this.command(() => this.publish(keys, args, started)).then((id) => parseEntryId(String(id)))
  }

  /**
   * Sends one PUBLISH: EVALSHA, then EVAL with the same arguments if Redis does not know the script.
   * The script takes a sequence number of this process lower than one it applied to the topic for a
   * re-send, so publishes must reach Redis in the order of their numbers. A fallback breaks that:
   * a publish sent between an EVAL and a later NOSCRIPT reply would run before that reply's EVAL.
   * So once a NOSCRIPT is met, new publishes are held until every command sent before has been
   * answered (and its EVAL sent): replies come in order, so that is the newest one's. One held
   * past its timeout has been rejected already, and is not sent at all.
   */
  private publish (keys: string[], args: Array<string | Buffer | number>, started: number): Promise<unknown> {
    if (this.held !== null) {
      const held = this.held
      return new Promise((resolve, reject) => held.push(() => {
        if (Date.now() - started < this.timeout) resolve(this.publish(keys, args, started))
        else reject(new TimeoutError(`Redis did not answer within ${this.timeout} ms`))
      }))
    }
    let handled!: () => void
    this.lastSent = new Promise((resolve) => { handled = resolve })
    // Numbered as it is sent: the order of the numbers is the order on the connection (a publish
    // that waited for the client to be ready is sent, and numbered, after those that did not).
    const seq = ++this.seq
    return this.client.evalsha(PUBLISH.sha, keys.length, ...keys, ...args, seq, '0').then((id) => {
      handled()
      return id
    }, (error: unknown) => {
      const message = String((error as Error)?.message)
      if (message.startsWith('NOSCRIPT')) {
        if (this.held === null) {
          const held: Array<() => void> = this.held = []
          void this.lastSent.then(() => {
            this.held = null
            for (const send of held) send()
          })
        }
        // The same number: a re-sent command whose first run came before a restart is still
        // recognised. Marked as a fallback: if its number is found neither as the last nor in the
        // stream, it never ran, and is new (see the PUBLISH script).
        const sent = this.client.eval(PUBLISH.source, keys.length, ...keys, ...args, seq, '1')
        handled()
        return sent.catch(resent)
      }
      handled()
      return resent(error)
    })
  }

  /**
   * Takes the claim on `topic`'s producer for this process, unless another process holds it or the
   * topic's stream holds events: one script (`SET <prefix>{topic}:p <id> NX PX <ttl>`, after an
   * `EXISTS` of the stream). The claim lives for the stream's `ttl`, and is never renewed or
   * released: a producer that publishes keeps the stream alive (`ttl` after its last event, the end
   * marker included), and the stream's events refuse every later claim while it lives.
   */
  claim (topic: string): Promise<boolean> {
    if (this.closed) return Promise.reject(new Error('the Redis broker is closed'))
    const base = this.base(topic)
    return this.command(() => this.script(this.client, CLAIM, [base + ':s', base + ':p'], [this.id, this.ttl])).then((won) => won === 1)
  }

  /**
   * Delivers the newest events (at most `count`) after the hub's head of `topic`: one XREVRANGE,
   * shared by every subscription that waits for it. Retried until it succeeds or the broker closes.
   */
  sync (topic: string, count: number): Promise<void> {
    let running = this.syncs.get(topic)
    if (running === undefined) {
      running = this.syncing(topic, count).finally(() => this.syncs.delete(topic))
      this.syncs.set(topic, running)
    }
    return running
  }

  private async syncing (topic: string, count: number): Promise<void> {
    const key = this.base(topic) + ':s'
    for (let attempt = 0; !this.closed; attempt++) {
      const head = this.host!.head(topic)
      try {
        this.stats.syncs++
        const raw = await this.command(() => this.client.xrevrangeBuffer(key, '+', '(' + formatPosition(head), 'COUNT', count))
        this.emit(topic, (raw as unknown[]).map(toStored).reverse())
        return
      } catch (error) {
        if (attempt === 0) this.warn('a topic could not be read; retrying', { topic, err: error })
        await delay(Math.min(100 * 2 ** attempt, 1000))
      }
    }
  }

  /** Hands the hub what it does not hold yet: anything at or before its head was delivered already. */
  private emit (topic: string, entries: Stored[]): void {
    const head = this.host!.head(topic)
    let i = 0
    // Entries held already: a sync (for a client ahead of this process) delivered them before the
    // reader read them.
    while (i < entries.length && !after(entries[i]!, head)) i++
    if (i < entries.length) this.host!.deliver(topic, i === 0 ? entries : entries.slice(i))
  }

  watch (topic: string, from: Position): void {
    // Once per topic (the hub's calls never repeat one; a repeat changes nothing). After close() a
    // watch only fills a map that no reader reads any more.
    if (this.watched.has(topic)) return
    const base = this.base(topic)
    const watched: Watched = { topic, stream: base + ':s', meta: base + ':m', last: formatPosition(from) }
    this.watched.set(topic, watched)
    this.byKey.set(watched.stream, watched)
    this.setChanged()
    if (this.running === null) this.running = this.loop()
  }

  unwatch (topic: string): void {
    const watched = this.watched.get(topic)
    // Not watched: nothing to do (the hub never asks so; a repeat changes nothing).
    if (watched === undefined) return
    this.watched.delete(topic)
    this.byKey.delete(watched.stream)
    this.setChanged()
  }

  /** The set of watched topics changed: a parked reader starts, a blocked one is woken (once per turn). */
  private setChanged (): void {
    this.changed = true
    if (this.idle !== null) {
      const idle = this.idle
      this.idle = null
      idle()
    }
    if (this.reading && !this.wakeQueued) {
      this.wakeQueued = true
      setImmediate(() => {
        this.wakeQueued = false
        if (!this.reading || !this.changed || this.closed) return
        this.stats.wakes++
        // The reader reads this stream too: an entry there ends its wait.
        this.command(() => this.client.xadd(this.wakeKey, 'MAXLEN', '1', '*', 'w', '1'))
          .then(() => this.client.pexpire(this.wakeKey, 3_600_000), () => {})
          .catch(() => {})
      })
    }
  }

  range (topic: string, from: Position, limit: number): Promise<readonly Stored[]> {
    const key = this.base(topic) + ':s'
    this.stats.ranges++
    return this.command(() => this.client.xrangeBuffer(key, '(' + formatPosition(from), '+', 'COUNT', limit))
      .then((raw) => (raw as unknown[]).map(toStored))
  }

  /** A fresh reader connection, ready; null once closed. Its own reconnects are off: the loop decides. */
  private async connect (): Promise<RedisClient | null> {
    for (let attempt = 0; !this.closed; attempt++) {
      const reader = this.client.duplicate({
        autoResendUnfulfilledCommands: false,
        maxRetriesPerRequest: null,
        retryStrategy: null,
        commandTimeout: undefined,
        blockingTimeout: undefined,
        lazyConnect: false
      })
      reader.on('error', () => {})
      this.reader = reader
      const ready = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), this.block + this.grace)
        reader.once('ready', () => { clearTimeout(timer); resolve(true) })
        reader.once('end', () => { clearTimeout(timer); resolve(false) })
      })
      if (ready && !this.closed) {
        this.stats.connects++
        return reader
      }
      reader.disconnect()
      if (!this.closed) await delay(Math.min(100 * 2 ** attempt, 2000))
    }
    return null
  }

  /** The one reading loop of this process. */
  private async loop (): Promise<void> {
    let reader: RedisClient | null = null
    while (!this.closed) {
      if (this.watched.size === 0) {
        await new Promise<void>((resolve) => { this.idle = resolve })
        continue
      }
      if (reader === null || reader.status !== 'ready') {
        if (reader !== null) {
          reader.disconnect()
          this.stale = true
        }
        reader = await this.connect()
        if (reader === null) break
      }
      try {
        if (this.stale) {
          await this.probe(reader)
          this.stale = false
        }
        await this.read(reader)
      } catch (error) {
        if (this.closed) break
        this.warn('the reader failed; reconnecting', { err: error })
        reader.disconnect()
        this.stale = true
        reader = null
      }
    }
  }

  /** One blocking read over every watched topic, and the wake stream. */
  private async read (reader: RedisClient): Promise<void> {
    const watched = Array.from(this.watched.values())
    const args: Array<string | number> = ['COUNT', COUNT, 'BLOCK', this.block, 'STREAMS', this.wakeKey]
    for (const w of watched) args.push(w.stream)
    args.push(this.wakeId)
    for (const w of watched) args.push(w.last)
    this.changed = false
    this.reading = true
    // No answer within the block time and a grace period: the connection is wedged (a stopped
    // server, a half-open socket). It is dropped, which fails the read, and a new one is made.
    const wedge = setTimeout(() => {
      this.stats.wedges++
      this.warn('a blocking read did not answer in time; replacing its connection', { ms: this.block + this.grace })
      reader.disconnect()
    }, this.block + this.grace)
    let reply: unknown
    try {
      reply = await reader.xreadBuffer(...args)
    } finally {
      clearTimeout(wedge)
      this.reading = false
    }
    this.stats.reads++
    for (const [key, entries] of streamsOf(reply)) {
      if (key === this.wakeKey) {
        this.wakeId = (entries[entries.length - 1] as [Buffer])[0].toString()
        continue
      }
      const w = this.byKey.get(key)
      const stored = entries.map(toStored)
      // A topic unwatched while the read was out: its events are not needed here any more.
      if (w === undefined || this.closed) continue
      w.last = formatPosition(stored[stored.length - 1]!)
      this.emit(w.topic, stored)
    }
  }

  /**
   * After a lost connection: is each topic's history still the one read? A head behind the last
   * event read, or that event gone, means Redis lost data (a restart without persistence, a
   * failover that dropped the tail): the hub is told, and the topic goes on from the new head.
   */
  private async probe (reader: RedisClient): Promise<void> {
    const watched = Array.from(this.watched.values())
    for (let i = 0; i < watched.length; i += PROBE_BATCH) {
      const batch = watched.slice(i, i + PROBE_BATCH)
      const keys: string[] = []
      for (const w of batch) keys.push(w.stream, w.meta)
      const rows = await this.script(reader, PROBE, keys, batch.map((w) => w.last)) as Array<[string, string, number]>
      batch.forEach((w, j) => {
        const [t, o, here] = rows[j]!
        const head = { t: Number(t), o: Number(o) }
        const last = parseEntryId(w.last)
        // The same history: nothing read yet, the last event read still there, or the head still at
        // it (its stream expired, its head kept).
        if (last.o === 0 || here === 1 || (head.o === last.o && head.t === last.t)) return
        this.stats.losses++
        this.warn('Redis lost part of a topic\'s history; its subscribers are told', { topic: w.topic, last: w.last, head: formatPosition(head) })
        // A head behind the last event read: another history, read from its start (what was
        // published in it since is not skipped). The last event gone from a longer history: the
        // reader fell behind its trimming, and goes on from the head.
        const fresh = head.o < last.o || head.o === last.o
        w.last = fresh ? '0-0' : formatPosition(head)
        if (this.watched.get(w.topic) === w) this.host!.lost(w.topic, fresh ? ORIGIN : head)
      })
    }
  }

  async close (): Promise<void> {
    // A second close does nothing.
    if (this.closed) return
    this.closed = true
    this.idle?.()
    this.reader?.disconnect()
    await this.running
    this.watched.clear()
    this.byKey.clear()
    await this.command(() => this.client.del(this.wakeKey)).catch(() => {})
  }
}

/** A broker on Redis Streams: `hub: { broker: redisBroker({ client }) }`. */
export function redisBroker (options: RedisBrokerOptions): RedisBroker {
  return new RedisBroker(options)
}

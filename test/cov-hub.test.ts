// The hub's less travelled paths, over real sockets where a socket is involved: a shared broker's
// sync that outlasts the one-second wait (the stream opens first: an open that throws, a topic
// that turns out over), the total history budget, a pipe's end marker the broker fails to store,
// the rotation of a multi-topic subscription past an ended topic, a reset onto the end of an ended
// topic, ids out of the safe integer range, and the memory broker's range().
import t from 'tap'
import http from 'node:http'
import type { BrokerHost, BrokerRecord, HubBroker, Position } from '../index.js'
import { memoryBroker } from '../index.js'
import { build } from './helpers/stream.js'
import { deferred, listen, within } from './helpers/http.js'
import { probeBroker, resetData, subscribe } from './helpers/hub.js'

/**
 * The memory broker plus a `sync` (a shared broker's) that, while `holding`, settles only when the
 * test releases it; `failEnd` makes the storing of a pipe's end marker fail.
 */
function sharedBroker () {
  const inner = memoryBroker()
  const pending: Array<() => void> = []
  let syncing = deferred()
  const control = {
    holding: false,
    failEnd: false,
    /** Positions of the events stored (end markers left out). */
    stored: [] as Position[],
    /** Resolves once a held sync is waited on. */
    get syncing (): Promise<void> { return syncing.promise },
    release (): void {
      syncing = deferred()
      for (const resolve of pending.splice(0)) resolve()
    }
  }
  const broker: HubBroker = {
    attach: (host: BrokerHost) => inner.attach(host),
    async append (topic: string, record: BrokerRecord): Promise<Position> {
      if (record.end === true && control.failEnd) throw new Error('store unreachable')
      const position = await inner.append(topic, record)
      if (record.end !== true) control.stored.push(position)
      return position
    },
    watch: (topic, after) => inner.watch(topic, after),
    unwatch: (topic) => inner.unwatch(topic),
    range: (topic, after, limit) => inner.range(topic, after, limit),
    close: () => inner.close(),
    sync (_topic: string, count: number): Promise<void> {
      if (!control.holding || count < 1) return Promise.resolve()
      syncing.resolve()
      return new Promise((resolve) => { pending.push(resolve) })
    }
  }
  return { broker, control }
}

/** A plain GET: resolves with the status and the whole body once the response ends. */
function fetchText (url: string, headers: http.OutgoingHttpHeaders = {}): Promise<{ status: number, body: string }> {
  return within(new Promise((resolve, reject) => {
    http.get(url, { headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    }).on('error', reject)
  }), 10_000, 'the response')
}

t.test('a sync past the wait opens the stream; a topic then found over ends it as done, with no event', async (t) => {
  const { broker, control } = sharedBroker()
  const { app } = await build(t, { heartbeat: false, hub: { broker } })
  app.get('/', (_req, reply) => reply.sseSubscribe('story'))
  const url = await listen(app)
  await app.sse.pipe('story', [{ data: 'one' }, { data: 'two' }])
  t.equal(control.stored.length, 2)
  const last = control.stored[1]!
  control.holding = true
  // The client has the whole story; the broker takes longer than the wait to say so.
  const reader = await subscribe(url + '/', { lastEventId: `${last.t}-${last.o}` })
  t.equal(reader.status, 200, 'the head went out while the sync was pending')
  await within(control.syncing, 1000, 'the sync')
  control.release()
  await within(reader.closed, 5000, 'the end of the stream')
  t.same(reader.events, [], 'nothing to send: the client had it all')
})

t.test('a sync past the wait, and the stream cannot open: the handler fails once the sync settles', async (t) => {
  const { broker, control } = sharedBroker()
  const { app } = await build(t, { heartbeat: false, hub: { broker } })
  const tried = deferred()
  app.get('/', (_req, reply) => {
    reply.header('x-user', 'Łukasz') // U+0141: res.writeHead() throws ERR_INVALID_CHAR
    const writeHead = reply.raw.writeHead
    reply.raw.writeHead = function (this: http.ServerResponse, ...args: Parameters<typeof writeHead>) {
      try {
        return writeHead.apply(this, args)
      } finally {
        tried.resolve()
      }
    } as typeof writeHead
    return reply.sseSubscribe('slow')
  })
  const url = await listen(app)
  control.holding = true
  const response = fetchText(url + '/', { accept: 'text/event-stream' })
  await within(control.syncing, 5000, 'the sync')
  // The timer tried to open the stream (and failed) before the broker answered.
  await within(tried.promise, 5000, 'the attempt to open')
  control.release()
  const { status, body } = await response
  t.equal(status, 500)
  t.match(body, /ERR_INVALID_CHAR|Invalid character/)
})

t.test('the total history budget evicts from the least recently published topics', async (t) => {
  const broker = probeBroker()
  const { app } = await build(t, { heartbeat: false, hub: { broker, history: { totalBytes: 500 } } })
  app.get('/:topic', (req, reply) => reply.sseSubscribe((req.params as { topic: string }).topic, { from: 'oldest' }))
  const url = await listen(app)
  // Frames of about 110 bytes: three of a, then four of b, pass the budget three times.
  const payload = 'x'.repeat(80)
  for (let i = 0; i < 3; i++) await app.sse.publish('a', { data: `a${i} ${payload}` })
  for (let i = 0; i < 4; i++) await app.sse.publish('b', { data: `b${i} ${payload}` })
  t.equal(broker.hub.size, 1, "a's history went to make room for b's, and its topic was freed")
  const b = await subscribe(url + '/b')
  await b.waitFor(() => b.events.length >= 4)
  t.same(b.events.map((f) => f.data!.slice(0, 2)), ['b0', 'b1', 'b2', 'b3'], 'the newest topic kept all it could')
  const a = await subscribe(url + '/a')
  await app.sse.publish('a', { data: 'a3' })
  await a.waitFor(() => a.events.length >= 1)
  t.same(a.events.map((f) => f.data), ['a3'], 'nothing of a was left to replay')
  // A topic whose one event exceeds the budget keeps it: the newest event is always held.
  await app.sse.publish('c', { data: 'c'.repeat(1000) })
  const c = await subscribe(url + '/c')
  await c.waitFor(() => c.events.length >= 1)
  t.equal(c.events[0]!.data!.length, 1000)
  for (const r of [a, b, c]) r.destroy()
})

t.test('a pipe whose end marker the broker fails to store: logged, and the pipe settles', async (t) => {
  const { broker, control } = sharedBroker()
  const { app, logs } = await build(t, { heartbeat: false, hub: { broker } })
  control.failEnd = true
  await app.sse.pipe('p', [{ data: 'x' }])
  const line = logs.find('the end of a piped stream could not be stored')
  t.equal(line.length, 1)
  t.equal(line[0]!.topic, 'p')
  t.equal(control.stored.length, 1, 'the event itself was stored')
})

t.test('a two-topic subscription, one topic ended: the rotation wraps past it and the stream ends with the other', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  app.get('/', (_req, reply) => reply.sseSubscribe(['done', 'live']))
  const url = await listen(app)
  await app.sse.pipe('done', [{ data: 'old' }])
  const next = deferred<boolean>()
  const live = app.sse.pipe('live', async function * () {
    // Runs until the test ends it; its events are the ones published beside it.
    if (await next.promise) yield { data: 'never' }
  })
  const reader = await subscribe(url + '/')
  // Each publish to 'live' is a flush; the second starts at topic 1 and wraps to the ended topic 0.
  for (let i = 1; i <= 3; i++) {
    await app.sse.publish('live', { data: `n${i}` })
    await reader.waitFor(() => reader.events.length >= i)
  }
  t.same(reader.events.map((f) => f.data), ['n1', 'n2', 'n3'])
  next.resolve(false)
  await live
  await within(reader.closed, 5000, 'the end of the stream')
})

t.test('a reset onto the end of an ended topic ends the stream', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  app.get('/', (_req, reply) => reply.sseSubscribe('tale'))
  const url = await listen(app)
  await app.sse.pipe('tale', [{ data: 'once' }])
  const reader = await subscribe(url + '/', { lastEventId: 'not-an-id' })
  await within(reader.closed, 5000, 'the end of the stream')
  const resets = reader.frames.filter((f) => f.event === 'sse-reset')
  t.equal(resets.length, 1)
  t.equal(resetData(resets[0]!).reason, 'unknown')
  t.equal(reader.events.length, 1, 'the reset alone')
})

t.test('one-topic ids beyond the safe integer range are unknown ids', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  app.get('/', (_req, reply) => reply.sseSubscribe('feed'))
  const url = await listen(app)
  const id = await app.sse.publish('feed', { data: 'a' })
  const [time, offset] = id.split('-')
  for (const lastEventId of [`9999999999999999-${offset!}`, `${time!}-9999999999999999`]) {
    const reader = await subscribe(url + '/', { lastEventId })
    await reader.waitFor((f) => f.some((x) => x.event === 'sse-reset'))
    const reset = reader.frames.find((x) => x.event === 'sse-reset')!
    t.equal(resetData(reset).reason, 'unknown', lastEventId)
    reader.destroy()
  }
})

t.test("the memory broker's range() holds nothing older than the hub's cache", async (t) => {
  const broker = memoryBroker()
  t.same(await broker.range('any', { t: 0, o: 0 }, 10), [])
})

/**
 * A broker that keeps every event (as a broker shared by several processes does, beyond the hub's
 * small cache) and pages them back: `trimmed` events are gone from it, `gate` holds its reads.
 */
function archiveBroker () {
  const inner = memoryBroker()
  const archive: Array<Position & { body: Buffer, event?: unknown, end?: boolean }> = []
  const control = {
    trimmed: 0,
    reads: 0,
    gate: null as Promise<void> | null,
    read: deferred(),
    archive
  }
  const broker: HubBroker = {
    attach: (host: BrokerHost) => inner.attach(host),
    async append (topic: string, record: BrokerRecord): Promise<Position> {
      const position = await inner.append(topic, record)
      archive.push({ ...position, body: record.body, event: record.event, end: record.end })
      return position
    },
    watch: (topic, after) => inner.watch(topic, after),
    unwatch: (topic) => inner.unwatch(topic),
    async range (_topic, after, limit) {
      control.reads++
      control.read.resolve()
      if (control.gate !== null) await control.gate
      return archive.filter((s) => s.o > after.o && s.o > control.trimmed).slice(0, limit) as never
    },
    close: () => inner.close(),
    sync: () => Promise.resolve()
  }
  return { broker, control }
}

t.test("a cursor whose own event the broker no longer holds, the next one held: served from the next", async (t) => {
  const { broker, control } = archiveBroker()
  const { app } = await build(t, { heartbeat: false, hub: { broker, history: { size: 2 } } })
  app.get('/', (_req, reply) => reply.sseSubscribe('arc'))
  const url = await listen(app)
  for (let i = 1; i <= 10; i++) await app.sse.publish('arc', { data: String(i) })
  control.trimmed = 2
  const cursor = control.archive[1]!
  const reader = await subscribe(url + '/', { lastEventId: `${cursor.t}-${cursor.o}` })
  await reader.waitFor(() => reader.events.length >= 8)
  t.same(reader.events.map((f) => f.data), ['3', '4', '5', '6', '7', '8', '9', '10'], 'from the event after the cursor, no reset')
  t.equal(control.reads, 1)
  reader.destroy()
})

t.test('cursors read together: one past the page read for the other waits for a read of its own', async (t) => {
  const { broker, control } = archiveBroker()
  const { app } = await build(t, { heartbeat: false, hub: { broker, history: { size: 2 } } })
  app.get('/', (_req, reply) => reply.sseSubscribe('arc'))
  const url = await listen(app)
  const N = 700
  for (let i = 1; i <= N; i++) await app.sse.publish('arc', { data: String(i) })
  const idOf = (o: number): string => `${control.archive[o - 1]!.t}-${o}`
  const open = deferred()
  control.gate = open.promise
  // A's read is held; B (past the first page of 512) and C (before A's cursor) come while it is:
  // the next read starts at C's cursor, and B, past the page it brings, waits for one of its own.
  const a = await subscribe(url + '/', { lastEventId: idOf(5) })
  await within(control.read.promise, 5000, 'the first read')
  // A response head reaches its client (in this process) after the flush that queued its cursor.
  const b = await subscribe(url + '/', { lastEventId: idOf(600) })
  const c = await subscribe(url + '/', { lastEventId: idOf(1) })
  control.gate = null
  open.resolve()
  const expect = (from: number): string[] => Array.from({ length: N - from }, (_, i) => String(from + 1 + i))
  for (const [reader, from] of [[a, 5], [b, 600], [c, 1]] as const) {
    await reader.waitFor(() => reader.events.length >= N - from, 10_000)
    t.same(reader.events.map((f) => f.data), expect(from), `every event after ${from}, in order, no reset`)
    reader.destroy()
  }
  t.ok(control.reads >= 3, 'A, C (with B) and B were read')
})

// The hub's paging of history older than its cache, made deterministic: a shared broker held in
// memory, which keeps every event (as Redis does) and whose reads the test holds, fails or trims.
// Redis leaves these paths to timing; here each is reached on purpose: a cursor at the origin,
// more pages than the hub keeps, a cursor whose own event was trimmed (served, or lost when the next
// event is older than it), a page that arrives after its client left, and a read that fails after
// the app closed. The slow-subscriber checks that run while a socket is full (another topic caught
// up, a position trimmed from under it), a conflated backlog that holds a piped stream's end, and
// the lag of subscribers caught up, behind, and on an ended topic, are here too.
import t, { type Test } from 'tap'
import type { Socket } from 'node:net'
import type { BrokerHost, HubBroker, Position, Stored } from '../index.js'
import { build, listen } from './helpers/stream.js'
import { deferred, within } from './helpers/http.js'
import { checkOneTopic, offsetOf, resetData, subscribe } from './helpers/hub.js'

/** A shared broker in memory: every event kept, times set by the test, reads held or failed on demand. */
function storeBroker () {
  let host: BrokerHost | undefined
  const topics = new Map<string, Stored[]>()
  let reading = deferred()
  const held: Array<{ resolve: () => void, reject: (error: Error) => void }> = []
  const control = {
    /** The time the next event is stored at (a real one: the hub trims by age). */
    t: Date.now(),
    /** Reads wait for release() or fail(). */
    hold: false,
    reads: 0,
    /** Offsets gone from the store, as a trim leaves it. */
    trimmed: new Set<number>(),
    /** Resolves once a read is held. */
    get reading (): Promise<void> { return reading.promise },
    release (): void { for (const h of held.splice(0)) h.resolve() },
    fail (): void { for (const h of held.splice(0)) h.reject(new Error('the store went away')) }
  }
  const broker: HubBroker = {
    attach (h) { host = h },
    append (topic, record): Promise<Position> {
      let list = topics.get(topic)
      if (list === undefined) topics.set(topic, list = [])
      const stored: Stored = { t: control.t, o: list.length + 1, body: record.body, event: record.event, end: record.end }
      list.push(stored)
      host!.deliver(topic, [stored])
      return Promise.resolve({ t: stored.t, o: stored.o })
    },
    watch () {},
    unwatch () {},
    async range (topic, after, limit) {
      control.reads++
      if (control.hold) {
        await new Promise<void>((resolve, reject) => {
          held.push({ resolve, reject })
          reading.resolve()
          reading = deferred()
        })
      }
      return (topics.get(topic) ?? []).filter((s) => s.o > after.o && !control.trimmed.has(s.o)).slice(0, limit)
    },
    close: () => Promise.resolve(),
    sync: () => Promise.resolve()
  }
  return { broker, control }
}

async function pagingApp (t: Test, size = 5) {
  const { broker, control } = storeBroker()
  const { app, logs } = await build(t, { heartbeat: false, writeTimeout: false, hub: { broker, history: { size } } })
  app.get('/t', (_req, reply) => reply.sseSubscribe('t', { maxReplay: 100_000 }))
  const url = await listen(app)
  return { app, logs, control, url: url + '/t' }
}

async function publish (app: { sse: { publish: (topic: string, event: { data: string }) => Promise<string> } }, n: number, from = 1): Promise<void> {
  for (let i = from; i < from + n; i++) await app.sse.publish('t', { data: String(i) })
}

t.test('a cursor at the origin, older than the cache, is replayed from the broker from its first event', async (t) => {
  const { app, control, url } = await pagingApp(t)
  await publish(app, 20)
  const reader = await subscribe(url, { lastEventId: '0-0' })
  await reader.waitFor((f) => f.at(-1)?.data === '20', 5000, 'the head')
  const seq = checkOneTopic(reader.frames, '0-0')
  t.same(seq.offsets, Array.from({ length: 20 }, (_, i) => i + 1), 'every event once, in order')
  t.same(seq.resets, [])
  t.equal(control.reads, 1, 'one read')
  reader.destroy()
})

t.test('a replay longer than the pages the hub keeps is read a page at a time, each once', async (t) => {
  const { app, control, url } = await pagingApp(t)
  // Six pages of 512: more than the four a topic keeps.
  await publish(app, 3000)
  const reader = await subscribe(url, { lastEventId: '0-0' })
  await reader.waitFor((f) => f.at(-1)?.data === '3000', 20_000, 'the head')
  const seq = checkOneTopic(reader.frames, '0-0')
  t.equal(seq.offsets.length, 3000, 'every event once, in order')
  t.equal(control.reads, 6, `${control.reads} reads for 2,995 events older than the cache`)
  reader.destroy()
})

t.test('a cursor whose own event the broker trimmed: served when the next one is of its history, else lost', async (t) => {
  const { app, control, url } = await pagingApp(t)
  // Events 1 to 10 at t0, 11 to 20 a second later; the cache holds 16 to 20.
  const t0 = control.t
  await publish(app, 10)
  control.t = t0 + 1000
  await publish(app, 10, 11)
  // A trim takes the oldest: up to the cursor's own event.
  for (const o of [1, 2, 3]) control.trimmed.add(o)
  const served = await subscribe(url, { lastEventId: `${t0}-3` })
  await served.waitFor((f) => f.at(-1)?.data === '20', 5000, 'the head')
  const seq = checkOneTopic(served.frames, `${t0}-3`)
  t.same(seq.offsets, Array.from({ length: 17 }, (_, i) => i + 4), 'from the event after the cursor')
  t.same(seq.resets, [])
  served.destroy()
  // A cursor later than the event after it, at a lower offset, is of another history.
  for (const o of [4, 5]) control.trimmed.add(o)
  const lost = await subscribe(url, { lastEventId: `${t0 + 500}-5` })
  await lost.waitFor((f) => f.length >= 1, 5000, 'the reset')
  t.equal(lost.frames[0]!.event, 'sse-reset')
  t.same(resetData(lost.frames[0]!), { topic: 't', reason: 'lost', from: `${t0 + 500}-5`, head: `${t0 + 1000}-20` })
  lost.destroy()
  // Trimmed past the event after the cursor: told as trimmed.
  for (const o of [6, 7, 8]) control.trimmed.add(o)
  const trimmed = await subscribe(url, { lastEventId: `${t0}-3` })
  await trimmed.waitFor((f) => f.length >= 1, 5000, 'the reset')
  t.same(resetData(trimmed.frames[0]!), { topic: 't', reason: 'trimmed', from: `${t0}-3`, head: `${t0 + 1000}-20` })
  trimmed.destroy()
})

/** 20 events, the cache holding 5, and a client at the origin whose first page read is held. */
async function heldRead (t: Test) {
  const paging = await pagingApp(t)
  await publish(paging.app, 20)
  paging.control.hold = true
  const reading = paging.control.reading
  const reader = await subscribe(paging.url, { lastEventId: '0-0' })
  await within(reading, 5000, 'the read')
  return { ...paging, reader }
}

t.test('a page read for a client that has left is dropped when it arrives', async (t) => {
  const { app, logs, control, reader } = await heldRead(t)
  reader.destroy()
  await logs.waitFor((l) => l.sse?.reason === 'client-closed')
  t.equal(app.sse.stats().streams.open, 0, 'the stream has ended')
  control.release()
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(control.reads, 1, 'nothing more is read for it')
  t.equal(app.sse.stats().events, 0, 'nothing was written')
})

t.test('a read that fails once the app has closed is not retried: its waiters are dropped', async (t) => {
  const { app, logs, control, reader } = await heldRead(t)
  await app.close()
  control.fail()
  await logs.waitFor((l) => typeof l.msg === 'string' && l.msg.includes('older history could not be read'))
  // The retry comes after 200 ms; it finds the hub closed and reads nothing. (An absence: waited for.)
  await new Promise((resolve) => setTimeout(resolve, 400))
  t.equal(control.reads, 1, 'no second read')
  await reader.closed
})

t.test('conflate: a backlog that holds the end of a piped stream sends the newest per key, then ends', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  await app.sse.pipe('job', [{ event: 'a', data: '1' }, { event: 'b', data: '2' }, { event: 'a', data: '3' }])
  app.get('/', (_req, reply) => reply.sseSubscribe('job', { from: 'oldest', policy: 'conflate', key: (e) => String(e.event), prime: false }))
  const reader = await subscribe(await listen(app) + '/')
  await within(reader.closed, 5000, 'the end of the stream')
  t.same(reader.frames.map((f) => [f.event, f.data]), [['b', '2'], ['a', '3']], 'the newest per key; the end sends nothing')
})

/** A route whose subscriber's socket the test can see fill. */
async function fullSocketApp (t: Test, topics: string[], size = 1000) {
  const { app } = await build(t, { heartbeat: false, writeTimeout: false, hub: { history: { size, bytes: 64 * 1024 * 1024 } } })
  const sockets: Socket[] = []
  app.get('/', (req, reply) => {
    sockets.push(req.raw.socket)
    return reply.sseSubscribe(topics, { policy: 'disconnect', lag: { events: 100_000, bytes: 1e9, ms: 600_000 } })
  })
  const url = await listen(app) + '/'
  const reader = await subscribe(url, { paused: true })
  t.teardown(() => reader.destroy())
  // Large events until the server's socket is full: the client reads nothing.
  const big = 'x'.repeat(256 * 1024)
  for (let i = 0; i < 400 && sockets[0]!.writableNeedDrain !== true; i++) {
    await app.sse.publish(topics[0]!, { data: big })
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.ok(sockets[0]!.writableNeedDrain, 'the socket is full')
  return { app, reader, url, big }
}

t.test('disconnect, on a full socket: a topic caught up and a position trimmed away are within bounds', async (t) => {
  const { app, reader } = await fullSocketApp(t, ['a', 'b'])
  // 'a' lags (within its bounds); 'b' has nothing new: neither closes the stream.
  await app.sse.publish('a', { data: 'one more' })
  const stats = app.sse.stats()
  t.equal(stats.streams.open, 1, 'still open')
  const lag = stats.hub.slowest[0]!
  t.same(lag.topics, ['a', 'b'])
  t.ok(lag.events > 0, `${lag.events} events behind`)
  t.equal(reader.ended, false)
})

t.test('disconnect, on a full socket: a position the history trimmed away is not measured (the flush tells it)', async (t) => {
  const { app, big } = await fullSocketApp(t, ['a'], 3)
  // The history keeps 3: the reader's position falls out of it while the socket is full.
  for (let i = 0; i < 5; i++) await app.sse.publish('a', { data: big })
  t.equal(app.sse.stats().streams.open, 1, 'still open: the trimmed position is told at the next flush, as trimmed')
})

t.test('lag: a subscriber caught up, and one on a piped stream that ended, are not behind', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  await app.sse.pipe('done', [{ data: 'only' }])
  app.get('/', (_req, reply) => reply.sseSubscribe(['done', 'live'], { from: 'oldest', prime: false }))
  const url = await listen(app) + '/'
  const reader = await subscribe(url)
  t.teardown(() => reader.destroy())
  await reader.waitFor((f) => f.some((x) => x.data === 'only'), 5000, 'the piped event')
  const id = await app.sse.publish('live', { data: 'now' })
  await reader.waitFor((f) => f.at(-1)?.data === 'now', 5000, 'the live event')
  t.ok(offsetOf(id) > 0)
  t.same(app.sse.stats().hub.slowest, [], 'nobody behind')
})

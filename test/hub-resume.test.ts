// The hub's resume contract over real sockets (node:http, and the npm `eventsource` client):
// priming, exact resume on one topic and on several (100 on one stream), `from: 'oldest'`, every
// reset reason with exactly what its frame promises, `reset: 'close'` and the reset event's name.
import t from 'tap'
import { EventSource } from 'eventsource'
import sse from '../index.js'
import { build } from './helpers/stream.js'
import { deferred, listen, within } from './helpers/http.js'
import { checkOneTopic, offsetOf, probeBroker, resetData, subscribe } from './helpers/hub.js'

const json = (n: number): string => JSON.stringify({ n })

/**
 * Events of several topics, grouped by topic (the topic is the data's prefix before ':'): a
 * subscriber of several topics keeps each topic's order, not the order between topics.
 */
function byTopic (list: ReadonlyArray<string | undefined>): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const data of list) (out[data!.split(':')[0]!] ??= []).push(data!)
  return out
}

t.test('priming: an id-only first frame, then frames as documented, ids equal to what publish resolved', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  app.get('/news', (_req, reply) => reply.sseSubscribe('news'))
  app.get('/quiet', (_req, reply) => reply.sseSubscribe('news', { prime: false }))
  const url = await listen(app)
  const before = await app.sse.publish('news', { data: 'before' })
  const c = await subscribe(url + '/news')
  const quiet = await subscribe(url + '/quiet')
  await c.waitForFrames(1)
  t.same(c.frames[0], { id: before }, 'the priming frame is the head position, nothing else')
  const ids = [
    await app.sse.publish('news', { event: 'item', data: { n: 1 } }),
    await app.sse.publish('news', { data: 'two\nlines' })
  ]
  await c.waitForFrames(3)
  await quiet.waitForFrames(2)
  t.match(ids[0], /^\d{13}-2$/)
  t.equal(offsetOf(ids[1]!), 3, 'offsets are contiguous per topic')
  t.same(c.frames.slice(1), [{ event: 'item', data: '{"n":1}', id: ids[0] }, { data: 'two\nlines', id: ids[1] }])
  t.same(quiet.frames, c.frames.slice(1), 'prime: false sends no id-only frame')
  // Byte-exact: fields, then the id, then the blank line.
  c.destroy()
  quiet.destroy()
  const raw = await subscribe(url + '/news', { lastEventId: before })
  await raw.waitForFrames(2)
  raw.destroy()
  t.same(raw.frames, c.frames.slice(1), 'a resume from the first id replays exactly the rest')
})

t.test('a client that drops before its first event resumes from its priming id, gapless', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  app.get('/', (_req, reply) => reply.sseSubscribe('t'))
  const url = await listen(app)
  const c = await subscribe(url + '/')
  await c.waitForFrames(1)
  c.destroy()
  await c.closed
  for (let i = 1; i <= 5; i++) await app.sse.publish('t', { data: json(i) })
  const r = await subscribe(url + '/', { lastEventId: c.lastId })
  await r.waitForFrames(5)
  const seq = checkOneTopic(r.frames, c.lastId)
  t.same(seq.offsets, [1, 2, 3, 4, 5])
  t.same(r.frames.map((f) => f.data), [1, 2, 3, 4, 5].map(json))
  await app.sse.publish('t', { data: json(6) })
  await r.waitForFrames(6)
  t.same(checkOneTopic(r.frames, c.lastId).offsets, [1, 2, 3, 4, 5, 6], 'then live, from the same read')
  r.destroy()
})

t.test("from: 'oldest' starts at the oldest event held; the default starts at the head", async (t) => {
  const { app } = await build(t, { heartbeat: false, hub: { history: { size: 3 } } })
  app.get('/oldest', (_req, reply) => reply.sseSubscribe('t', { from: 'oldest' }))
  app.get('/live', (_req, reply) => reply.sseSubscribe('t'))
  const url = await listen(app)
  const empty = await subscribe(url + '/oldest')
  await empty.waitForFrames(1)
  t.same(empty.frames, [{ id: '0-0' }], 'an empty topic: its origin')
  empty.destroy()
  for (let i = 1; i <= 5; i++) await app.sse.publish('t', { data: json(i) })
  const oldest = await subscribe(url + '/oldest')
  const live = await subscribe(url + '/live')
  await oldest.waitForFrames(4)
  await live.waitForFrames(1)
  t.equal(offsetOf(oldest.frames[0]!.id!), 2, 'primed just before the oldest held (3)')
  t.same(checkOneTopic(oldest.frames, undefined).offsets, [3, 4, 5])
  t.equal(offsetOf(live.frames[0]!.id!), 5, 'live: primed at the head')
  await app.sse.publish('t', { data: json(6) })
  await live.waitForFrames(2)
  await oldest.waitForFrames(5)
  t.same(checkOneTopic(live.frames, undefined).offsets, [6])
  oldest.destroy()
  live.destroy()
  // A resume from the oldest priming id still works while 3 is held, and is 'trimmed' once it is not.
  const again = await subscribe(url + '/oldest', { lastEventId: oldest.frames[0]!.id })
  await again.waitForFrames(1)
  again.destroy()
  t.equal(resetData(again.frames[0]!).reason, 'trimmed', 'offset 3 has gone (size 3 holds 4, 5, 6)')
})

t.test('each reset reason, with exactly what the frame promises, then live from the head', async (t) => {
  const broker = probeBroker()
  const { app } = await build(t, { heartbeat: false, hub: { history: { size: 5 }, broker } })
  app.get('/t', (_req, reply) => reply.sseSubscribe('t'))
  app.get('/far', (_req, reply) => reply.sseSubscribe('t', { maxReplay: 3 }))
  app.get('/multi', (_req, reply) => reply.sseSubscribe(['t', 'u']))
  const url = await listen(app)
  const ids: string[] = []
  for (let i = 1; i <= 10; i++) ids.push(await app.sse.publish('t', { data: json(i) }))
  const head = ids[9]!

  // Each case: the Last-Event-ID sent, the route, the reason and `from` expected.
  const cases: Array<[string, string, string, string, string]> = [
    ['trimmed: offset 2 is older than the 5 held', ids[1]!, '/t', 'trimmed', ids[1]!],
    ['unknown: not an id of this subscription', 'garbage', '/t', 'unknown', 'garbage'],
    ['unknown: a several-topic id on a one-topic stream', 'abc.1-1,1-1', '/t', 'unknown', 'abc.1-1,1-1'],
    ['unknown: a one-topic id on a two-topic stream', ids[7]!, '/multi', 'unknown', ids[7]!],
    ['lost: an offset past the head', `${Date.now()}-99`, '/t', 'lost', ''],
    ['lost: the head offset from another history', `${Number(head.split('-')[0]) - 1}-10`, '/t', 'lost', ''],
    ['lost: a held offset with another time', `1-8`, '/t', 'lost', '1-8'],
    ['too-far: 5 behind, maxReplay 3', ids[4]!, '/far', 'too-far', ids[4]!]
  ]
  for (const [what, lastEventId, path, reason, from] of cases) {
    const c = await subscribe(url + path, { lastEventId })
    await c.waitForFrames(1)
    const reset = resetData(c.frames[0]!)
    t.equal(c.frames[0]!.event, 'sse-reset', what)
    t.equal(reset.reason, reason, what)
    t.equal(reset.topic, 't', what)
    t.equal(reset.from, from === '' ? lastEventId : from, what + ': from is the cursor the client had')
    t.equal(reset.head, head, what + ': head is the newest position')
    if (path === '/multi') {
      await c.waitForFrames(2)
      t.same(c.frames.map((f) => resetData(f).topic), ['t', 'u'], 'every topic of the subscription is told')
      t.match(c.frames[1]!.id, /^[0-9a-z]+\.[0-9a-z]+-a,0-0$/, 'the id after the resets: both heads')
    } else {
      t.equal(c.frames[0]!.id, head, what + ': the reset frame carries the head as its id')
    }
    t.equal(c.frames.length, path === '/multi' ? 2 : 1, what + ': nothing held is replayed after the reset')
    c.destroy()
  }
  // Then live: the next event after the head, and a resume from the reset's id is exact.
  const c = await subscribe(url + '/t', { lastEventId: ids[0] })
  await c.waitForFrames(1)
  const next = await app.sse.publish('t', { data: json(11) })
  await c.waitForFrames(2)
  t.same(c.frames[1], { data: json(11), id: next })
  c.destroy()
  const r = await subscribe(url + '/t', { lastEventId: c.frames[0]!.id })
  await r.waitForFrames(1)
  t.same(r.frames, [{ data: json(11), id: next }], 'the reset id is a cursor the client can resume from')
  r.destroy()

  // lost, told by the broker while subscribed: the history held is dropped and the reader told.
  const live = await subscribe(url + '/t', { lastEventId: next })
  await app.sse.publish('t', { data: json(12) })
  await live.waitForFrames(1)
  broker.hub.lost('t')
  await live.waitForFrames(2)
  const lost = resetData(live.frames[1]!)
  t.same(lost, { topic: 't', reason: 'lost', from: live.frames[0]!.id, head: live.frames[0]!.id })
  live.destroy()
})

t.test('a refused Last-Event-ID (too long, or not a valid id) gets an unknown reset with an empty from', async (t) => {
  const { app } = await build(t, { heartbeat: false, lastEventIdMaxLength: 16 })
  app.get('/', (_req, reply) => reply.sseSubscribe('t'))
  const url = await listen(app)
  const head = await app.sse.publish('t', { data: 'x' })
  // Longer than lastEventIdMaxLength and than any one-topic hub id (32 characters).
  const c = await subscribe(url + '/', { lastEventId: 'x'.repeat(40) })
  await c.waitForFrames(2)
  t.same(c.frames[0], { id: head }, 'the priming frame, then the reset (the same position)')
  t.same(resetData(c.frames[1]!), { topic: 't', reason: 'unknown', from: '', head })
  c.destroy()
  const q = await subscribe(url + '/?lastEventId=' + 'y'.repeat(40))
  await q.waitForFrames(2)
  t.equal(resetData(q.frames[1]!).reason, 'unknown', 'the query fallback too')
  q.destroy()
})

t.test("reset: 'close' ends the stream after the reset frame; the event name is configurable", async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, hub: { resetEvent: 'gap', history: { size: 2 } } })
  app.get('/', (_req, reply) => reply.sseSubscribe('t', { reset: 'close' }))
  const url = await listen(app)
  const ids: string[] = []
  for (let i = 1; i <= 4; i++) ids.push(await app.sse.publish('t', { data: json(i) }))
  const c = await subscribe(url + '/', { lastEventId: ids[0] })
  await within(c.closed, 2000, 'the server to end the stream')
  t.equal(c.frames.length, 1)
  t.equal(c.frames[0]!.event, 'gap')
  t.same(resetData(c.frames[0]!), { topic: 't', reason: 'trimmed', from: ids[0], head: ids[3] })
  const end = await logs.waitFor((l) => l.sse !== undefined)
  t.equal(end.sse.reason, 'reset')
  // The close is clean: the client resumes from the reset's id with nothing lost.
  const five = await app.sse.publish('t', { data: json(5) })
  const r = await subscribe(url + '/', { lastEventId: c.lastId })
  await r.waitForFrames(1)
  t.same(r.frames, [{ data: json(5), id: five }])
  r.destroy()
})

t.test('several topics: one id carries every position; a resume replays exactly what each missed', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const topics = ['a', 'b', 'c']
  app.get('/', (_req, reply) => reply.sseSubscribe(topics))
  const url = await listen(app)
  await app.sse.publish('b', { data: 'b:0' })
  const c = await subscribe(url + '/')
  await c.waitForFrames(1)
  t.match(c.frames[0]!.id, /^[0-9a-z]+\.0-0,[0-9a-z]+-1,0-0$/, 'the priming id: every head, in subscription order')
  await app.sse.publish('a', { data: 'a:1' })
  await app.sse.publish('c', { data: 'c:1' })
  await c.waitForFrames(3)
  c.destroy()
  await c.closed
  const missed = ['b:1', 'a:2', 'a:3', 'c:2', 'b:2']
  for (const data of missed) await app.sse.publish(data[0]!, { data })
  const r = await subscribe(url + '/', { lastEventId: c.lastId })
  await r.waitForFrames(5)
  const got = r.frames.map((f) => f.data!)
  t.same(byTopic(got), byTopic(missed), 'every missed event once, none seen before, each topic in order')
  // Each frame's id is the cursor after it: a resume from any of them replays exactly the rest
  // (and the probes published since, which come after every one of these cursors).
  const cursors = r.frames.map((f) => f.id!)
  const probes: string[] = []
  for (let i = 0; i < cursors.length; i++) {
    const again = await subscribe(url + '/', { lastEventId: cursors[i] })
    const rest = got.slice(i + 1).concat(probes)
    if (rest.length > 0) await again.waitForFrames(rest.length)
    probes.push(`c:probe${i}`)
    await app.sse.publish('c', { data: `c:probe${i}` })
    await again.waitForFrames(rest.length + 1)
    t.same(byTopic(again.frames.map((f) => f.data)), byTopic(rest.concat(`c:probe${i}`)), `resume from frame ${i}`)
    again.destroy()
  }
  r.destroy()
})

t.test('100 topics on one stream: a bounded id, and a resume that is exact', async (t) => {
  const broker = probeBroker()
  const { app } = await build(t, { heartbeat: false, hub: { broker } })
  const topics = Array.from({ length: 100 }, (_, i) => `topic-${i}`)
  app.get('/', (_req, reply) => reply.sseSubscribe(topics))
  const url = await listen(app)
  const c = await subscribe(url + '/')
  await c.waitForFrames(1)
  for (let round = 1; round <= 3; round++) {
    for (const topic of topics) await app.sse.publish(topic, { data: `${topic}:${round}` })
  }
  await c.waitForFrames(301)
  const longest = Math.max(...c.frames.map((f) => f.id!.length))
  t.ok(longest < 100 * 16, `the longest id is ${longest} characters`)
  t.equal(broker.hub.size, 100)
  c.destroy()
  await c.closed
  // Resume from the middle (a flush writes topic after topic: later topics are still at their
  // origin there) and from the end (every topic has a position: the longest id), with events
  // published meanwhile on a few topics.
  const since: string[] = []
  for (const i of [150, 300]) {
    const cursor = c.frames[i]!.id!
    for (const topic of topics.slice(0, 10)) {
      since.push(`${topic}:after-${i}`)
      await app.sse.publish(topic, { data: `${topic}:after-${i}` })
    }
    const expected = c.frames.slice(i + 1).map((f) => f.data).concat(since)
    const r = await subscribe(url + '/', { lastEventId: cursor })
    await r.waitForFrames(1)
    t.equal(r.frames.filter((f) => f.event === 'sse-reset').length, 0, `no reset from a cursor of ${cursor.length} characters`)
    await r.waitForFrames(expected.length)
    const events = r.frames.filter((f) => f.event === undefined && f.data !== undefined)
    t.same(byTopic(events.map((f) => f.data)), byTopic(expected), 'exactly what came after the cursor, each topic in order')
    r.destroy()
  }
})

t.test('the npm eventsource client resumes a two-topic stream across server drops', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const drop = new Set<() => void>()
  let connections = 0
  app.get('/', (req, reply) => {
    connections++
    drop.add(() => req.raw.socket.destroy())
    return reply.sseSubscribe(['x', 'y'], { retry: 10 })
  })
  const url = await listen(app)
  t.teardown(() => app.server.closeAllConnections())
  const es = new EventSource(url + '/')
  t.teardown(() => es.close())
  const got: string[] = []
  const resets: unknown[] = []
  let waiter: { n: number, resolve: () => void } | undefined
  es.onmessage = (e) => {
    got.push(e.data)
    if (waiter !== undefined && got.length >= waiter.n) waiter.resolve()
  }
  es.addEventListener('sse-reset', (e) => resets.push(e.data))
  const until = async (n: number): Promise<void> => {
    const d = deferred()
    waiter = { n, resolve: d.resolve }
    if (got.length >= n) d.resolve()
    await within(d.promise, 5000, `${n} events`)
  }
  const opened = deferred()
  es.onopen = () => opened.resolve()
  await within(opened.promise, 5000, 'the first connection')
  const sent: string[] = []
  const publish = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const data = `${sent.length % 2 === 0 ? 'x' : 'y'}:${sent.length}`
      sent.push(data)
      await app.sse.publish(data[0]!, { data })
    }
  }
  for (let round = 0; round < 5; round++) {
    await publish(10)
    await until(sent.length)
    // Dropped by the server; the next events are published while the client is away.
    for (const fn of drop) fn()
    drop.clear()
    await publish(10)
  }
  await until(sent.length)
  t.same(byTopic(got), byTopic(sent), 'every event exactly once, each topic in order, across 5 drops')
  t.same(resets, [])
  t.equal(connections, 6, `${connections} connections`)
})

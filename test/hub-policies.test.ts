// The hub's slow-subscriber policies (catch-up, disconnect, skip-to-head, conflate), the filter, a
// throwing filter or key, over real sockets. A slow client is a node:http client that reads nothing
// (its response paused), so that the server's socket fills and the hub's cursor falls behind.
import t from 'tap'
import { setImmediate as turn } from 'node:timers/promises'
import { setTimeout as delay } from 'node:timers/promises'
import { build } from './helpers/stream.js'
import { listen, within } from './helpers/http.js'
import { SseReader, checkOneTopic, subscribe } from './helpers/hub.js'

const BIG = 'x'.repeat(8192)

/** Publishes `n` 8 KB events to `topic`, a macrotask after every 10 so the hub flushes between. */
async function flood (app: { sse: { publish: (topic: string, event: { data: string }) => Promise<string> } }, topic: string, n: number, until?: () => boolean): Promise<number> {
  let i = 0
  for (; i < n && until?.() !== true; i++) {
    await app.sse.publish(topic, { data: `${i}:${BIG}` })
    if (i % 10 === 9) await turn()
  }
  return i
}

t.test('catch-up: a reader that falls off the history is told (trimmed), then goes on from the head', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, writeTimeout: false, hub: { history: { size: 50 } } })
  app.get('/', (_req, reply) => reply.sseSubscribe('t'))
  const url = await listen(app)
  const slow = await subscribe(url + '/', { paused: true })
  await flood(app, 't', 2000)
  slow.resume()
  const last = await app.sse.publish('t', { data: 'last' })
  await slow.waitFor((f) => f.at(-1)?.id === last, 10_000, 'the slow reader to reach the head')
  const seq = checkOneTopic(slow.frames, undefined)
  t.ok(seq.resets.length >= 1, `told ${seq.resets.length} time(s)`)
  t.same(new Set(seq.resets.map((r) => r.reason)), new Set(['trimmed']))
  t.ok(seq.offsets.length < 2001, `${seq.offsets.length} of 2001 events, the rest passed over in the open`)
  t.equal(logs.lines.filter((l) => l.sse !== undefined).length, 0, 'catch-up never closes a stream')
  slow.destroy()
})

t.test('disconnect: a reader lagging past its bound is closed; it resumes by id within the history', async (t) => {
  // A history that holds everything: the resume must be exact.
  const { app, logs } = await build(t, { heartbeat: false, writeTimeout: false, hub: { history: { bytes: 32 * 1024 * 1024 } } })
  app.get('/', (_req, reply) => reply.sseSubscribe('t', { policy: 'disconnect', lag: { events: 20 } }))
  const url = await listen(app)
  const slow = await subscribe(url + '/', { paused: true })
  let closed = false
  void logs.waitFor((l) => l.sse?.reason === 'overflow', 20_000).then(() => { closed = true })
  const n = await flood(app, 't', 900, () => closed)
  t.ok(closed, `closed after ${n} events`)
  const info = await logs.waitFor((l) => typeof l.msg === 'string' && l.msg.includes('lagged past its bound'))
  t.equal(info.topic, 't')
  slow.resume()
  await within(slow.closed, 5000, 'the slow client to see the end')
  const first = checkOneTopic(slow.frames, undefined)
  t.same(first.resets, [], 'no reset: the client is dropped, not told')
  // Back in time: everything it missed is still held.
  await app.sse.publish('t', { data: 'after' })
  const back = await subscribe(url + '/', { lastEventId: first.last })
  await back.waitFor((f) => f.at(-1)?.data === 'after', 10_000, 'the resume to reach the head')
  const resumed = checkOneTopic(back.frames, first.last)
  t.same(resumed.resets, [])
  t.equal(first.offsets.length + resumed.offsets.length, n + 1, 'every event once, across the drop')
  back.destroy()
})

t.test('skip-to-head: a lagging reader gets an overflow reset, then the newest events', async (t) => {
  for (const lag of [{ events: 20 }, { bytes: 100_000 }]) {
    const { app, logs } = await build(t, { heartbeat: false, writeTimeout: false })
    app.get('/', (_req, reply) => reply.sseSubscribe('t', { policy: 'skip-to-head', lag }))
    const url = await listen(app)
    const slow = await subscribe(url + '/', { paused: true })
    const n = await flood(app, 't', 900)
    slow.resume()
    const last = await app.sse.publish('t', { data: 'last' })
    await slow.waitFor((f) => f.at(-1)?.id === last, 10_000, 'the reader to reach the head')
    const seq = checkOneTopic(slow.frames, undefined)
    t.ok(seq.resets.length >= 1, `${JSON.stringify(lag)}: told ${seq.resets.length} time(s)`)
    t.same(new Set(seq.resets.map((r) => r.reason)), new Set(['overflow']))
    t.ok(seq.offsets.length < n, `${seq.offsets.length} of ${n + 1} events`)
    t.equal(logs.lines.filter((l) => l.sse !== undefined).length, 0, 'the stream stays open')
    slow.destroy()
    await app.close()
  }
})

t.test('skip-to-head with a time bound: a backlog older than lag.ms is skipped', async (t) => {
  // History large enough that nothing is trimmed: the only reason to skip is the time bound.
  const { app } = await build(t, { heartbeat: false, writeTimeout: false, hub: { history: { bytes: 32 * 1024 * 1024 } } })
  app.get('/', (_req, reply) => reply.sseSubscribe('t', { policy: 'skip-to-head', lag: { ms: 50 } }))
  const url = await listen(app)
  const slow = await subscribe(url + '/', { paused: true })
  const n = await flood(app, 't', 900)
  // The bound is a duration: let it pass (a timer of the bound's length, not a wait for an event).
  await delay(60)
  await flood(app, 't', 10)
  slow.resume()
  const last = await app.sse.publish('t', { data: 'last' })
  await slow.waitFor((f) => f.at(-1)?.id === last, 10_000, 'the reader to reach the head')
  const seq = checkOneTopic(slow.frames, undefined)
  t.same(new Set(seq.resets.map((r) => r.reason)), new Set(['overflow']))
  t.ok(seq.offsets.length < n + 11, `${seq.offsets.length} of ${n + 11} events`)
  slow.destroy()
})

t.test('conflate: a backlog sends only the newest event per key, in order of last occurrence, and stays resumable', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  app.get('/', (_req, reply) => reply.sseSubscribe('t', { policy: 'conflate', key: (e) => String(e.event) }))
  const url = await listen(app)
  const c = await subscribe(url + '/')
  await c.waitForFrames(1)
  // One tick: the whole burst is one backlog at the next flush.
  const keys = ['a', 'b', 'a', 'c', 'b', 'a', 'd', 'c', 'a', 'b']
  const ids = await Promise.all(keys.map((key, i) => app.sse.publish('t', { event: key, data: `${key}${i}` })))
  await c.waitFor((f) => f.at(-1)?.id === ids[9], 5000, 'the newest event')
  t.same(c.frames.slice(1), [
    { event: 'd', data: 'd6', id: ids[6] },
    { event: 'c', data: 'c7', id: ids[7] },
    { event: 'a', data: 'a8', id: ids[8] },
    { event: 'b', data: 'b9', id: ids[9] }
  ])
  // Without a backlog, each event goes as it comes.
  const one = await app.sse.publish('t', { event: 'a', data: 'a10' })
  await c.waitForFrames(6)
  const two = await app.sse.publish('t', { event: 'a', data: 'a11' })
  await c.waitForFrames(7)
  t.same(c.frames.slice(5).map((f) => f.id), [one, two])
  c.destroy()
  // A resume into a backlog is conflated the same way; from the head, nothing is repeated.
  const r = await subscribe(url + '/', { lastEventId: ids[1] })
  await r.waitFor((f) => f.at(-1)?.id === two)
  t.same(r.frames.map((f) => f.data), ['d6', 'c7', 'b9', 'a11'])
})

t.test('a filter skips events per subscriber; ids still resume exactly', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const seen: Array<[unknown, string]> = []
  app.get('/', (_req, reply) => reply.sseSubscribe(['pub', 'priv'], {
    filter: (event, topic) => {
      seen.push([event.data, topic])
      return topic === 'pub' || (event.data as { to: string }).to === 'me'
    }
  }))
  const url = await listen(app)
  const c = await subscribe(url + '/')
  await c.waitForFrames(1)
  await app.sse.publish('priv', { data: { to: 'you', n: 1 } })
  await app.sse.publish('pub', { data: { n: 2 } })
  await app.sse.publish('priv', { data: { to: 'me', n: 3 } })
  await app.sse.publish('priv', { data: { to: 'you', n: 4 } })
  await c.waitForFrames(3)
  t.same(c.frames.slice(1).map((f) => JSON.parse(f.data!).n).sort(), [2, 3])
  t.same(seen.map(([data, topic]) => [(data as { n: number }).n, topic]).sort(), [[1, 'priv'], [2, 'pub'], [3, 'priv'], [4, 'priv']],
    'the filter saw the event as published, and its topic')
  c.destroy()
  await app.sse.publish('priv', { data: { to: 'me', n: 5 } })
  const r = await subscribe(url + '/', { lastEventId: c.lastId })
  await r.waitForFrames(1)
  t.same(r.frames.map((f) => JSON.parse(f.data!).n), [5], 'nothing filtered is let through, nothing is repeated')
  r.destroy()
})

t.test('a throwing filter or key ends that subscriber alone, logged; the others go on', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false })
  const boom = new Error('boom')
  app.get('/filter', (_req, reply) => reply.sseSubscribe('t', { filter: (e) => { if (e.data === 'bad') throw boom; return true } }))
  app.get('/key', (_req, reply) => reply.sseSubscribe('t', { policy: 'conflate', key: (e) => { if (e.data === 'bad') throw boom; return 'k' } }))
  app.get('/plain', (_req, reply) => reply.sseSubscribe('t'))
  const url = await listen(app)
  const readers = await Promise.all(['/filter', '/key', '/plain'].map((path) => subscribe(url + path)))
  await Promise.all(readers.map((r) => r.waitForFrames(1)))
  // In one tick, so that the conflating reader has a backlog (and calls its key).
  await Promise.all(['ok', 'bad', 'ok2'].map((data) => app.sse.publish('t', { data })))
  const [filter, key, plain] = readers as [SseReader, SseReader, SseReader]
  await within(Promise.all([filter.closed, key.closed]), 5000, 'the failing subscribers to end')
  await plain.waitForFrames(4)
  t.same(plain.frames.slice(1).map((f) => f.data), ['ok', 'bad', 'ok2'])
  t.same(filter.frames.slice(1), [], 'the flush that failed wrote nothing')
  t.same(key.frames.slice(1), [])
  const errors = logs.find('a subscription filter or key function failed')
  t.equal(errors.length, 2)
  t.equal(errors[0]!.err.message, 'boom')
  t.same(logs.lines.filter((l) => l.sse !== undefined).map((l) => l.sse.reason), ['error', 'error'])
  await app.sse.publish('t', { data: 'later' })
  await plain.waitForFrames(5)
  plain.destroy()
})

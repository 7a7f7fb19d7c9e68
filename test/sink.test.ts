import t from 'tap'
import { EventEmitter } from 'node:events'
import { setTimeout as delay } from 'node:timers/promises'
import type { SseSink } from '../index.js'
import { build, deferred, frames, isEnd, listen, logCollector, open, silentClient } from './helpers/stream.js'

const KiB64 = 'y'.repeat(64 * 1024)

t.test('an EventEmitter producer streams in order and ends with end()', async (t) => {
  const { app, logs } = await build(t)
  const bus = new EventEmitter()
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    const onTick = (n: number): void => { sink.send({ id: n, event: 'tick', data: { n } }) }
    bus.on('tick', onTick)
    bus.once('stop', () => sink.end())
    sink.signal.addEventListener('abort', () => bus.off('tick', onTick))
  })
  const client = await open(await listen(app) + '/')
  for (let n = 1; n <= 5; n++) bus.emit('tick', n)
  bus.emit('stop')
  await client.closed
  t.same(frames(client.text), [1, 2, 3, 4, 5].map((n) => `event: tick\nid: ${n}\ndata: {"n":${n}}`))
  t.equal(bus.listenerCount('tick'), 0, 'the producer unsubscribed on abort')
  t.equal((await logs.waitFor(isEnd)).sse.reason, 'ended')
})

t.test('send() resolves true once written; comment() sends a comment line', async (t) => {
  const { app } = await build(t)
  const result = deferred<boolean[]>()
  app.get('/', async (_req, reply) => {
    const sink = reply.sseSink()
    t.equal(sink.lastEventId, '41')
    const a = await sink.send({ data: 'a' })
    const c = await sink.comment('note')
    sink.end()
    sink.end()
    result.resolve([a, c, await sink.send({ data: 'late' })])
    await sink.done
    t.equal(sink.closed, true)
    return reply
  })
  const client = await open(await listen(app) + '/', { headers: { 'last-event-id': '41' } })
  await client.closed
  t.same(await result.promise, [true, true, false])
  t.equal(client.text, ': heartbeat=15000\ndata: a\n\n: note\n')
})

t.test('an invalid event throws to its caller at once and the stream carries on', async (t) => {
  const { app } = await build(t)
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    t.throws(() => sink.send({ event: 'a\nb', data: 'x' }), { code: 'FST_ERR_SSE_INVALID_EVENT_NAME' })
    t.throws(() => sink.comment(42 as unknown as string), { code: 'FST_ERR_SSE_INVALID_COMMENT' })
    sink.send({ data: 'still here' })
    sink.end()
  })
  const client = await open(await listen(app) + '/')
  await client.closed
  t.equal(client.text, ': heartbeat=15000\ndata: still here\n\n')
})

t.test('awaiting send() applies backpressure; queued events keep their order', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const sent = deferred<number>()
  let sinkRef: SseSink | undefined
  const blocked = deferred<number>()
  app.get('/', async (_req, reply) => {
    const sink = reply.sseSink()
    sinkRef = sink
    let n = 0
    // An awaiting producer: never more than one event outstanding.
    for (; n < 200; n++) {
      const p = sink.send({ id: n, data: KiB64 })
      if (await Promise.race([p, Promise.resolve('pending')]) === 'pending') blocked.resolve(n)
      if (!await p) break
    }
    sink.end()
    sent.resolve(n)
    return reply
  })
  const client = await open(await listen(app) + '/', { read: false })
  client.res.pause()
  const at = await blocked.promise
  t.ok(at < 200, `send() blocked at event ${at} while the client read nothing`)
  t.equal(sinkRef!.pending, 0, 'an awaiting producer queues nothing')
  client.resume()
  client.res.resume()
  t.equal(await sent.promise, 200, 'all written once the client reads')
  await client.closed
  const ids = frames(client.text).map((f) => Number(/^id: (\d+)/.exec(f)![1]))
  t.same(ids, Array.from({ length: 200 }, (_, i) => i), 'in order, none lost')
})

t.test('a producer that does not await is held to queueLimit, then the stream closes as overflow', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, queueLimit: 16 })
  const results = deferred<boolean[]>()
  const unhandled: unknown[] = []
  const onUnhandled = (e: unknown): void => { unhandled.push(e) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    const promises: Array<Promise<boolean>> = []
    for (let i = 0; i < 500 && !sink.closed; i++) promises.push(sink.send({ id: i, data: KiB64 }))
    t.ok(sink.pending <= 16, 'never more than queueLimit queued')
    Promise.all(promises).then(results.resolve)
  })
  const client = await open(await listen(app) + '/', { read: false })
  client.res.pause()
  const end = await logs.waitFor(isEnd)
  t.equal(end.sse.reason, 'overflow')
  const r = await results.promise
  t.ok(r.includes(false), 'unsent events resolve false')
  t.equal(r.lastIndexOf(true) + 1, r.filter(Boolean).length, 'written events form a prefix: none skipped')
  client.res.resume()
  await client.closed
  await delay(10)
  t.same(unhandled, [])
})

t.test('events queued behind a full socket are written in order once it drains, then end()', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const results = deferred<boolean[]>()
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    const ps: Array<Promise<boolean>> = []
    let i = 0
    while (sink.pending === 0 && i < 1000) ps.push(sink.send({ id: i++, data: KiB64 }))
    for (let j = 0; j < 10; j++) ps.push(sink.send({ id: i++, data: 'small' }))
    sink.end()
    t.equal(sink.closed, false, 'end() waits for the queue')
    Promise.all(ps).then(results.resolve)
  })
  const client = await open(await listen(app) + '/')
  await client.closed
  const r = await results.promise
  t.ok(r.every(Boolean), 'every queued event was written')
  const f = frames(client.text)
  t.equal(f.length, r.length)
  t.match(f[f.length - 1], /data: small$/)
})

t.test('a client that goes resolves pending sends with false and aborts the signal', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const outcome = deferred<{ results: boolean[], reason: string }>()
  const started = deferred()
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    const ps: Array<Promise<boolean>> = []
    // 8 MiB frames: more than loopback's kernel buffers can take, so the queue stays put.
    const big = 'z'.repeat(8 * 1024 * 1024)
    while (sink.pending < 5) ps.push(sink.send({ data: big }))
    started.resolve()
    sink.signal.addEventListener('abort', () => {
      Promise.all(ps).then((results) => outcome.resolve({ results, reason: (sink.signal.reason as Error).message }))
    })
  })
  const client = await silentClient(await listen(app) + '/')
  await started.promise
  client.destroy()
  const { results, reason } = await outcome.promise
  t.same(results.slice(-3), [false, false, false], 'what was never written resolves false')
  t.equal(reason, 'The SSE stream ended: client-closed')
})

t.test('end() on a stream that already ended does nothing', async (t) => {
  const { app } = await build(t)
  const done = deferred()
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    sink.signal.addEventListener('abort', () => {
      sink.end()
      t.equal(sink.closed, true)
      done.resolve()
    })
  })
  const client = await open(await listen(app) + '/')
  client.destroy()
  await done.promise
  await client.closed
})

t.test('a signal first read after the stream ended is already aborted, with the reason', async (t) => {
  const { app } = await build(t)
  const result = deferred<{ aborted: boolean, reason: string }>()
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    sink.send({ data: 'only' })
    sink.end()
    sink.done.then(() => {
      result.resolve({ aborted: sink.signal.aborted, reason: (sink.signal.reason as Error).message })
    })
  })
  const client = await open(await listen(app) + '/')
  await client.closed
  t.same(await result.promise, { aborted: true, reason: 'The SSE stream ended: ended' })
})

t.test('a prepared event is encoded once and sent to many streams as it is', async (t) => {
  const { app, logs } = await build(t)
  const { prepareEvent, PreparedEvent } = await import('../index.js')
  let serialized = 0
  const prepared = prepareEvent({ id: 7, event: 'news', data: { title: 'one' } }, (d) => { serialized++; return JSON.stringify(d) })
  t.equal(prepared.frame, 'event: news\nid: 7\ndata: {"title":"one"}\n\n')
  t.ok(Object.isFrozen(prepared))
  t.throws(() => new (PreparedEvent as unknown as new (a: symbol, b: string) => unknown)(Symbol('x'), 'data: forged\n\n'), TypeError, 'only prepareEvent() makes one')
  t.throws(() => prepareEvent({ event: 'a\nb' }), { code: 'FST_ERR_SSE_INVALID_EVENT_NAME' })
  app.get('/sink', (_req, reply) => {
    const sink = reply.sseSink()
    sink.send(prepared)
    sink.end()
  })
  app.get('/source', (_req, reply) => reply.sse([prepared, { data: 'own' }]))
  const base = await listen(app)
  const clients = await Promise.all([open(base + '/sink'), open(base + '/sink'), open(base + '/source')])
  await Promise.all(clients.map((c) => c.closed))
  t.equal(clients[0].text, ': heartbeat=15000\n' + prepared.frame)
  t.equal(clients[1].text, ': heartbeat=15000\n' + prepared.frame)
  t.equal(clients[2].text, ': heartbeat=15000\n' + prepared.frame + 'data: own\n\n')
  t.equal(serialized, 1, 'serialized once for three streams')
  t.same(logs.lines.filter(isEnd).map((l) => l.sse.events).sort(), [1, 1, 2])
})

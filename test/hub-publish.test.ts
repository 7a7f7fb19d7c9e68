// Publishing and piping: typed rejections (bad topic, bad event, an id given, a closed hub, a
// broker that fails, which must leave the event neither delivered nor stored), piped streams that
// end their subscribers cleanly, and the 204 for a client that already has a whole ended stream.
import t from 'tap'
import { EventSource } from 'eventsource'
import sse, { memoryBroker, type HubBroker } from '../index.js'
import Fastify from 'fastify'
import { build, holdUntilClosing } from './helpers/stream.js'
import { deferred, listen, within } from './helpers/http.js'
import { checkOneTopic, offsetOf, subscribe } from './helpers/hub.js'

t.test('publish rejects bad input with typed errors, and stores nothing for it', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  app.get('/', (_req, reply) => reply.sseSubscribe('ok', { from: 'oldest' }))
  const url = await listen(app)
  const topics: unknown[] = ['', 'a\nb', 'a\rb', 'tab\there', 'del\x7f', 'x'.repeat(257), 'lone\ud800', 42, null, undefined, ['ok']]
  for (const topic of topics) {
    await t.rejects(app.sse.publish(topic as string, { data: 'x' }), { code: 'FST_ERR_SSE_INVALID_TOPIC' }, `topic ${JSON.stringify(topic)}`)
  }
  t.match(await app.sse.publish('x'.repeat(256), { data: 'x' }), /^\d+-1$/, '256 characters is the limit')
  t.match(await app.sse.publish('gen:é/🦄 spaces ok', { data: 'x' }), /^\d+-1$/, 'any printable text')
  for (const event of [null, 'text', 42, ['a'], undefined]) {
    await t.rejects(app.sse.publish('ok', event as never), { code: 'FST_ERR_SSE_INVALID_EVENT' }, `event ${JSON.stringify(event)}`)
  }
  for (const id of ['1', 0, '']) {
    await t.rejects(app.sse.publish('ok', { id, data: 'x' } as never), { code: 'FST_ERR_SSE_ID_ASSIGNED' }, `id ${JSON.stringify(id)}`)
  }
  await t.rejects(app.sse.publish('ok', { event: 'a\nb', data: 'x' }), { code: 'FST_ERR_SSE_INVALID_EVENT_NAME' }, 'an event the encoder refuses')
  const first = await app.sse.publish('ok', { data: 'stored' })
  t.equal(offsetOf(first), 1, 'nothing refused took an offset')
  const c = await subscribe(url + '/')
  await c.waitForFrames(2)
  t.same(c.frames.slice(1), [{ data: 'stored', id: first }])
  c.destroy()
})

t.test('a broker that fails: publish rejects with FST_ERR_SSE_BROKER, and the event is neither delivered nor stored', async (t) => {
  const inner = memoryBroker()
  const failure = new Error('broker down')
  let mode: 'ok' | 'reject' | 'throw' = 'ok'
  const broker: HubBroker = {
    attach: (host) => inner.attach(host),
    append: (topic, record) => {
      if (mode === 'reject') return Promise.reject(failure)
      if (mode === 'throw') throw failure
      return inner.append(topic, record)
    },
    watch: (topic, after) => inner.watch(topic, after),
    unwatch: (topic) => inner.unwatch(topic),
    range: (topic, after, limit) => inner.range(topic, after, limit),
    close: () => inner.close()
  }
  const { app } = await build(t, { heartbeat: false, hub: { broker } })
  app.get('/', (_req, reply) => reply.sseSubscribe('t', { from: 'oldest' }))
  const url = await listen(app)
  const live = await subscribe(url + '/')
  await live.waitForFrames(1)
  const one = await app.sse.publish('t', { data: 'one' })
  for (const m of ['reject', 'throw'] as const) {
    mode = m
    const error = await app.sse.publish('t', { data: `lost-${m}` }).then(() => undefined, (e: unknown) => e)
    t.match(error, { code: 'FST_ERR_SSE_BROKER', statusCode: 503 }, m)
    t.equal((error as { cause?: unknown }).cause, failure, `${m}: the broker's error is the cause`)
  }
  mode = 'ok'
  const two = await app.sse.publish('t', { data: 'two' })
  t.equal(offsetOf(two), 2, 'the failed events took no offset')
  await live.waitForFrames(3)
  t.same(live.frames.slice(1), [{ data: 'one', id: one }, { data: 'two', id: two }], 'never delivered')
  const later = await subscribe(url + '/')
  await later.waitForFrames(3)
  t.same(later.frames.slice(1).map((f) => f.data), ['one', 'two'], 'never stored')
  live.destroy()
  later.destroy()
})

t.test('a closed hub refuses publish and pipe', async (t) => {
  const app = Fastify()
  await app.register(sse)
  await app.ready()
  await app.close()
  await t.rejects(app.sse.publish('t', { data: 'x' }), { code: 'FST_ERR_SSE_HUB_CLOSED', statusCode: 503 })
  await t.rejects(app.sse.pipe('t', [{ data: 'x' }]), { code: 'FST_ERR_SSE_HUB_CLOSED' })
  await t.rejects(app.sse.pipe('', [{ data: 'x' }]), { code: 'FST_ERR_SSE_INVALID_TOPIC' })
})

t.test('a piped stream ends its subscribers cleanly; a client that has it whole gets 204', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false })
  app.get('/job', (_req, reply) => reply.sseSubscribe('job', { from: 'oldest' }))
  const url = await listen(app)
  const gates = [deferred(), deferred()]
  let calls = 0
  const run = app.sse.pipe('job', async function * (signal) {
    calls++
    t.type(signal, AbortSignal)
    yield { event: 'step', data: '1' }
    await gates[0]!.promise
    yield { event: 'step', data: '2' }
    await gates[1]!.promise
    yield { event: 'step', data: '3' }
  })
  const early = await subscribe(url + '/job')
  await early.waitForFrames(2)
  // The client goes; the work goes on.
  early.destroy()
  await early.closed
  const second = app.sse.pipe('job', () => { throw new Error('never called') })
  gates[0]!.resolve()
  const c = await subscribe(url + '/job', { lastEventId: early.lastId })
  await c.waitForFrames(1)
  t.same(c.frames.map((f) => f.data), ['2'], 'resumed, not restarted')
  gates[1]!.resolve()
  await run
  await second
  t.equal(calls, 1, 'a second pipe() while one runs starts nothing, and settles with it')
  await within(c.closed, 2000, 'the end marker to end the stream')
  t.same(c.frames.map((f) => f.data), ['2', '3'], 'the marker sends nothing: the last frame is the last event')
  t.equal(offsetOf(c.frames.at(-1)!.id!), 3)
  t.equal(logs.lines.filter((l) => l.sse?.reason === 'done').length, 1, 'ended as done')
  // With everything, the client is told there is nothing more: 204, which ends EventSource.
  const again = await subscribe(url + '/job', { lastEventId: c.lastId })
  await again.closed
  t.equal(again.status, 204)
  t.same(again.frames, [])
  // A new client replays it whole and ends.
  const fresh = await subscribe(url + '/job')
  await within(fresh.closed, 2000, 'a fresh client to get the whole stream')
  t.same(checkOneTopic(fresh.frames, undefined).offsets, [1, 2, 3])
  t.equal(fresh.status, 200)
  // And a second pipe() after the end, while its history is held, starts nothing.
  await app.sse.pipe('job', () => { throw new Error('never called') })
})

t.test('a failing piped source is logged and still ends with the marker', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false })
  app.get('/', (_req, reply) => reply.sseSubscribe('f', { from: 'oldest' }))
  const url = await listen(app)
  await app.sse.pipe('f', async function * () {
    yield { data: 'a' }
    throw new Error('source broke')
  })
  t.equal(logs.find('a piped source failed')[0]!.err.message, 'source broke')
  const c = await subscribe(url + '/')
  await within(c.closed, 2000, 'the stream to end')
  t.same(c.frames.map((f) => f.data), [undefined, 'a'], 'priming, the event; the marker sends nothing')
  await app.sse.pipe('g', 'not iterable' as never)
  t.equal(logs.find('a piped source failed').length, 2, 'a source that is not iterable is logged too')
})

t.test('eventsource@4 stops at the end of a piped stream', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const requests: Array<string | undefined> = []
  app.get('/job', (req, reply) => {
    requests.push(req.headers['last-event-id'] as string | undefined)
    return reply.sseSubscribe('job', { from: 'oldest', retry: 10 })
  })
  const url = await listen(app)
  t.teardown(() => app.server.closeAllConnections())
  await app.sse.pipe('job', [{ data: '1' }, { data: '2' }])
  const es = new EventSource(url + '/job')
  t.teardown(() => es.close())
  const got: string[] = []
  es.onmessage = (e) => got.push(e.data)
  const stopped = deferred()
  es.onerror = () => { if (es.readyState === es.CLOSED) stopped.resolve() }
  // Bounded: a client that does not stop is seen reconnecting within this.
  const stop = await within(stopped.promise, 3000, 'EventSource to stop').then(() => true, () => false)
  es.close()
  t.ok(stop, 'EventSource stopped by itself')
  t.same(got, ['1', '2'])
  t.ok(requests.length <= 2, `${requests.length} requests, with Last-Event-ID ${JSON.stringify([...new Set(requests)])}`)
})

t.test('sseSubscribe refuses bad topics before taking the reply; Fastify answers the typed error', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const cases: Array<[string, unknown]> = [['empty', []], ['dup', ['a', 'a']], ['many', Array.from({ length: 257 }, (_, i) => `t${i}`)], ['bad', ['a', 'b\nc']], ['num', 42]]
  for (const [path, topics] of cases) app.get('/' + path, (_req, reply) => reply.sseSubscribe(topics as string[]))
  app.get('/opts', (_req, reply) => reply.sseSubscribe('a', { policy: 'conflate' }))
  const url = await listen(app)
  for (const [path] of cases) {
    const res = await fetch(`${url}/${path}`)
    t.equal(res.status, 500, path)
    t.equal((await res.json() as { code: string }).code, 'FST_ERR_SSE_INVALID_TOPIC', path)
  }
  const res = await fetch(`${url}/opts`)
  t.equal((await res.json() as { code: string }).code, 'FST_ERR_SSE_INVALID_OPTION', 'conflate without a key')
})

t.test('a subscription that arrives while the server closes gets the 503 of a late stream', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const gate = holdUntilClosing(app)
  app.get('/', async (_req, reply) => {
    await gate.hold()
    return reply.sseSubscribe('t')
  })
  const url = await listen(app)
  const c = await Promise.all([subscribe(url + '/'), gate.close(1).then(({ closed }) => closed)])
  await c[0].closed
  t.equal(c[0].status, 503)
  t.equal(c[0].headers['retry-after'], '5')
})

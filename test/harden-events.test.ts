// What a source yields is read as `for await` reads it, and a PreparedEvent is either genuine or
// refused loudly: nothing vanishes while it is counted or reported as sent.
import t from 'tap'
import { build, isEnd, listen, open } from './helpers/stream.js'
import { PreparedEvent, prepareEvent } from '../index.js'
import * as built from '../dist/index.js'

t.test('a sync iterable that yields promises sends what they resolve to', async (t) => {
  const { app, logs } = await build(t)
  app.get('/', (_req, reply) => reply.sse([Promise.resolve({ data: 'a' }), { data: 'b' }, Promise.resolve({ id: 3, data: 'c' })] as never))
  const client = await open(await listen(app) + '/')
  await client.closed
  t.equal(client.text, ': heartbeat=15000\ndata: a\n\ndata: b\n\nid: 3\ndata: c\n\n')
  t.equal((await logs.waitFor(isEnd)).sse.events, 3)
})

t.test('a sync value that rejects ends the stream as error and closes the iterator', async (t) => {
  const { app, logs } = await build(t)
  let returned = false
  app.get('/', (_req, reply) => reply.sse((function * () {
    try {
      yield { data: 'a' }
      yield Promise.reject(new Error('no value'))
      yield { data: 'never' }
    } finally { returned = true }
  })() as never))
  const client = await open(await listen(app) + '/')
  await client.closed
  t.equal(client.text, ': heartbeat=15000\ndata: a\n\n')
  t.equal((await logs.waitFor(isEnd)).sse.reason, 'error')
  t.ok(returned, 'the generator was closed, as for await closes it')
})

t.test('done is tested for truthiness, as for await does', async (t) => {
  const { app, logs } = await build(t, { errorEvent: true })
  app.get('/', (_req, reply) => {
    let n = 0
    return reply.sse({
      [Symbol.asyncIterator] () { return this },
      async next () { return n++ === 0 ? { done: 0, value: { data: 'one' } } : { done: 1, value: undefined } }
    } as never)
  })
  const client = await open(await listen(app) + '/')
  await client.closed
  t.equal(client.text, ': heartbeat=15000\ndata: one\n\n', 'no error event')
  t.equal((await logs.waitFor(isEnd)).sse.reason, 'done')
})

t.test('only frames that carry bytes are counted as events', async (t) => {
  const { app, logs } = await build(t)
  app.get('/', (_req, reply) => reply.sse(async function * () {
    yield {}
    yield { data: 'x' }
    yield { event: undefined }
  } as never))
  const client = await open(await listen(app) + '/')
  await client.closed
  t.equal(client.text, ': heartbeat=15000\ndata: x\n\n')
  t.equal((await logs.waitFor(isEnd)).sse.events, 1)
})

t.test('a sink sends nothing and counts nothing for an empty event', async (t) => {
  const { app, logs } = await build(t)
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    void sink.send({}).then((ok) => sink.send({ data: String(ok) })).then(() => sink.end())
  })
  const client = await open(await listen(app) + '/')
  await client.closed
  t.equal(client.text, ': heartbeat=15000\ndata: true\n\n')
  t.equal((await logs.waitFor(isEnd)).sse.events, 1)
})

t.test('PreparedEvent: genuine ones are written, copies and forgeries are refused loudly', async (t) => {
  const genuine = prepareEvent({ event: 'tick', data: { n: 1 } })
  const fakes: Record<string, unknown> = {
    'a structuredClone() copy': structuredClone(genuine),
    'a forgery on the prototype': Object.create(PreparedEvent.prototype, { frame: { value: 'data: evil\n\n', enumerable: true } }),
    'one made by another copy of the package': built.prepareEvent({ event: 'tick', data: { n: 1 } })
  }
  t.equal(genuine.frame, 'event: tick\ndata: {"n":1}\n\n')
  t.ok(Object.isFrozen(genuine))
  t.throws(() => new (PreparedEvent as unknown as new (token: symbol, frame: string) => PreparedEvent)(Symbol('x'), 'data: evil\n\n'), TypeError)
  for (const [name, fake] of Object.entries(fakes)) {
    t.test(name, async (t) => {
      const { app, logs } = await build(t)
      let thrown: unknown
      app.get('/sink', (_req, reply) => {
        const sink = reply.sseSink()
        try { void sink.send(fake as PreparedEvent) } catch (error) { thrown = error }
        void sink.send(genuine).then(() => sink.end())
      })
      app.get('/source', (_req, reply) => reply.sse([genuine, fake as PreparedEvent]))
      const url = await listen(app)
      const sinkClient = await open(url + '/sink')
      await sinkClient.closed
      t.match(thrown, { code: 'FST_ERR_SSE_INVALID_EVENT', message: /another copy of fastify-sse-stream, or a clone of one/ })
      t.equal(sinkClient.text, ': heartbeat=15000\n' + genuine.frame, 'the sink carries on with the genuine event')
      const sourceClient = await open(url + '/source')
      await sourceClient.closed
      t.equal(sourceClient.text, ': heartbeat=15000\n' + genuine.frame)
      const ends = logs.lines.filter(isEnd)
      t.same(ends.map((l) => l.sse.reason).sort(), ['ended', 'error'])
    })
  }
})

t.test('a sink that has ended resolves false for an empty event, as for any other', async (t) => {
  const { app } = await build(t)
  const results: boolean[] = []
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    sink.end()
    void sink.send({}).then((ok) => results.push(ok))
  })
  const client = await open(await listen(app) + '/')
  await client.closed
  t.same(results, [false])
})

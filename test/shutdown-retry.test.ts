// The shutdownRetry option: a stream ended by a shutdown ends with `retry: <ms>`, drawn from a
// window, so that a deploy does not bring every client back in the same second (peers.md,
// production failure 8: reconnect storms after a deploy). The line has no blank line of its own,
// so fetch-event-source fires no empty message; the field takes effect as soon as it is read.
import t from 'tap'
import { once } from 'node:events'
import { EventSource } from 'eventsource'
import Fastify from 'fastify'
import sse from '../index.js'
import { build, deferred, isEnd, listen, open, splitShutdownRetry } from './helpers/stream.js'
import { within } from './helpers/http.js'

t.test('a per-call window is used as given; [n, n] sends exactly n', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  app.get('/', (_req, reply) => reply.sse(async function * ({ signal }) {
    yield { id: 1, data: 'hello' }
    await once(signal, 'abort').catch(() => {})
    yield { event: 'bye', data: 'restarting' }
  }, { shutdownRetry: [750, 750] }))
  const client = await open(await listen(app) + '/')
  await client.waitFor('data: hello\n\n')
  await app.close()
  await client.closed
  t.equal(client.text, 'id: 1\ndata: hello\n\nevent: bye\ndata: restarting\n\nretry: 750\n')
})

t.test('false sends nothing after the farewell; a sink ends the same way', async (t) => {
  const { app } = await build(t, { heartbeat: false, shutdownRetry: false })
  app.get('/source', (_req, reply) => reply.sse(async function * ({ signal }) {
    yield { data: 'hello' }
    await once(signal, 'abort').catch(() => {})
  }))
  app.get('/sink', (_req, reply) => {
    const sink = reply.sseSink()
    void sink.send({ data: 'hello' })
    sink.signal.addEventListener('abort', () => sink.end())
  })
  const url = await listen(app)
  const clients = await Promise.all([open(url + '/source'), open(url + '/sink')])
  await Promise.all(clients.map((c) => c.waitFor('data: hello\n\n')))
  await app.close()
  for (const client of clients) {
    await client.closed
    t.equal(client.text, 'data: hello\n\n')
  }
})

t.test('only a shutdown sends it: a source that finishes, or a sink that ends, does not', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  app.get('/source', (_req, reply) => reply.sse([{ data: 'only' }]))
  app.get('/sink', (_req, reply) => {
    const sink = reply.sseSink()
    void sink.send({ data: 'only' })
    sink.end()
  })
  const url = await listen(app)
  for (const path of ['/source', '/sink']) {
    const client = await open(url + path)
    await client.closed
    t.equal(client.text, 'data: only\n\n', path)
  }
})

t.test('a client that leaves during the grace period is sent nothing more', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, shutdownGrace: 5000 })
  const aborted = deferred()
  app.get('/', (_req, reply) => reply.sse(async function * ({ signal }) {
    yield { data: 'hello' }
    await once(signal, 'abort').catch(() => {})
    aborted.resolve()
    await new Promise(() => {}) // no farewell: the client leaves first
  }))
  const client = await open(await listen(app) + '/')
  await client.waitFor('data: hello\n\n')
  const closing = app.close()
  await aborted.promise
  client.destroy()
  await within(closing, 2000, 'app.close()')
  const end = await logs.waitFor(isEnd)
  t.equal(end.sse.reason, 'shutdown')
  t.equal(end.sse.bytes, Buffer.byteLength('data: hello\n\n'), 'no retry line was written to the gone client')
})

t.test('the npm eventsource client waits the delay it was given before it comes back', async (t) => {
  // The first server ends the stream with retry: 400; a second one on the same port sees the
  // reconnect, with its Last-Event-ID, about 400 ms after the client saw the first stream end.
  const first = Fastify()
  await first.register(sse, { heartbeat: false, shutdownRetry: [400, 400] })
  first.get('/', (_req, reply) => reply.sse(async function * ({ signal }) {
    yield { id: 'a1', data: 'hello' }
    await once(signal, 'abort').catch(() => {})
  }))
  const url = await listen(first)
  const port = Number(new URL(url).port)
  const es = new EventSource(url + '/')
  t.teardown(() => es.close())
  const hello = deferred()
  const messages: string[] = []
  es.onmessage = (e) => { messages.push(e.data); hello.resolve() }
  let dropped: number | undefined // when the client saw the stream end
  es.onerror = () => { dropped ??= performance.now() }
  await within(hello.promise, 2000, 'the first event')

  const second = Fastify()
  t.teardown(() => second.close())
  await second.register(sse, { heartbeat: false })
  const reconnect = deferred<{ at: number, lastEventId: string | undefined }>()
  second.get('/', (request, reply) => {
    reconnect.resolve({ at: performance.now(), lastEventId: request.lastEventId })
    return reply.sse([{ data: 'back' }])
  })
  await first.close()
  await second.listen({ host: '127.0.0.1', port })
  const { at, lastEventId } = await within(reconnect.promise, 3000, 'the reconnect')
  const waited = at - dropped!
  // Without the line the client would wait its default 3 s.
  t.ok(waited >= 380 && waited < 2000, `reconnected ${Math.round(waited)} ms after the end (retry: 400)`)
  t.equal(lastEventId, 'a1', 'with its Last-Event-ID')
  t.same(messages, ['hello'], 'the retry line dispatched no message')
})

// Regression: an `sse: true` route whose handler has returned and waits for a later reply.sse()
// (docs/api.md's `bus.once('ready', () => reply.sse(source))`) holds its request open with no
// bound. app.close() does not reach it: the preClose hook only knows opened streams, and
// Fastify's server.close() waits for the in-flight request. So while the event has not come,
// app.close() hangs for as long as the client stays, the very failure the README lists for peers
// ("fastify.close() hangs while a stream is open"). docs/lifecycle.md promises that a stream started
// while closing gets 503 with Retry-After; a waiting one gets nothing.
// Expected: app.close() resolves promptly and the waiting client gets 503 (or the stream's end).
import t from 'tap'
import { EventEmitter } from 'node:events'
import type { EventObject } from '../index.js'
import { build, deferred, listen } from './helpers/stream.js'
import { openStream, within } from './helpers/http.js'

t.test('app.close() does not wait forever on an sse: true handler still waiting for reply.sse()', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const bus = new EventEmitter()
  const waiting = deferred()
  app.get('/d', { sse: true }, async (_req, reply) => {
    bus.once('ready', () => { void reply.sse([{ data: 'late' }]) })
    waiting.resolve()
  })
  const client = openStream(await listen(app) + '/d')
  await waiting.promise
  const closed = app.close()
  const outcome = await within(closed.then(() => 'closed'), 2000, 'app.close()').catch((err: Error) => err.message)
  t.equal(outcome, 'closed', 'app.close() resolves while a handler waits')
  if (outcome === 'closed') {
    const res = await within(client.response, 1000, 'the response')
    t.equal(res.statusCode, 503, 'the waiting client is told to come back')
    t.equal(res.headers['retry-after'], '5')
    // The event that comes late must not throw FST_ERR_SSE_ALREADY_SENT out of its listener.
    t.doesNotThrow(() => bus.emit('ready'))
  }
  // Let everything go, so that the teardown's close ends.
  app.server.closeAllConnections()
  client.destroy()
  bus.removeAllListeners()
})

t.test('after that 503, a late reply.sse() or reply.sseSink() ends quietly', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const bus = new EventEmitter()
  const waiting = { sse: deferred(), sink: deferred(), fn: deferred() }
  app.get('/sse', { sse: true }, async (_req, reply) => {
    bus.once('ready', (results: unknown[]) => {
      // An iterator that says when it is returned (a generator not yet started runs no finally).
      const source: AsyncIterableIterator<EventObject> = {
        [Symbol.asyncIterator] () { return this },
        async next () { return { done: false, value: { data: 'never' } } },
        async return () { results.push('released'); return { done: true, value: undefined } }
      }
      results.push(reply.sse(source))
    })
    waiting.sse.resolve()
  })
  app.get('/fn', { sse: true }, async (_req, reply) => {
    bus.once('ready', (results: unknown[]) => {
      results.push(reply.sse(() => { results.push('called'); return [] }))
    })
    waiting.fn.resolve()
  })
  app.get('/sink', { sse: true }, async (_req, reply) => {
    bus.once('ready', (results: unknown[]) => {
      const sink = reply.sseSink()
      results.push(sink.closed, sink.signal.aborted, sink.send({ data: 'never' }))
    })
    waiting.sink.resolve()
  })
  const url = await listen(app)
  const clients = ['/sse', '/fn', '/sink'].map((path) => openStream(url + path))
  t.teardown(() => { for (const client of clients) client.destroy() })
  await Promise.all(Object.values(waiting).map((d) => d.promise))
  await within(app.close(), 2000, 'app.close()')
  for (const client of clients) t.equal((await client.response).statusCode, 503)
  const results: unknown[] = []
  bus.emit('ready', results)
  const [sse, fn, closed, aborted, sent] = results.filter((r) => r !== 'released')
  t.equal(await sse, undefined, 'reply.sse() resolves')
  t.ok(results.includes('released'), 'the generator given to reply.sse() is released')
  t.equal(await fn, undefined)
  t.notOk(results.includes('called'), 'a source function is never called')
  t.equal(closed, true, 'the sink is closed')
  t.equal(aborted, true, 'its signal has aborted')
  t.equal(await sent, false, 'send() resolves false')
})

t.test('a handler that returns once the server has begun closing gets the 503 at once', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const gate = deferred()
  const started = deferred()
  app.get('/', { sse: true }, async () => {
    started.resolve()
    await gate.promise
  })
  // Runs after the plugin's own preClose hook, which was added first.
  app.addHook('preClose', (done) => { gate.resolve(); done() })
  const client = openStream(await listen(app) + '/')
  t.teardown(() => client.destroy())
  await started.promise
  await within(app.close(), 2000, 'app.close()')
  const res = await within(client.response, 1000, 'the response')
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '5')
})

// Regression: the README's own source pattern (`await sleep(ms, undefined, { signal })`, "rejects at
// once when the client goes") turns every graceful shutdown into a source failure. On
// app.close() the signal aborts, sleep() rejects with an AbortError whose cause is the signal's
// reason, and the pump hands that to stream.fail(): an `error`-level "the event source failed"
// line for every open stream, and with `errorEvent: true` an `event: error` /
// "Internal Server Error" frame as each client's last frame, where docs/lifecycle.md promises a
// farewell and a clean end. (When the client leaves, the same rejection is ignored, because the
// stream is already closed: only shutdown, which keeps the stream open for the grace period, is hit.)
// Expected: a rejection caused by the stream's own abort is not a source error.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { build, isEnd, listen, open, splitShutdownRetry } from './helpers/stream.js'

t.test('a source that ends because its signal aborted for shutdown is not a failure', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, errorEvent: true, shutdownGrace: 500 })
  app.get('/ticks', (_req, reply) => reply.sse(async function * ({ signal }) {
    for (let n = 1; ; n++) {
      yield { id: n, event: 'tick', data: { n } }
      await sleep(1000, undefined, { signal }) // as in the README's "An async generator"
    }
  }))
  const client = await open(await listen(app) + '/ticks')
  await client.waitFor('id: 1\n')
  await app.close()
  await client.closed
  t.equal((await logs.waitFor(isEnd)).sse.reason, 'shutdown')
  t.notMatch(client.text, /event: error/, 'no error event sent to the client on a graceful shutdown')
  t.same(logs.lines.filter((l) => l.level >= 50).map((l) => l.msg), [], 'nothing logged at error level')
})

t.test('a source that throws its own signal reason in the grace period ends as shutdown too', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, errorEvent: true, shutdownGrace: 500 })
  app.get('/', (_req, reply) => reply.sse(async function * ({ signal }) {
    yield { data: 'first' }
    // What fetch() given the signal rejects with, and what throwIfAborted() throws.
    await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
    signal.throwIfAborted()
  }))
  const client = await open(await listen(app) + '/')
  await client.waitFor('data: first\n\n')
  await app.close()
  await client.closed
  t.equal((await logs.waitFor(isEnd)).sse.reason, 'shutdown')
  t.notMatch(client.text, /event: error/)
  t.same(logs.lines.filter((l) => l.level >= 50).map((l) => l.msg), [])
})

t.test('any other error in the grace period is still a failure', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, errorEvent: true, shutdownGrace: 500 })
  for (const [path, thrown] of [['/error', new Error('db down')], ['/string', 'not an error'], ['/null', null]] as const) {
    app.get(path, (_req, reply) => reply.sse(async function * ({ signal }) {
      yield { data: 'first' }
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
      throw thrown
    }))
  }
  const url = await listen(app)
  const clients = await Promise.all(['/error', '/string', '/null'].map((path) => open(url + path)))
  await Promise.all(clients.map((client) => client.waitFor('data: first\n\n')))
  await app.close()
  await Promise.all(clients.map((client) => client.closed))
  for (const client of clients) t.match(splitShutdownRetry(client.text).frames, /event: error\ndata: Internal Server Error\n\n$/)
  // The end is logged as shutdown, as every end within the grace period is.
  t.same(logs.lines.filter(isEnd).map((l) => l.sse.reason), ['shutdown', 'shutdown', 'shutdown'])
  t.same(logs.lines.filter((l) => l.level >= 50).map((l) => l.msg), Array(3).fill('fastify-sse-stream: the event source failed'),
    'each failure logged at error level')
})

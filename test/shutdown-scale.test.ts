// Shutdown at scale (issue 13): a stream waits out shutdownGrace only when something can send a
// farewell on it, the grace periods share one timer per value rather than one per stream, and
// the wait for every response to leave its socket is one wait.
import t from 'tap'
import { once } from 'node:events'
import type { SseSink } from '../index.js'
import { build, deferred, isEnd, listen, open, splitShutdownRetry } from './helpers/stream.js'
import { within } from './helpers/http.js'

const timeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length

t.test('a sink whose signal was never read ends at once at shutdown, whatever the grace period', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, shutdownGrace: 5000, shutdownRetry: [3000, 3000] })
  app.get('/', (_req, reply) => { void reply.sseSink().send({ data: 'hello' }) })
  const url = await listen(app) + '/'
  const clients = await Promise.all([open(url), open(url), open(url)])
  await Promise.all(clients.map((c) => c.waitFor('data: hello\n\n')))
  const t0 = performance.now()
  await within(app.close(), 4000, 'app.close()')
  const took = performance.now() - t0
  t.ok(took < 2500, `app.close() took ${Math.round(took)} ms of a 5000 ms grace`)
  for (const client of clients) {
    await within(client.closed, 1000, 'the response to end')
    t.equal(client.text, 'data: hello\n\nretry: 3000\n', 'the event, then the shutdown\'s retry line')
  }
  t.same(logs.lines.filter(isEnd).map((l) => l.sse.reason), ['shutdown', 'shutdown', 'shutdown'])
})

t.test('a sink whose signal was never read sends what it queued before it ends at shutdown', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, writeTimeout: false, shutdownGrace: 5000, shutdownRetry: [3000, 3000] })
  const queued = deferred<number>()
  const big = 'x'.repeat(64 * 1024)
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    // Unawaited sends into a socket that nobody reads: the sink queues them.
    let i = 0
    while (sink.pending === 0 && i < 10_000) void sink.send({ id: String(i++), data: big })
    for (let j = 0; j < 5; j++) void sink.send({ id: String(i++), data: big })
    queued.resolve(i)
  })
  const client = await open(await listen(app) + '/', { read: false })
  const sent = await queued.promise
  const t0 = performance.now()
  const closing = app.close()
  // Nothing ends while the queue waits for the reader; it reads now.
  client.resume()
  await within(closing, 4000, 'app.close()')
  t.ok(performance.now() - t0 < 4000, 'the grace period was not waited out')
  await within(client.closed, 2000, 'the response to end')
  const { frames, retry } = splitShutdownRetry(client.text)
  t.equal(retry, 3000, 'the retry line is the last line')
  t.ok(frames.endsWith(`id: ${sent - 1}\ndata: ${big}\n\n`), 'the last queued event arrived whole before it')
  t.equal(frames.split('\n\n').length - 1, sent, 'every event sent arrived')
  t.equal(logs.lines.filter(isEnd)[0]?.sse.reason, 'shutdown')
})

t.test('a shutdown arms one grace timer for all the streams waiting out the same period', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, shutdownGrace: 400 })
  const n = 40
  const aborted: Array<Promise<unknown>> = []
  const ready: Array<Promise<unknown>> = []
  app.get('/', (_req, reply) => {
    const sink: SseSink = reply.sseSink()
    // Read, so that the stream gets its grace period; its farewell never comes.
    aborted.push(once(sink.signal, 'abort'))
    ready.push(sink.send({ data: 'hello' }))
  })
  const url = await listen(app) + '/'
  const clients = await Promise.all(Array.from({ length: n }, () => open(url)))
  await Promise.all(clients.map((c) => c.waitFor('data: hello\n\n')))
  const before = timeouts()
  const t0 = performance.now()
  const closing = app.close()
  await Promise.all(aborted)
  await new Promise((resolve) => setImmediate(resolve))
  const during = timeouts() - before
  // Node's own HTTP timers may come and go beside it; one per stream would be 40.
  t.ok(during <= 3, `${during} more Timeout(s) during the grace period, for ${n} streams`)
  await within(closing, 3000, 'app.close()')
  const took = performance.now() - t0
  t.ok(took >= 380, `the grace period was waited out (${Math.round(took)} ms)`)
  const ends = logs.lines.filter(isEnd)
  t.equal(ends.length, n)
  t.ok(ends.every((l) => l.sse.reason === 'shutdown'), 'every stream ended as shutdown')
})

t.test('streams given different grace periods each end when theirs is over', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, shutdownGrace: 100 })
  const started = { short: deferred(), long: deferred() }
  const source = (name: 'short' | 'long') => async function * (): AsyncGenerator<{ data: string }> {
    // It ignores its signal and carries on: only the end of its grace period stops it.
    for (let i = 0; i < 1000; i++) {
      yield { data: `${name} ${i}` }
      if (i === 0) started[name].resolve()
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  app.get('/short', (_req, reply) => reply.sse(source('short')))
  app.get('/long', (_req, reply) => reply.sse(source('long'), { shutdownGrace: 700 }))
  const url = await listen(app)
  const short = await open(url + '/short')
  const long = await open(url + '/long')
  await Promise.all([started.short.promise, started.long.promise])
  const t0 = performance.now()
  const closing = app.close()
  await within(short.closed, 2000, 'the short stream to end')
  const shortAt = performance.now() - t0
  await within(long.closed, 2000, 'the long stream to end')
  const longAt = performance.now() - t0
  await within(closing, 2000, 'app.close()')
  t.ok(shortAt >= 90 && shortAt < 650, `the stream with 100 ms ended at ${Math.round(shortAt)} ms`)
  t.ok(longAt >= 680, `the stream with 700 ms ended at ${Math.round(longAt)} ms`)
  t.ok(splitShutdownRetry(long.text).frames.endsWith('\n\n'), 'between two frames')
  t.same(logs.lines.filter(isEnd).map((l) => l.sse.reason), ['shutdown', 'shutdown'])
})

t.test('a stream that another stream\'s abort listener ends is over before its own turn comes', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, shutdownGrace: 5000, shutdownRetry: [3000, 3000] })
  const sinks: SseSink[] = []
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    // The first sink's farewell ends every other sink too (say, a room that closes as a whole).
    if (sinks.length === 0) {
      sink.signal.addEventListener('abort', () => {
        void sink.send({ data: 'bye' })
        for (const s of sinks) s.end()
      })
    }
    sinks.push(sink)
    void sink.send({ data: 'hello' })
  })
  const url = await listen(app) + '/'
  const first = await open(url)
  await first.waitFor('data: hello\n\n')
  const second = await open(url)
  await second.waitFor('data: hello\n\n')
  const t0 = performance.now()
  await within(app.close(), 4000, 'app.close()')
  t.ok(performance.now() - t0 < 2500, 'no grace period waited out')
  await within(Promise.all([first.closed, second.closed]), 2000, 'both responses to end')
  t.equal(first.text, 'data: hello\n\ndata: bye\n\nretry: 3000\n')
  // Ended by the app before its own signal aborted: an ordinary end, as at any other time.
  t.equal(second.text, 'data: hello\n\n')
  t.same(logs.lines.filter(isEnd).map((l) => l.sse.reason), ['shutdown', 'ended'])
})

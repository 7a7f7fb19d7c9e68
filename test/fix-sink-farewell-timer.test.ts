// Regression: SseStream.shutdown() aborts the signal first and arms the grace timer after. Abort
// listeners run synchronously, so a sink that says its farewell and calls end() from its abort
// listener (the farewell docs/lifecycle.md documents) closes the stream inside abort(), before the
// timer exists. close() then has no timer to clear, and shutdown() arms a ref'd one afterwards:
// it outlives app.close() by shutdownGrace ms and keeps the process alive that long.
import t from 'tap'
import type { SseSink } from '../index.js'
import { build, deferred, isEnd, listen, open, splitShutdownRetry } from './helpers/stream.js'

const timeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length

t.test('a sink that ends in its abort listener leaves no timer behind after app.close()', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, shutdownGrace: 3000 })
  const ready = deferred<SseSink>()
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    sink.signal.addEventListener('abort', () => {
      void sink.send({ event: 'bye', data: 'restarting' })
      sink.end()
    })
    ready.resolve(sink)
  })
  const client = await open(await listen(app) + '/')
  const sink = await ready.promise
  await sink.send({ data: 'hello' })
  await client.waitFor('data: hello\n\n')
  const before = timeouts()

  const t0 = performance.now()
  await app.close()
  t.ok(performance.now() - t0 < 2000, 'app.close() returns at once')
  await client.closed
  t.match(splitShutdownRetry(client.text).frames, /event: bye\ndata: restarting\n\n$/, 'the farewell is the last frame')
  t.equal(logs.lines.filter(isEnd)[0]?.sse.reason, 'shutdown')
  // Expected: no ref'd timer left (the stream is over). Actual: one 3 s grace timer, which holds the process that long.
  t.equal(timeouts(), before, 'no ref\'d Timeout outlives app.close()')
})

// Regression: close() clears the write deadline timer, then writes the shutdown's
// `retry:` line through write(). When that line is the write that takes the socket's buffer past
// its high-water mark, write() arms a fresh deadline timer for a stream that is already closed:
// its 'drain' listener is gone, so nothing clears it, and writeTimeout ms later stall() logs
// "the client stopped reading; closing the stream" at warn level for a client that read
// everything and a stream that ended cleanly (and the stream is kept alive until then).
import t from 'tap'
import type { Socket } from 'node:net'
import { build, isEnd, listen, open } from './helpers/stream.js'
import { deferred } from './helpers/http.js'

t.test('the shutdown retry line does not leave a stall timer behind', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, writeTimeout: 300, shutdownRetry: [10000, 10000] })
  const opened = deferred()
  app.get('/', (req, reply) => {
    const sink = reply.sseSink()
    const socket = req.raw.socket as Socket
    sink.signal.addEventListener('abort', () => {
      // Fill this tick's corked buffer to just below 16384 bytes: every send is accepted
      // (write() returns true), so the stream is not backpressured when it ends.
      // (Bigger comments than 'x': fewer than 512 writes; fix-shutdown-flush.test.ts shows what happens past that.)
      const pad = ': ' + 'x'.repeat(60)
      while (socket.writableLength < 16384 - 18 - 72) void sink.comment(pad.slice(2))
      while (socket.writableLength < 16384 - 18) void sink.comment('x')
      sink.end() // close('ended' -> 'shutdown') writes `retry: 10000\n` (18 bytes with chunk framing)
    })
    void sink.send({ data: 'hello' })
    opened.resolve()
  })
  const client = await open(await listen(app) + '/')
  await opened.promise
  await client.waitFor('data: hello\n\n')
  await app.close()
  await client.closed
  t.match(client.text, /: x\nretry: 10000\n$/, 'the client read it all, the retry line last')
  t.equal(logs.lines.filter(isEnd)[0]?.sse.reason, 'shutdown')
  // An absence, bounded: the stall timer (if any) fires at writeTimeout (300 ms).
  const stalled = await logs.waitFor((l) => /stopped reading/.test(String(l.msg)), 1000).then((l) => l, () => undefined)
  t.equal(stalled, undefined, 'no "client stopped reading" warning after a clean end')
})

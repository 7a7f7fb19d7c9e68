// Regression: close() clears the write deadline timer, then writes the shutdown's
// `retry:` line through write(). When that line is the write that takes the socket's buffer past
// its high-water mark, write() arms a fresh deadline timer for a stream that is already closed:
// its 'drain' listener is gone, so nothing clears it, and writeTimeout ms later stall() logs
// "the client stopped reading; closing the stream" at warn level for a client that read
// everything and a stream that ended cleanly (and the stream is kept alive until then).
import t from 'tap'
import type { ServerResponse } from 'node:http'
import { build, isEnd, listen, open } from './helpers/stream.js'
import { deferred } from './helpers/http.js'

t.test('the shutdown retry line does not leave a stall timer behind', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, writeTimeout: 300, shutdownRetry: [10000, 10000] })
  const opened = deferred()
  const sized = deferred<{ before: number, retry: number, limit: number, accepted: boolean }>()
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    const res: ServerResponse = reply.raw
    sink.signal.addEventListener('abort', () => {
      // Fill this tick's buffer to just below the response's high-water mark, so that every send
      // is accepted (write() returns true) and the stream is not backpressured when it ends, but
      // the 13-byte `retry: 10000\n` line then takes it past the mark. The sizes are measured on
      // the response, not assumed: what a write adds to res.writableLength depends on the Node
      // version (Node 20 and 22 frame every write as its own chunk in the socket's buffer; Node 24
      // holds a tick's writes in the response and frames them as one chunk), and so does the mark
      // itself (16 KiB on Node 20, 64 KiB on 22 and later).
      const limit = res.writableHighWaterMark
      const cost = (text: string): number => {
        const before = res.writableLength
        void sink.comment(text)
        return res.writableLength - before
      }
      const pad = 'x'.repeat(500) // fewer, larger writes: fix-shutdown-flush.test.ts shows what many small ones do
      const padCost = cost(pad) // the tick's first write (on Node 24 it also counts the chunk framing)
      const retry = cost('x'.repeat(10)) // `: xxxxxxxxxx\n` is 13 bytes, as the retry line is
      const x = cost('x')
      // Bounded: 64 KiB takes about 130 pads, then fewer than 130 x's (each adds x < retry bytes).
      for (let i = 0; i < 1000 && res.writableLength < limit - retry - padCost; i++) void sink.comment(pad)
      for (let i = 0; i < 1000 && res.writableLength < limit - retry; i++) void sink.comment('x')
      const before = res.writableLength
      const accepted = !(res.writableNeedDrain || res.socket!.writableNeedDrain) && x < retry
      sink.end() // close('ended' -> 'shutdown') writes the retry line
      sized.resolve({ before, retry, limit, accepted })
    })
    void sink.send({ data: 'hello' })
    opened.resolve()
  })
  const client = await open(await listen(app) + '/')
  await opened.promise
  await client.waitFor('data: hello\n\n')
  await app.close()
  await client.closed
  const { before, retry, limit, accepted } = await sized.promise
  t.ok(accepted, 'every comment was accepted: the stream was not backpressured when it ended')
  t.ok(before < limit && before + retry >= limit, `the retry line took the buffer past its high-water mark (${before} + ${retry} B, mark ${limit} B)`)
  t.match(client.text, /: x\nretry: 10000\n$/, 'the client read it all, the retry line last')
  t.equal(logs.lines.filter(isEnd)[0]?.sse.reason, 'shutdown')
  // An absence, bounded: the stall timer (if any) fires at writeTimeout (300 ms).
  const stalled = await logs.waitFor((l) => /stopped reading/.test(String(l.msg)), 1000).then((l) => l, () => undefined)
  t.equal(stalled, undefined, 'no "client stopped reading" warning after a clean end')
})

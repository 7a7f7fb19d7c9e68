// Regression: a sink that overflows in the tick its stream opened (a producer that does not await)
// ends the stream with res.destroy(), after releasing what that tick wrote, the head first. Node 20
// and 22 hold a tick's writes corked in the socket; Node 24 corks the response itself (res.cork())
// and keeps the tick's chunks, and the head with them, in the response's own buffer, which
// uncorking the socket does not reach. There destroy() dropped them: the client got no response
// at all, only "socket hang up" (ECONNRESET), instead of a 200 and then a cut stream to resume.
import t from 'tap'
import { build, isEnd, listen } from './helpers/stream.js'
import { openStream } from './helpers/http.js'

const KiB64 = 'y'.repeat(64 * 1024)

// Also when the app corked the response itself to batch its writes (the only way the response is
// corked on Node 22): close() uncorks the response, not only its socket.
for (const appCorks of [false, true]) {
  t.test(`a stream that overflows in the tick it opened sends its head before the reset${appCorks ? ' (the app corked the response)' : ''}`, async (t) => {
    const { app, logs } = await build(t, { heartbeat: false, queueLimit: 2 })
    app.get('/', (_req, reply) => {
      if (appCorks) reply.raw.cork()
      const sink = reply.sseSink()
      // The first send fills the buffer, the next two are queued, the fourth overflows.
      for (let i = 0; i < 10 && !sink.closed; i++) void sink.send({ id: i, data: KiB64 })
    })
    const client = openStream(await listen(app) + '/')
    const res = await client.response
    t.equal(res.statusCode, 200, 'the head arrived')
    t.equal(res.headers['content-type'], 'text/event-stream')
    await t.rejects(client.ended, 'then the stream was cut, not ended')
    t.ok(`id: 0\ndata: ${KiB64}\n\n`.startsWith(client.body), `what arrived is the start of the first event (${client.body.length} chars)`)
    t.equal((await logs.waitFor(isEnd)).sse.reason, 'overflow')
  })
}

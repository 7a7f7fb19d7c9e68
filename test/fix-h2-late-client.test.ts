// Regression: HTTP/2. If the client resets its stream while an async handler awaits (a database
// call, say), the late reply.sse() is never told: open() checks `res.destroyed`, which
// Http2ServerResponse does not have on Node 20 (it is undefined), and the response's 'close'
// has already fired. The source is pulled, ctx.signal never aborts, and the reply.sse() promise
// settles only when writeTimeout fires (30 s by default; never with writeTimeout: false).
// HTTP/1 has a test for the same case (compat.test.ts "a late reply.sse() after the client left").
import t from 'tap'
import Fastify from 'fastify'
import http2 from 'node:http2'
import { once } from 'node:events'
import sse from '../index.js'
import { deferred } from './helpers/stream.js'
import { listen } from './helpers/http.js'

function within<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([p, new Promise<never>((_r, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })]).finally(() => clearTimeout(timer))
}

t.test('HTTP/2: a late reply.sse() after the client reset its stream settles at once', async (t) => {
  const app = Fastify({ http2: true })
  await app.register(sse, { writeTimeout: false, heartbeat: false, shutdownGrace: 0 })
  const arrived = deferred()
  const gone = deferred()
  const settled = deferred()
  let pulled = 0
  let signal: AbortSignal | undefined
  app.get('/', async (req, reply) => {
    req.raw.stream.once('close', () => gone.resolve())
    arrived.resolve()
    await gone.promise
    reply.sse((ctx) => {
      signal = ctx.signal
      return (async function * () {
        pulled++
        yield { data: 'x' }
        await once(ctx.signal, 'abort').catch(() => {})
      })()
    }).then(() => settled.resolve())
  })
  const session = http2.connect(await listen(app))
  session.on('error', () => {})
  t.teardown(async () => { session.destroy(); await app.close() })
  const req = session.request({ ':path': '/' })
  req.on('error', () => {})
  await arrived.promise
  req.close(http2.constants.NGHTTP2_CANCEL)
  await gone.promise
  await t.resolves(within(settled.promise, 1000, 'reply.sse() to settle'), 'settles without waiting for writeTimeout')
  t.equal(signal?.aborted, true, 'the signal aborted')
  t.equal(pulled, 0, 'the source was never pulled')
})

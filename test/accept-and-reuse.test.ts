// Conformance case 50, peers "Accept-header confusion": the Accept header is neither
// required nor negotiated: no Accept (curl), `*/*`, `application/json` and `text/event-stream` all
// get the same 200 stream. Also the Errors table (docs/errors.md): reply.sseSink() on a sent reply throws
// FST_ERR_SSE_ALREADY_SENT (only reply.sse() was tested).
import t from 'tap'
import Fastify from 'fastify'
import sse, { errors } from '../index.js'
import { deferred, get, listen, within } from './helpers/http.js'

t.test('any Accept header (or none) gets the stream', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse)
  app.get('/', (_req, reply) => reply.sse([{ id: 1, data: 'x' }]))
  const url = await listen(app)
  for (const accept of [undefined, '*/*', 'application/json', 'text/event-stream', 'text/html;q=0.9']) {
    const res = await get(url + '/', { headers: accept === undefined ? {} : { accept } })
    t.equal(res.status, 200, `${accept ?? 'no Accept'}: status`)
    t.equal(res.headers['content-type'], 'text/event-stream', `${accept ?? 'no Accept'}: type`)
    t.equal(res.body, ': heartbeat=15000\nid: 1\ndata: x\n\n', `${accept ?? 'no Accept'}: body`)
  }
})

t.test('reply.sseSink() on a reply already sent throws FST_ERR_SSE_ALREADY_SENT', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse)
  const caught = deferred<unknown>()
  app.get('/', (_req, reply) => {
    reply.send('plain')
    try { reply.sseSink(); caught.resolve(null) } catch (err) { caught.resolve(err) }
  })
  const url = await listen(app)
  t.equal((await get(url + '/')).body, 'plain')
  const err = await within(caught.promise, 1000, 'the call')
  t.ok(err instanceof errors.FST_ERR_SSE_ALREADY_SENT)
  t.match(err, { code: 'FST_ERR_SSE_ALREADY_SENT', statusCode: 500 })
})

t.test('reply.sseSink() twice: the second throws and the first stream is intact', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse)
  const caught = deferred<unknown>()
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    try { reply.sseSink(); caught.resolve(null) } catch (err) { caught.resolve(err) }
    void sink.send({ data: 'first' })
    sink.end()
  })
  const res = await get(await listen(app) + '/')
  t.match(await within(caught.promise, 1000, 'the call'), { code: 'FST_ERR_SSE_ALREADY_SENT' })
  t.equal(res.body, ': heartbeat=15000\ndata: first\n\n')
})

// Regression: on an `sse: true` route, createStream() wakes the waiting handler promise BEFORE the
// source is validated and before open(). When reply.sse() then throws (an invalid source, a source
// function that throws, an invalid per-call option, an invalid header at writeHead), Fastify sees
// the handler resolve with undefined on an unsent, unhijacked reply and answers an empty 200:
// exactly what `sse: true` exists to prevent ("never produces an empty reply").
import t from 'tap'
import http from 'node:http'
import { build, deferred, listen, open } from './helpers/stream.js'

t.test('sse: true route, late reply.sse() with a bad source: no empty 200', async (t) => {
  const { app } = await build(t)
  const caught = deferred<unknown>()
  app.get('/', { sse: true }, async (_req, reply) => {
    setImmediate(() => {
      try {
        reply.sse(() => { throw new Error('cannot subscribe') })
      } catch (err) { caught.resolve(err) }
    })
  })
  const client = await open(await listen(app) + '/')
  await client.closed
  t.match(await caught.promise, { message: 'cannot subscribe' }, 'the late call throws')
  t.not(client.res.statusCode, 200, `status ${client.res.statusCode ?? 0}, body ${JSON.stringify(client.text)}`)
})

t.test('sse: true route, late reply.sse() with an invalid option: answered, not left hanging', async (t) => {
  // Here resolveOptions() throws before the waiter is called: the handler promise never settles,
  // the request is never answered, and app.close() then hangs on that connection too.
  const { app } = await build(t)
  const caught = deferred<unknown>()
  app.get('/', { sse: true }, async (_req, reply) => {
    setImmediate(() => {
      try { reply.sse([{ data: 'x' }], { heartbeat: -1 }) } catch (err) { caught.resolve(err) }
    })
  })
  const req = http.get(await listen(app) + '/', { agent: false })
  req.on('error', () => {})
  t.teardown(() => { req.destroy() }) // runs before app.close() (teardowns run in reverse order)
  t.match(await caught.promise, { code: 'FST_ERR_SSE_INVALID_OPTION' })
  const res = await Promise.race([
    new Promise<http.IncomingMessage>((resolve) => req.once('response', resolve)),
    new Promise<null>((resolve) => setTimeout(() => resolve(null), 1000))
  ])
  t.ok(res !== null, 'a response head arrives within 1 s')
  if (res !== null) t.not(res.statusCode, 200)
})

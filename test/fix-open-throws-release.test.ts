// Regression: reply.sse(sourceFunction) calls the source function before stream.open(). When
// open() then throws (res.writeHead() refuses a header the app set, e.g. a user name with a
// character above U+00FF in a custom header), beforeOpen() rethrows and Fastify answers 500, but
// the stream was never opened nor closed: its signal never aborts, and what the function
// started is never released. Here the function waits for an event with the signal, as the README
// recommends: the emitter keeps that listener forever, and the function's promise (rejecting or
// not) is dropped. Expected: the signal aborts (the source is dropped) once reply.sse() throws.
import t from 'tap'
import { EventEmitter, once } from 'node:events'
import { build, deferred, listen } from './helpers/stream.js'
import { get, within } from './helpers/http.js'

t.test('a source function is released when reply.sse() throws before the head', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const feed = new EventEmitter()
  const started = deferred<AbortSignal>()
  app.get('/', (_req, reply) => {
    reply.header('x-user', 'Łukasz') // U+0141: res.writeHead() throws ERR_INVALID_CHAR
    return reply.sse(async ({ signal }) => {
      started.resolve(signal)
      await once(feed, 'ready', { signal })
      return [{ data: 'x' }]
    })
  })
  const res = await within(get(await listen(app) + '/'), 3000, 'the response')
  t.equal(res.status, 500, 'Fastify answers the error')
  const signal = await started.promise
  t.equal(signal.aborted, true, 'the source\'s signal aborted')
  t.equal(feed.listenerCount('ready'), 0, 'the source let go of the emitter')
  feed.emit('ready') // let the source settle either way
})

// @fastify/sse 0.6.0, as its README shows: an `sse: true` route, reply.sse.send(asyncIterable)
// for one stream; keepAlive(), send() per event and onClose() for fan-out.
import Fastify from 'fastify'
import fastifySse from '@fastify/sse'
import { events, readCount, HELLO } from '../lib/payload.js'

export async function start ({ hub }) {
  const app = Fastify()
  await app.register(fastifySse)
  app.get('/stream', { sse: true }, async (req, reply) => {
    await reply.sse.send(events(readCount(req.url, 200000)))
  })
  app.get('/sub', { sse: true }, async (req, reply) => {
    reply.sse.keepAlive()
    // String data would be JSON-quoted: @fastify/sse serialises the object for each client.
    const remove = hub.add((obj) => { reply.sse.send({ data: obj }).catch(() => {}) })
    reply.sse.onClose(remove)
    await reply.sse.send({ data: HELLO })
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    port: app.server.address().port,
    close: () => { app.server.closeAllConnections(); return app.close() }
  }
}

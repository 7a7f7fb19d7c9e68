// fastify-sse-v2 4.2.2, as its README shows: reply.sse(asyncIterable) for one stream (string
// data: other data crashes it), reply.sse(event) per event for fan-out, cleanup on socket close.
import Fastify from 'fastify'
import { FastifySSEPlugin } from 'fastify-sse-v2'
import { stringEvents, readCount, HELLO_JSON } from '../lib/payload.js'

export async function start ({ hub }) {
  const app = Fastify()
  await app.register(FastifySSEPlugin)
  app.get('/stream', (req, reply) => {
    reply.sse(stringEvents(readCount(req.url, 200000)))
  })
  app.get('/sub', (req, reply) => {
    reply.sse({ data: HELLO_JSON })
    const remove = hub.add((obj, json) => { reply.sse({ data: json }) })
    req.socket.on('close', remove)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    port: app.server.address().port,
    close: () => { app.server.closeAllConnections(); return app.close() }
  }
}

// better-sse 0.16.1 on Fastify, as its README and users do: reply.hijack(), then
// createSession(request.raw, reply.raw); session.iterate() for one stream, a channel for fan-out.
import Fastify from 'fastify'
import { createSession, createChannel } from 'better-sse'
import { values, readCount, HELLO } from '../lib/payload.js'

export async function start ({ hub }) {
  const app = Fastify()
  const channel = createChannel()
  // The broadcaster feeds the channel; the channel drops sessions that disconnect.
  hub.add((obj) => { channel.broadcast(obj) })
  app.get('/stream', async (req, reply) => {
    reply.hijack()
    const session = await createSession(req.raw, reply.raw)
    await session.iterate(values(readCount(req.url, 200000)))
    reply.raw.end()
  })
  app.get('/sub', async (req, reply) => {
    reply.hijack()
    const session = await createSession(req.raw, reply.raw)
    session.push(HELLO)
    channel.register(session)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    port: app.server.address().port,
    close: () => { app.server.closeAllConnections(); return app.close() }
  }
}

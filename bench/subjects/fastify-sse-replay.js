// @fastify/sse 0.6.0 with resume, as its README's "Message Replay" section shows: every event has
// an id and goes into a user-kept history; reply.sse.replay(cb) finds the client's Last-Event-ID
// with findIndex() and sends what came after it, one await reply.sse.send() at a time; then the
// client is subscribed like the fastify-sse subject's (send() per client, onClose() to remove).
// Only the resume storm uses it; the plain fastify-sse subject is @fastify/sse's fan-out figure.
import Fastify from 'fastify'
import fastifySse from '@fastify/sse'
import { HELLO } from '../lib/payload.js'

// Bounded like the hub subject's history.
const HISTORY = 1000

export async function start ({ hub }) {
  const app = Fastify()
  await app.register(fastifySse)
  const history = []
  const replies = new Set()
  let seq = 0
  hub.add((obj) => {
    const message = { id: String(++seq), data: obj }
    history.push(message)
    if (history.length > HISTORY) history.shift()
    for (const reply of replies) reply.sse.send(message).catch(() => {})
  })
  app.get('/sub', { sse: true }, async (req, reply) => {
    reply.sse.keepAlive()
    await reply.sse.replay(async (lastEventId) => {
      const startIndex = history.findIndex((m) => m.id === lastEventId)
      const toReplay = startIndex !== -1 ? history.slice(startIndex + 1) : history
      for (const message of toReplay) await reply.sse.send(message)
    })
    replies.add(reply)
    reply.sse.onClose(() => { replies.delete(reply) })
    await reply.sse.send({ data: HELLO })
  })
  await app.listen({ port: 0, host: '127.0.0.1', backlog: 2048 })
  return {
    port: app.server.address().port,
    close: () => { app.server.closeAllConnections(); return app.close() }
  }
}

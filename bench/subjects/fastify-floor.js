// The Fastify floor: a Fastify route that does by hand what an SSE plugin does for it.
// reply.hijack(), then frames written to reply.raw, backpressure honoured, the same headers as
// this plugin sends. No plugin can cost less than this on Fastify: it is the honest limit.
import Fastify from 'fastify'
import { events, readCount, HELLO_JSON } from '../lib/payload.js'
import { drainOrClose, queuedWriter } from '../lib/raw-writer.js'

const HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  connection: 'keep-alive'
}
// "Writes the same frames" (issue 13): the comment line with which this plugin opens a stream by
// default (its heartbeat interval, for clients to tell a stale connection), so that the client's
// work is the same and only the server's differs.
const OPENING = ': heartbeat=15000\n'

export async function start ({ hub }) {
  const app = Fastify()
  app.get('/stream', async (req, reply) => {
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, HEADERS)
    for await (const ev of events(readCount(req.url, 200000))) {
      if (res.destroyed) break
      if (!res.write('data: ' + JSON.stringify(ev.data) + '\n\n')) await drainOrClose(res)
    }
    res.end()
  })
  app.get('/sub', (req, reply) => {
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, HEADERS)
    // The bytes this plugin sends on /sub by default: its heartbeat advert, then the hello.
    res.write(OPENING + 'data: ' + HELLO_JSON + '\n\n')
    // One frame string per event, built by the broadcaster, written to every response; frames
    // that arrive while a socket is full wait in a bounded queue (bench/lib/raw-writer.js).
    const remove = hub.add(queuedWriter(res))
    res.on('close', remove)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    port: app.server.address().port,
    close: () => { app.server.closeAllConnections(); return app.close() }
  }
}

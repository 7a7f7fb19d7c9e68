// The Fastify floor: a Fastify route that does by hand what an SSE plugin does for it.
// reply.hijack(), then frames written to reply.raw, backpressure honoured, the same headers as
// this plugin sends. No plugin can cost less than this on Fastify: it is the honest limit.
import Fastify from 'fastify'
import { events, readCount, HELLO_JSON } from '../lib/payload.js'

const HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  connection: 'keep-alive'
}
const QUEUE_LIMIT = 1024
// "Writes the same frames" (issue 13): the comment line with which this plugin opens a stream by
// default (its heartbeat interval, for clients to tell a stale connection), so that the client's
// work is the same and only the server's differs.
const OPENING = ': heartbeat=15000\n'

function drainOrClose (res) {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}

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
    // that arrive while a socket is full wait in a bounded queue, as in the node:http baseline.
    let queue = null
    const remove = hub.add((obj, json, frame) => {
      if (queue !== null) {
        if (queue.push(frame) > QUEUE_LIMIT) res.destroy()
      } else if (!res.write(frame)) {
        queue = []
      }
    })
    res.on('drain', () => {
      const q = queue
      queue = null
      if (q === null) return
      for (let i = 0; i < q.length; i++) {
        if (!res.write(q[i])) {
          queue = q.slice(i + 1)
          return
        }
      }
    })
    res.on('close', remove)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    port: app.server.address().port,
    close: () => { app.server.closeAllConnections(); return app.close() }
  }
}

// This plugin, used as its README shows: reply.sse() with an async generator for one stream,
// and reply.sseSink() per client, fed by the broadcaster, for fan-out, each event encoded once
// with prepareEvent() and the same frame sent to every client.
import Fastify from 'fastify'
import { events, readCount, HELLO_JSON } from '../lib/payload.js'

// BENCH_DIST points at another build of the plugin (a copy with a proposed patch applied).
const dist = process.env.BENCH_DIST === undefined ? '../../dist/index.js' : 'file://' + process.env.BENCH_DIST
const { default: sse, prepareEvent } = await import(dist)

// The hello is the same event for every client: encoded once, as the floor writes one constant frame.
const HELLO = prepareEvent({ data: HELLO_JSON })
let lastObj = null
let lastPrepared = null
function prepared (obj) {
  if (obj !== lastObj) {
    lastObj = obj
    lastPrepared = prepareEvent({ data: obj })
  }
  return lastPrepared
}

export async function start ({ hub }) {
  const app = Fastify()
  await app.register(sse)
  app.get('/stream', (req, reply) => reply.sse(events(readCount(req.url, 200000))))
  app.get('/sub', (req, reply) => {
    const sink = reply.sseSink()
    sink.send(HELLO)
    // The broadcaster calls every subscriber with the same object: prepare it once for them all.
    const remove = hub.add((obj) => { sink.send(prepared(obj)) })
    sink.done.then(remove)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    port: app.server.address().port,
    close: () => { app.server.closeAllConnections(); return app.close() }
  }
}

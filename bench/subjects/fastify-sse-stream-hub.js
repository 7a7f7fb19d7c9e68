// This plugin's hub (issue 10), used through its contract alone: the hub registered with the
// plugin, app.sse.publish(topic, { data }) for each broadcast event (the hub assigns the ids,
// encodes each event once and keeps the history), and reply.sseSubscribe(topic) per client, which
// replays after a Last-Event-ID and then goes live. There is no hello frame: a subscription is
// ready once its head is out (run.js opens these with readyOnHead). It takes part in the phases
// that broadcast (fan-out, idle, resume storm); one stream to one client is the plain subject's.
import Fastify from 'fastify'

// BENCH_DIST points at another build of the plugin (a copy with a proposed patch applied).
const dist = process.env.BENCH_DIST === undefined ? '../../dist/index.js' : 'file://' + process.env.BENCH_DIST
const { default: sse } = await import(dist)

const TOPIC = 'bench'

export async function start ({ hub }) {
  const app = Fastify()
  // History: enough for the resume storm (a few warm-up events, then 100 behind), kept for an hour.
  await app.register(sse, { hub: { history: { size: 1000, maxAge: 3_600_000 } } })
  if (typeof app.sse?.publish !== 'function') {
    throw new Error('this build of fastify-sse-stream has no hub: app.sse.publish() is missing')
  }
  app.get('/sub', (req, reply) => reply.sseSubscribe(TOPIC))
  // The broadcaster's events go to the hub; its promises are awaited at the end of a broadcast.
  let failures = 0
  hub.add((obj) => app.sse.publish(TOPIC, { data: obj }).catch((err) => {
    if (failures++ === 0) process.stderr.write(`fastify-sse-stream-hub: publish failed: ${err?.stack ?? err}\n`)
  }))
  // The storm reconnects 1,000 clients in one burst: a backlog that holds them all.
  await app.listen({ port: 0, host: '127.0.0.1', backlog: 2048 })
  return {
    port: app.server.address().port,
    close: () => { app.server.closeAllConnections(); return app.close() }
  }
}

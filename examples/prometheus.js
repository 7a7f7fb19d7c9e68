// Prometheus metrics for fastify-sse-stream, with prom-client: counters fed by the plugin's
// node:diagnostics_channel channels, and gauges read from app.sse.stats() at each scrape.
//
//   npm run build && node examples/prometheus.js     then: curl http://127.0.0.1:3000/metrics
//
// Plain ESM on the built package. sseMetrics() itself needs nothing but prom-client: the channels
// are found by name, so it works with any copy of the plugin registered on the app.
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { pathToFileURL } from 'node:url'
import client from 'prom-client'

/**
 * Registers the metrics on `register` (a prom-client Registry) and a `GET /metrics` route on `app`
 * (unless `route: false`). Route and close reason are labels; topics are not, as there may be
 * many: the per-topic counts are one gauge read from the snapshot, which can be left out
 * (`topics: false`). The channel subscriptions end when the app closes.
 */
export async function sseMetrics (app, { register = new client.Registry(), route = '/metrics', topics = true, prefix = 'sse_' } = {}) {
  const opened = new client.Counter({ name: prefix + 'streams_opened_total', help: 'Streams opened', labelNames: ['route'], registers: [register] })
  const closed = new client.Counter({ name: prefix + 'streams_closed_total', help: 'Streams ended, by reason', labelNames: ['route', 'reason'], registers: [register] })
  const duration = new client.Histogram({
    name: prefix + 'stream_duration_seconds',
    help: 'How long streams lived',
    labelNames: ['route'],
    buckets: [1, 10, 60, 300, 900, 3600, 14400],
    registers: [register]
  })
  const bytes = new client.Counter({ name: prefix + 'stream_bytes_total', help: 'Bytes written by ended streams', labelNames: ['route'], registers: [register] })
  const published = new client.Counter({ name: prefix + 'published_events_total', help: 'Events stored by app.sse.publish()', registers: [register] })
  const resets = new client.Counter({ name: prefix + 'resets_total', help: 'Reset frames sent to hub subscribers, by reason', labelNames: ['reason'], registers: [register] })
  const refused = new client.Counter({ name: prefix + 'admission_refused_total', help: 'Streams refused by admission control, by reason', labelNames: ['reason'], registers: [register] })

  // Read from the snapshot when Prometheus scrapes.
  /* eslint-disable no-new */
  new client.Gauge({
    name: prefix + 'open_streams',
    help: 'Streams open now, by route',
    labelNames: ['route'],
    registers: [register],
    collect () {
      this.reset()
      for (const [name, n] of Object.entries(app.sse.stats().streams.byRoute)) this.set({ route: name }, n)
    }
  })
  if (topics) {
    new client.Gauge({
      name: prefix + 'topic_subscribers',
      help: 'Hub subscribers open now, by topic',
      labelNames: ['topic'],
      registers: [register],
      collect () {
        this.reset()
        for (const [name, n] of Object.entries(app.sse.stats().streams.byTopic)) this.set({ topic: name }, n)
      }
    })
  }
  new client.Gauge({
    name: prefix + 'slowest_subscriber_lag_events',
    help: 'Events the slowest hub subscriber has yet to be sent',
    registers: [register],
    collect () {
      this.set(app.sse.stats().hub.slowest[0]?.events ?? 0)
    }
  })
  new client.Gauge({
    name: prefix + 'policy_actions',
    help: 'Slow-subscriber policy actions since the start, by action',
    labelNames: ['action'],
    registers: [register],
    collect () {
      for (const [action, n] of Object.entries(app.sse.stats().hub.policy)) this.set({ action }, n)
    }
  })
  /* eslint-enable no-new */

  const listeners = {
    'fastify-sse-stream:stream:open': (m) => opened.inc({ route: m.route }),
    'fastify-sse-stream:stream:close': (m) => {
      closed.inc({ route: m.route, reason: m.reason })
      duration.observe({ route: m.route }, m.durationMs / 1000)
      bytes.inc({ route: m.route }, m.bytes)
    },
    'fastify-sse-stream:publish': () => published.inc(),
    'fastify-sse-stream:reset': (m) => resets.inc({ reason: m.reason }),
    'fastify-sse-stream:admission:refused': (m) => refused.inc({ reason: m.reason })
  }
  for (const [name, fn] of Object.entries(listeners)) subscribe(name, fn)
  app.addHook('onClose', async () => {
    for (const [name, fn] of Object.entries(listeners)) unsubscribe(name, fn)
  })

  if (route !== false) {
    app.get(route, async (_request, reply) => {
      reply.type(register.contentType)
      return register.metrics()
    })
  }
  return register
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { default: Fastify } = await import('fastify')
  const { default: sse } = await import('../dist/index.js')
  const app = Fastify({ logger: true })
  await app.register(sse, { maxStreamsPerKey: 10, maxAge: 15 * 60_000 })
  await sseMetrics(app)
  app.get('/events', (_request, reply) => reply.sseSubscribe('news'))
  setInterval(() => { app.sse.publish('news', { data: new Date().toISOString() }).catch(() => {}) }, 1000).unref()
  await app.listen({ port: Number(process.env.PORT ?? 3000), host: '127.0.0.1' })
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
  }
}

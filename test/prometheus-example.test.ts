// examples/prometheus.js over real sockets: its counters follow the diagnostics channels, its
// gauges the stats() snapshot, and /metrics serves them in Prometheus' text format.
import t from 'tap'
import Fastify from 'fastify'
import { once } from 'node:events'
import sse from '../index.js'
import { sseMetrics } from '../examples/prometheus.js'
import { get, listen } from './helpers/http.js'
import { open } from './helpers/stream.js'

t.test('the Prometheus example', async (t) => {
  const app = Fastify()
  await app.register(sse, { heartbeat: false, maxStreamsPerKey: 2 })
  await sseMetrics(app)
  app.get('/news', (_req, reply) => reply.sseSubscribe('news'))
  app.get('/once', (_req, reply) => reply.sse([{ data: 'x' }]))
  app.get('/wait', (_req, reply) => reply.sse(async function * ({ signal }) {
    yield { data: 'hi' }
    await once(signal, 'abort').catch(() => {})
  }))
  const url = await listen(app)
  t.teardown(async () => {
    app.server.closeAllConnections()
    await app.close()
  })
  const news = await open(url + '/news')
  await news.waitFor('id: ')
  await app.sse.publish('news', { data: 'hello' })
  await news.waitFor('data: hello')
  t.equal((await get(url + '/once')).body, 'data: x\n\n')
  const wait = await open(url + '/wait')
  await wait.waitFor('data: hi')
  t.equal((await get(url + '/wait')).status, 429, 'two streams from 127.0.0.1 already')
  const metrics = await get(url + '/metrics')
  t.equal(metrics.status, 200)
  t.match(metrics.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const text = metrics.body
  t.match(text, /^sse_streams_opened_total\{route="\/news"\} 1$/m)
  t.match(text, /^sse_streams_opened_total\{route="\/once"\} 1$/m)
  t.match(text, /^sse_streams_closed_total\{route="\/once",reason="done"\} 1$/m)
  t.match(text, /^sse_stream_bytes_total\{route="\/once"\} 9$/m)
  t.match(text, /^sse_stream_duration_seconds_count\{route="\/once"\} 1$/m)
  t.match(text, /^sse_published_events_total 1$/m)
  t.match(text, /^sse_admission_refused_total\{reason="per-key"\} 1$/m)
  t.match(text, /^sse_open_streams\{route="\/news"\} 1$/m)
  t.match(text, /^sse_open_streams\{route="\/wait"\} 1$/m)
  t.match(text, /^sse_topic_subscribers\{topic="news"\} 1$/m)
  t.match(text, /^sse_slowest_subscriber_lag_events 0$/m)
  t.match(text, /^sse_policy_actions\{action="disconnected"\} 0$/m)
  news.destroy()
  wait.destroy()
})

// Peers: r3labs/sse "one slow subscriber stalls the whole stream"; Mercure's bounded buffer
// then disconnect. A broadcast with prepareEvent() to many sinks: a subscriber that reads nothing
// overflows its own queue and is closed as `overflow`, while a reading subscriber receives every
// event, in order, and the publisher is never blocked.
import t from 'tap'
import { prepareEvent, type SseSink } from '../index.js'
import { build, deferred, isEnd, listen, open, silentClient } from './helpers/stream.js'
import { within } from './helpers/http.js'

t.test('a silent subscriber overflows alone; the others get every event', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, writeTimeout: false, queueLimit: 64 })
  const subscribers = new Set<SseSink>()
  const joined = deferred()
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    subscribers.add(sink)
    void sink.done.then(() => subscribers.delete(sink))
    if (subscribers.size === 2) joined.resolve()
  })
  const url = await listen(app) + '/'
  const silent = await silentClient(url)
  t.teardown(() => silent.destroy())
  const reader = await open(url)
  await within(joined.promise, 2000, 'both subscribers')
  const N = 2000
  const payload = 'p'.repeat(4 * 1024)
  const t0 = performance.now()
  for (let i = 0; i < N; i++) {
    const ev = prepareEvent({ id: i, data: payload })
    for (const sink of subscribers) void sink.send(ev)
    // Yield to the event loop now and then, as a real publisher would between messages.
    if (i % 4 === 3) await new Promise((resolve) => setImmediate(resolve))
  }
  const publishMs = performance.now() - t0
  const last = `id: ${N - 1}\ndata: ${payload}\n\n`
  await reader.waitFor((text) => text.endsWith(last), 5000)
  const ids = reader.text.split('\n\n').slice(0, -1).map((f) => Number(/^id: (\d+)/.exec(f)?.[1]))
  t.same(ids, Array.from({ length: N }, (_v, i) => i), 'the reading subscriber got every event, in order')
  const ends = logs.lines.filter(isEnd).map((l) => l.sse.reason)
  t.same(ends, ['overflow'], 'only the silent subscriber was closed, as overflow')
  t.equal(subscribers.size, 1, 'the reader is still subscribed')
  t.ok(publishMs < 2000, `publishing never blocked on the slow one (${Math.round(publishMs)} ms)`)
  for (const sink of subscribers) sink.end()
})

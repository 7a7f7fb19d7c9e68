// Observability over real sockets: app.sse.stats() (open streams per route and topic, events and
// bytes, ends per reason, the hub's resets and policy actions, the slowest subscribers), the
// node:diagnostics_channel channels and their messages, and a throwing subscriber that breaks
// no stream.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { once } from 'node:events'
import { subscribe as subscribeChannel, unsubscribe as unsubscribeChannel } from 'node:diagnostics_channel'
import sse, { type SsePluginOptions } from '../index.js'
import { type LogCapture, captureLogs, deferred, get, listen } from './helpers/http.js'
import { open, silentClient } from './helpers/stream.js'

const NAMES = ['stream:open', 'stream:close', 'publish', 'reset', 'admission:refused'] as const
type Name = typeof NAMES[number]

/** Records every message of the plugin's channels, for the test's duration. */
function record (t: Test): { messages: Array<[Name, Record<string, unknown>]>, of: (name: Name) => Array<Record<string, unknown>>, next: (name: Name, pred?: (m: Record<string, unknown>) => boolean) => Promise<Record<string, unknown>> } {
  const messages: Array<[Name, Record<string, unknown>]> = []
  const waiters: Array<{ name: Name, pred: (m: Record<string, unknown>) => boolean, resolve: (m: Record<string, unknown>) => void }> = []
  for (const name of NAMES) {
    const listener = (message: unknown): void => {
      const m = message as Record<string, unknown>
      messages.push([name, m])
      for (const w of waiters.slice()) {
        if (w.name === name && w.pred(m)) {
          waiters.splice(waiters.indexOf(w), 1)
          w.resolve(m)
        }
      }
    }
    subscribeChannel(`fastify-sse-stream:${name}`, listener)
    t.teardown(() => unsubscribeChannel(`fastify-sse-stream:${name}`, listener))
  }
  return {
    messages,
    of: (name) => messages.filter(([n]) => n === name).map(([, m]) => m),
    next: (name, pred = () => true) => {
      const seen = deferred<Record<string, unknown>>()
      waiters.push({ name, pred, resolve: seen.resolve })
      return seen.promise
    }
  }
}

async function app (t: Test, options: SsePluginOptions = {}): Promise<{ app: FastifyInstance, url: string, logs: LogCapture }> {
  const logs = captureLogs()
  const instance = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await instance.register(sse, { heartbeat: false, ...options })
  instance.get('/a', (_req, reply) => reply.sse(async function * ({ signal }) {
    yield { data: 'one' }
    yield { data: 'two' }
    await once(signal, 'abort').catch(() => {})
  }))
  instance.get('/done', (_req, reply) => reply.sse([{ data: 'x' }]))
  instance.get('/b/:id', (_req, reply) => {
    const sink = reply.sseSink()
    void sink.send({ data: 'three' })
    void sink.comment('not an event')
  })
  instance.get<{ Querystring: { topics: string, policy?: 'catch-up' } }>('/sub', (request, reply) => reply.sseSubscribe(request.query.topics.split(','), {
    policy: request.query.policy ?? 'catch-up',
    lag: { events: 2 },
    key: () => 'k'
  }))
  const url = await listen(instance)
  t.teardown(async () => {
    instance.server.closeAllConnections()
    await instance.close()
  })
  return { app: instance, url, logs }
}

t.test('stats(): open streams per route and topic, events and bytes, ends per reason', async (t) => {
  const { app: instance, url } = await app(t)
  const ch = record(t)
  const zero = instance.sse.stats()
  t.same(zero.streams, { open: 0, opened: 0, byRoute: {}, byTopic: {} })
  t.same(zero.ended, { done: 0, ended: 0, 'client-closed': 0, error: 0, stalled: 0, overflow: 0, shutdown: 0, reset: 0, 'max-age': 0, expired: 0 })
  const a1 = await open(url + '/a')
  const a2 = await open(url + '/a')
  const b = await open(url + '/b/7')
  const s1 = await open(url + '/sub?topics=room')
  const s2 = await open(url + '/sub?topics=room,other')
  await Promise.all([a1.waitFor('data: two\n\n'), a2.waitFor('data: two\n\n'), b.waitFor('not an event\n'), s1.waitFor('id: '), s2.waitFor('id: ')])
  const stats = instance.sse.stats()
  t.same(stats.streams, { open: 5, opened: 5, byRoute: { '/a': 2, '/b/:id': 1, '/sub': 2 }, byTopic: { room: 2, other: 1 } })
  t.equal(stats.events, 5, 'two, two and one events; comments and priming ids are not events')
  const bodies = [a1, a2, b, s1, s2].map((c) => Buffer.byteLength(c.text))
  t.equal(stats.bytes, bodies.reduce((x, y) => x + y), 'the bytes the clients received (heads not counted)')
  const done = await get(url + '/done')
  t.equal(done.body, 'data: x\n\n')
  const closing = Promise.all([ch.next('stream:close', (m) => m.route === '/a'), ch.next('stream:close', (m) => m.route === '/b/:id')])
  a1.destroy()
  b.destroy()
  await closing
  const after = instance.sse.stats()
  t.equal(after.streams.open, 3)
  t.equal(after.streams.opened, 6)
  t.equal(after.events, 6, 'ended streams stay counted')
  t.equal(after.bytes, stats.bytes + Buffer.byteLength('data: x\n\n'))
  t.match(after.ended, { done: 1, 'client-closed': 2 })
  t.same(after.hub.slowest, [], 'nobody lags')
  for (const c of [a2, s1, s2]) c.destroy()
})

t.test('hub: resets and policy actions are counted, and the slowest subscribers listed', async (t) => {
  const { app: instance, url } = await app(t, { hub: { history: { bytes: 64 * 1024 * 1024, totalBytes: 256 * 1024 * 1024 } } })
  const ch = record(t)
  // An id this subscription never gave: a reset `unknown`.
  await instance.sse.publish('r', { data: 'first' })
  const unknown = await open(url + '/sub?topics=r', { headers: { 'last-event-id': 'nope' } })
  await unknown.waitFor('event: sse-reset')
  const reset = ch.of('reset')[0]!
  t.match(reset, { topic: 'r', reason: 'unknown', from: 'nope', route: '/sub' })
  t.type(reset.reqId, 'string')
  t.type(reset.head, 'string')
  unknown.destroy()
  // skip-to-head: five events published in one turn, three more than its lag bound.
  const skip = await open(url + '/sub?topics=s&policy=skip-to-head')
  await skip.waitFor('id: ')
  for (let i = 0; i < 5; i++) void instance.sse.publish('s', { data: String(i) })
  await skip.waitFor('"reason":"overflow"')
  // conflate: five events of one key, four left out.
  const conflate = await open(url + '/sub?topics=c&policy=conflate')
  await conflate.waitFor('id: ')
  for (let i = 0; i < 5; i++) void instance.sse.publish('c', { data: String(i) })
  await conflate.waitFor('data: 4')
  // A silent subscriber with catch-up falls behind (the slowest), one with disconnect is closed.
  const big = 'x'.repeat(256 * 1024)
  const slow = await silentClient(url + '/sub?topics=slow')
  const gone = await silentClient(url + '/sub?topics=gone&policy=disconnect')
  t.teardown(() => { slow.destroy(); gone.destroy() })
  let disconnected = false
  void ch.next('stream:close', (m) => m.reason === 'overflow').then(() => { disconnected = true })
  let lagging = false
  for (let i = 0; i < 200 && !(lagging && disconnected); i++) {
    await Promise.all([instance.sse.publish('slow', { data: big }), instance.sse.publish('gone', { data: big })])
    await new Promise((resolve) => setImmediate(resolve))
    lagging = instance.sse.stats().hub.slowest.some((lag) => lag.topics[0] === 'slow' && lag.events > 1)
  }
  t.ok(disconnected, 'the disconnect subscriber was closed')
  const stats = instance.sse.stats()
  t.match(stats.hub.resets, { unknown: 1, overflow: 1, trimmed: 0, lost: 0, 'too-far': 0 })
  t.same(stats.hub.policy, { disconnected: 1, skipped: 1, conflated: 4 })
  t.equal(stats.ended.overflow, 1)
  const slowest = stats.hub.slowest[0]!
  t.match(slowest, { route: '/sub', topics: ['slow'] })
  t.ok(slowest.events > 1 && slowest.ms >= 0, `the slowest is ${slowest.events} events and ${slowest.ms} ms behind`)
  t.ok(stats.hub.topics >= 4)
  for (const c of [skip, conflate]) c.destroy()
})

t.test('the channels: their names and messages', async (t) => {
  const { app: instance, url } = await app(t, { maxStreams: 1 })
  const ch = record(t)
  const client = await open(url + '/a?lastEventId=41')
  await client.waitFor('data: two')
  const [opened] = ch.of('stream:open')
  t.equal((opened!.request as { url: string }).url, '/a?lastEventId=41', 'open: the request')
  t.equal(opened!.route, '/a')
  t.equal(opened!.lastEventId, '41')
  const refused = await get(url + '/done')
  t.equal(refused.status, 503)
  const [refusal] = ch.of('admission:refused')
  t.match(refusal, { reason: 'global', key: undefined, limit: 1 })
  t.equal((refusal!.request as { url: string }).url, '/done')
  const closed = ch.next('stream:close')
  client.destroy()
  const close = await closed
  t.same(Object.keys(close).sort(), ['bytes', 'durationMs', 'events', 'reason', 'reqId', 'route'])
  t.match(close, { route: '/a', reason: 'client-closed', events: 2, bytes: Buffer.byteLength(client.text) })
  t.equal(close.reqId, (opened!.request as { id: string }).id, 'the close names the request the open gave')
  const id = await instance.sse.publish('news', { event: 'x', data: 'hi' })
  t.same(ch.of('publish'), [{ topic: 'news', id, bytes: Buffer.byteLength('event: x\ndata: hi\n') }])
  // A piped stream's end marker is not an event: no publish message.
  await instance.sse.pipe('piped', [{ data: 'a' }])
  t.same(ch.of('publish').map((m) => m.topic), ['news', 'piped'])
})

t.test('a subscriber that throws breaks no stream: Node reports it as an uncaught exception', async (t) => {
  const { url } = await app(t)
  const thrown: string[] = []
  // tap's own listeners are set aside while the test's listener takes Node's report.
  const listeners = process.listeners('uncaughtException')
  process.removeAllListeners('uncaughtException')
  process.on('uncaughtException', (error) => { thrown.push(error.message) })
  t.teardown(() => {
    process.removeAllListeners('uncaughtException')
    for (const listener of listeners) process.on('uncaughtException', listener)
  })
  const boom = (): never => { throw new Error('subscriber failed') }
  for (const name of ['stream:open', 'stream:close'] as const) {
    subscribeChannel(`fastify-sse-stream:${name}`, boom)
    t.teardown(() => unsubscribeChannel(`fastify-sse-stream:${name}`, boom))
  }
  const client = await open(url + '/a')
  await client.waitFor('data: one\n\ndata: two\n\n')
  const sink = await open(url + '/b/1')
  await sink.waitFor(': not an event\n')
  const done = await get(url + '/done')
  t.equal(done.body, 'data: x\n\n', 'a stream that ends still ends whole')
  await new Promise((resolve) => setImmediate(resolve))
  t.ok(thrown.length >= 3 && thrown.every((m) => m === 'subscriber failed'), `${thrown.length} reports, one per message`)
  client.destroy()
  sink.destroy()
  await Promise.all([client.closed, sink.closed])
})

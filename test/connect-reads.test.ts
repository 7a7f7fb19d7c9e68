// What a connect reads, and what it leaves unread when nothing wants it (bench/RESULTS.md, session
// 10): the route's URL from Fastify's route context rather than request.routeOptions; the end line
// not built, and no clock read, when the logger drops its level and the close channel has no
// subscriber; then the scheduler's first look stands for the stream's start.
import t from 'tap'
import Fastify, { type FastifyBaseLogger, type FastifyRequest } from 'fastify'
import { subscribe as subscribeChannel, unsubscribe as unsubscribeChannel } from 'node:diagnostics_channel'
import sse from '../index.js'
import { fastifyKey, logsAt, routeUrl } from '../lib/stream.js'
import { captureLogs, deferred, listen } from './helpers/http.js'
import { isEnd, open, silentClient } from './helpers/stream.js'

t.test('routeUrl() agrees with request.routeOptions.url: declared, prefixed, not found', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const seen: Array<[string, string | undefined]> = []
  const handler = (request: FastifyRequest): string => {
    t.equal(fastifyKey(request, 'fastify.context').description, 'fastify.context', 'this Fastify keeps it where the shortcut looks')
    seen.push([routeUrl(request), request.routeOptions.url])
    return 'ok'
  }
  app.get('/rooms/:room', handler)
  await app.register(async (scoped) => { scoped.get('/feed', handler) }, { prefix: '/v1' })
  app.setNotFoundHandler(handler)
  await app.inject('/rooms/7')
  await app.inject('/v1/feed')
  await app.inject('/nowhere')
  t.same(seen.map(([url]) => url), ['/rooms/:room', '/v1/feed', ''])
  for (const [url, declared] of seen) t.equal(url, declared ?? '', 'as routeOptions says')
  t.equal(fastifyKey(Object.create(null) as object, 'fastify.context').description, 'none', 'a key that nothing has')
})

t.test('routeUrl() on a request without the route context: routeOptions answers', async (t) => {
  // A Fastify that kept the context elsewhere, or under a config without the URL.
  const request = { routeOptions: { url: '/declared' } } as unknown as FastifyRequest
  t.equal(routeUrl(request), '/declared')
  t.equal(routeUrl({ routeOptions: {} } as unknown as FastifyRequest), '')
  const other = Symbol('fastify.context')
  t.equal(routeUrl({ [other]: { config: { url: '/other-copy' } }, routeOptions: {} } as unknown as FastifyRequest), '/other-copy', 'another copy of Fastify: its own symbol, found by its name')
})

t.test('logsAt(): pino drops a level, Fastify without a logger drops all, any other logger writes', async (t) => {
  const app = Fastify({ logger: { level: 'warn' } })
  t.teardown(() => app.close())
  t.equal(logsAt(app.log, 'info'), false, 'pino: a level under its own')
  t.equal(logsAt(app.log, 'warn'), true)
  t.equal(logsAt(app.log, 'silent'), false)
  // pino changes a level by replacing the methods.
  app.log.level = 'info'
  t.equal(logsAt(app.log, 'info'), true, 'once the level is lowered')
  const partial = {} as unknown as FastifyBaseLogger
  t.equal(logsAt(partial, 'info'), false, 'a logger without the method')
  const quiet = Fastify()
  t.teardown(() => quiet.close())
  t.equal(logsAt(quiet.log, 'error'), false, 'no logger')
  const custom = { info: (): void => {} } as unknown as FastifyBaseLogger
  t.equal(logsAt(custom, 'info'), true, 'a logger of its own: its lines are written')
})

t.test('without a logger or a subscriber, the first heartbeat still comes an interval after the stream opened, not before', async (t) => {
  const HB = 200
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse, { heartbeat: HB })
  let opened = 0
  app.get('/', (_req, reply) => {
    opened = performance.now()
    reply.sseSink().send({ data: 'hello' })
  })
  const client = await open(await listen(app) + '/')
  await client.waitFor('data: hello\n\n')
  await client.waitFor(': ping\n', 3000)
  const gap = performance.now() - opened
  client.destroy()
  t.ok(gap >= HB, `no ping before an interval: ${Math.round(gap)} ms`)
  t.ok(gap < 3 * HB, `nor long after: ${Math.round(gap)} ms`)
})

t.test('the close channel: a stream opened before its subscriber is measured from the scheduler\'s first look', async (t) => {
  const HB = 100
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse, { heartbeat: HB })
  app.get('/', (_req, reply) => { reply.sseSink().send({ data: 'hello' }) })
  const url = await listen(app)
  const durations: number[] = []
  const closed = deferred()
  const listener = (message: unknown): void => {
    durations.push((message as { durationMs: number }).durationMs)
    closed.resolve()
  }
  // Opened with nothing to report its end to: no clock read.
  const t0 = performance.now()
  const late = await open(url + '/')
  await late.waitFor('data: hello\n\n')
  // The scheduler looks within a quarter of the interval: two pings mean it has.
  await late.waitFor((text) => text.split(': ping\n').length > 2, 3000)
  subscribeChannel('fastify-sse-stream:stream:close', listener)
  t.teardown(() => unsubscribeChannel('fastify-sse-stream:stream:close', listener))
  late.destroy()
  await closed.promise
  t.ok(durations[0]! >= HB && durations[0]! <= performance.now() - t0, `from the first look: ${durations[0]} ms`)
})

t.test('the close channel: a stream opened while it has a subscriber is measured from its open', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  // A heartbeat of an hour: the scheduler's first look comes a second after the open.
  await app.register(sse, { heartbeat: 3_600_000 })
  app.get('/', (_req, reply) => { reply.sseSink().send({ data: 'hello' }) })
  const message = deferred<{ durationMs: number }>()
  const listener = (m: unknown): void => message.resolve(m as { durationMs: number })
  subscribeChannel('fastify-sse-stream:stream:close', listener)
  t.teardown(() => unsubscribeChannel('fastify-sse-stream:stream:close', listener))
  const client = await open(await listen(app) + '/')
  await client.waitFor('data: hello\n\n')
  // Time passing is what this measures.
  await new Promise((resolve) => setTimeout(resolve, 30))
  client.destroy()
  const { durationMs } = await message.promise
  t.ok(durationMs >= 29 && durationMs < 1000, `${durationMs} ms`)
})

t.test('a stream that ends before the scheduler looks, opened before the subscriber came: 0 ms', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  // A heartbeat of an hour: the scheduler looks once a second.
  await app.register(sse, { heartbeat: 3_600_000 })
  const go = deferred()
  app.get('/', async (_req, reply) => {
    const sink = reply.sseSink()
    sink.send({ data: 'hello' })
    await go.promise
    sink.end()
  })
  const client = await open(await listen(app) + '/')
  await client.waitFor('data: hello\n\n')
  const message = deferred<{ durationMs: number, reason: string }>()
  const listener = (m: unknown): void => message.resolve(m as { durationMs: number, reason: string })
  subscribeChannel('fastify-sse-stream:stream:close', listener)
  t.teardown(() => unsubscribeChannel('fastify-sse-stream:stream:close', listener))
  go.resolve()
  t.match(await message.promise, { reason: 'ended', durationMs: 0 })
  await client.closed
})

t.test('with a logger that writes the end line, it carries the duration from the open', async (t) => {
  const HB = 400
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  t.teardown(() => app.close())
  await app.register(sse, { heartbeat: HB })
  let openedAt = 0
  app.get('/', (_req, reply) => {
    openedAt = performance.now()
    reply.sseSink().send({ data: 'hello' })
  })
  const client = await open(await listen(app) + '/')
  // The scheduler's first look (up to a quarter of the interval after the open) is not its start.
  await client.waitFor(': ping\n', 3000)
  const pinged = performance.now() - openedAt
  client.destroy()
  await client.closed
  const end = await logs.waitFor(isEnd)
  t.ok(end.sse.durationMs >= Math.floor(pinged) - 1, `${end.sse.durationMs} ms, the ping came at ${Math.round(pinged)} ms`)
  t.ok(end.sse.durationMs <= performance.now() - openedAt + 1)
})

t.test('a stream without a heartbeat reads the clock at its open: the scheduler may never look at it', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse, { heartbeat: false })
  app.get('/', (_req, reply) => { reply.sseSink().send({ data: 'hello' }) })
  const client = await open(await listen(app) + '/')
  await client.waitFor('data: hello\n\n')
  const message = deferred<{ durationMs: number }>()
  const listener = (m: unknown): void => message.resolve(m as { durationMs: number })
  subscribeChannel('fastify-sse-stream:stream:close', listener)
  t.teardown(() => unsubscribeChannel('fastify-sse-stream:stream:close', listener))
  // Time passing is what this measures.
  await new Promise((resolve) => setTimeout(resolve, 30))
  client.destroy()
  const { durationMs } = await message.promise
  t.ok(durationMs >= 29, `${durationMs} ms`)
})

t.test('a stream whose socket is full at every look still has its start set by the first one', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse, { heartbeat: 100, writeTimeout: false })
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    // More than the socket and the kernel take from a client that reads nothing.
    void sink.send({ data: 'x'.repeat(8 * 1024 * 1024) })
  })
  const socket = await silentClient(await listen(app) + '/')
  t.teardown(() => socket.destroy())
  // Time passing is what this measures: the scheduler looks every 25 ms.
  await new Promise((resolve) => setTimeout(resolve, 150))
  const message = deferred<{ durationMs: number }>()
  const listener = (m: unknown): void => message.resolve(m as { durationMs: number })
  subscribeChannel('fastify-sse-stream:stream:close', listener)
  t.teardown(() => unsubscribeChannel('fastify-sse-stream:stream:close', listener))
  socket.destroy()
  const { durationMs } = await message.promise
  t.ok(durationMs >= 50, `${durationMs} ms`)
})

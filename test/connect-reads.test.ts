// What a connect reads, and what it leaves unread when nothing wants it (bench/RESULTS.md, session
// 10): the route's URL from Fastify's route context rather than request.routeOptions; the end line
// not built, and no clock read, when the logger drops its level and the close channel has no
// subscriber; then the scheduler's first look stands for the stream's start.
import t, { type Test } from 'tap'
import Fastify, { type FastifyBaseLogger, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import { subscribe as subscribeChannel, unsubscribe as unsubscribeChannel } from 'node:diagnostics_channel'
import sse, { type SsePluginOptions } from '../index.js'
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

interface CloseMessage { durationMs: number, reason: string }

/** An app whose route opens a sink and sends `hello`; `openedAt()` is when the last one opened. */
async function helloApp (t: Test, options: SsePluginOptions, fastifyOptions: FastifyServerOptions = {}): Promise<{ url: string, openedAt: () => number }> {
  const app = Fastify(fastifyOptions)
  t.teardown(() => app.close())
  await app.register(sse, options)
  let opened = 0
  app.get('/', (_req, reply) => {
    opened = performance.now()
    void reply.sseSink().send({ data: 'hello' })
  })
  return { url: await listen(app) + '/', openedAt: () => opened }
}

/** Listens on the close channel from now to the end of the test: `next()` is its next message. */
function closeChannel (t: Test): { next: () => Promise<CloseMessage> } {
  const queue: CloseMessage[] = []
  let waiting: ((m: CloseMessage) => void) | null = null
  const listener = (message: unknown): void => {
    if (waiting === null) queue.push(message as CloseMessage)
    else waiting(message as CloseMessage)
    waiting = null
  }
  subscribeChannel('fastify-sse-stream:stream:close', listener)
  t.teardown(() => unsubscribeChannel('fastify-sse-stream:stream:close', listener))
  return { next: () => queue.length > 0 ? Promise.resolve(queue.shift()!) : new Promise((resolve) => { waiting = resolve }) }
}

t.test('without a logger or a subscriber, the first heartbeat still comes an interval after the stream opened, not before', async (t) => {
  const HB = 200
  const { url, openedAt } = await helloApp(t, { heartbeat: HB })
  const client = await open(url)
  await client.waitFor('data: hello\n\n')
  await client.waitFor(': ping\n', 3000)
  const gap = performance.now() - openedAt()
  client.destroy()
  t.ok(gap >= HB, `no ping before an interval: ${Math.round(gap)} ms`)
  t.ok(gap < 3 * HB, `nor long after: ${Math.round(gap)} ms`)
})

t.test('the close channel: a stream opened before its subscriber is measured from the scheduler\'s first look', async (t) => {
  const HB = 100
  const { url, openedAt } = await helloApp(t, { heartbeat: HB })
  // Opened with nothing to report its end to: no clock read.
  const late = await open(url)
  await late.waitFor('data: hello\n\n')
  // The scheduler looks within a quarter of the interval: two pings mean it has.
  await late.waitFor((text) => text.split(': ping\n').length > 2, 3000)
  const channel = closeChannel(t)
  late.destroy()
  const { durationMs } = await channel.next()
  t.ok(durationMs >= HB && durationMs <= performance.now() - openedAt(), `from the first look: ${durationMs} ms`)
})

t.test('the close channel: a stream opened while it has a subscriber is measured from its open', async (t) => {
  // A heartbeat of an hour: the scheduler's first look comes a second after the open.
  const { url } = await helloApp(t, { heartbeat: 3_600_000 })
  const channel = closeChannel(t)
  const client = await open(url)
  await client.waitFor('data: hello\n\n')
  // Time passing is what this measures.
  await new Promise((resolve) => setTimeout(resolve, 30))
  client.destroy()
  const { durationMs } = await channel.next()
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
    void sink.send({ data: 'hello' })
    await go.promise
    sink.end()
  })
  const client = await open(await listen(app) + '/')
  await client.waitFor('data: hello\n\n')
  const channel = closeChannel(t)
  go.resolve()
  t.match(await channel.next(), { reason: 'ended', durationMs: 0 })
  await client.closed
})

t.test('with a logger that writes the end line, it carries the duration from the open', async (t) => {
  const logs = captureLogs()
  const { url, openedAt } = await helloApp(t, { heartbeat: 400 }, { logger: { level: 'info', stream: logs.stream } })
  const client = await open(url)
  // The scheduler's first look (up to a quarter of the interval after the open) is not its start.
  await client.waitFor(': ping\n', 3000)
  const pinged = performance.now() - openedAt()
  client.destroy()
  await client.closed
  const end = await logs.waitFor(isEnd)
  t.ok(end.sse.durationMs >= Math.floor(pinged) - 1, `${end.sse.durationMs} ms, the ping came at ${Math.round(pinged)} ms`)
  t.ok(end.sse.durationMs <= performance.now() - openedAt() + 1)
})

t.test('a stream without a heartbeat reads the clock at its open: the scheduler may never look at it', async (t) => {
  const { url } = await helloApp(t, { heartbeat: false })
  const client = await open(url)
  await client.waitFor('data: hello\n\n')
  const channel = closeChannel(t)
  // Time passing is what this measures.
  await new Promise((resolve) => setTimeout(resolve, 30))
  client.destroy()
  const { durationMs } = await channel.next()
  t.ok(durationMs >= 29, `${durationMs} ms`)
})

t.test('a stream whose socket is full at every look still has its start set by the first one', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse, { heartbeat: 100, writeTimeout: false })
  const opened = deferred()
  app.get('/', (_req, reply) => {
    // More than the socket and the kernel take from a client that reads nothing.
    void reply.sseSink().send({ data: 'x'.repeat(8 * 1024 * 1024) })
    opened.resolve()
  })
  const socket = await silentClient(await listen(app) + '/')
  t.teardown(() => socket.destroy())
  await opened.promise
  // Time passing is what this measures: the scheduler looks every 25 ms.
  await new Promise((resolve) => setTimeout(resolve, 150))
  const channel = closeChannel(t)
  socket.destroy()
  const { durationMs } = await channel.next()
  t.ok(durationMs >= 50, `${durationMs} ms`)
})

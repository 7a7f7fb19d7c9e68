// A cursor older than a process's cache is read from Redis with XRANGE, a page at a time: at the
// client's pace, one read per topic at a time, shared by the clients of a reconnect storm.
import t, { type Test } from 'tap'
import { type IncomingMessage, type ServerResponse, request } from 'node:http'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import sse from '../../index.js'
import { type RedisBroker, type RedisBrokerOptions, redisBroker } from '../../lib/brokers/redis.js'
import { PAGE } from '../../lib/hub/hub.js'
import { Reader } from '../helpers/redis-cluster.js'
import { type RedisServer, client, redisAvailable, startRedis } from '../helpers/redis.js'

type Hook = (request: { raw: { url?: string } }, reply: { raw: ServerResponse }, done: () => void) => void
interface App { app: FastifyInstance, broker: RedisBroker, client: Redis, port: number, warnings: string[], hooks: Hook[] }

async function app (t: Test, redis: RedisServer, options: Partial<RedisBrokerOptions> = {}, history: Record<string, number> = {}): Promise<App> {
  const c = client(redis)
  const broker = redisBroker({ client: c, block: 300, grace: 300, timeout: 2000, maxLen: 5000, ...options })
  const warnings: string[] = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push(JSON.parse(line).msg) } } } })
  await app.register(sse, { heartbeat: 500, hub: { broker, history } })
  const hooks: Hook[] = []
  app.addHook('onRequest', (request, reply, done) => {
    for (const hook of hooks) hook(request, reply, () => {})
    done()
  })
  app.get('/s', (request, reply) => reply.sseSubscribe((request.query as { topics: string }).topics.split(',')))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => {
    app.server.closeAllConnections()
    await app.close()
    c.disconnect()
  })
  return { app, broker, client: c, port: (app.server.address() as { port: number }).port, warnings, hooks }
}

async function publish (node: App, topic: string, from: number, to: number, data: (i: number) => unknown = (i) => i): Promise<string[]> {
  const ids: string[] = []
  for (let i = from; i < to; i++) ids.push(await node.app.sse.publish(topic, { data: data(i) }))
  return ids
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i)

t.test('paging from Redis', redisAvailable(), async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const a = await app(t, redis)
  // A node whose cache holds the newest 10 events of a topic.
  const b = await app(t, redis, {}, { size: 10 })
  const N = 1200
  const ids = await publish(a, 'old', 0, N)

  t.test('a cursor older than the cache is replayed from Redis, page by page, then live', async (t) => {
    const before = b.broker.stats.ranges
    const reader = new Reader('old')
    reader.lastEventId = ids[0]
    await reader.connect(b.port)
    await reader.until((f) => f.length === N - 1)
    t.same(reader.values, range(1, N), 'every event after the cursor, once, in order')
    t.same(reader.frames.map((f) => f.id), ids.slice(1), 'with the ids Redis gave them')
    t.same(reader.resets, [])
    // 1 to 1190 from Redis (the cache holds 1191 to 1200): the cursor's own event is read again
    // to check it, so each page after the first starts at the last one's end.
    t.equal(b.broker.stats.ranges - before, Math.ceil((N - 10 - 1) / (PAGE - 1)), 'pages read')
    await a.app.sse.publish('old', { data: 'live' })
    await reader.until((f) => f.length === N)
    t.equal(reader.values.at(-1), 'live')
    // Connects whose cursor is in this node's cache cost Redis nothing.
    const stats = { ...b.broker.stats }
    for (let i = 0; i < 5; i++) {
      const again = new Reader('old')
      again.lastEventId = ids[N - 3]
      await again.connect(b.port)
      await again.until((f) => f.length === 3)
      t.same(again.values, [N - 2, N - 1, 'live'])
      await again.disconnect()
    }
    t.equal(b.broker.stats.ranges, stats.ranges, 'no XRANGE for a cursor in the cache')
    t.equal(b.broker.stats.syncs, stats.syncs, 'no sync for a topic being read')
    await reader.disconnect()
  })

  t.test('a reconnect storm shares its reads', async (t) => {
    // A node that has never read the topic: its cache is filled with the newest 10 events first.
    const c = await app(t, redis, {}, { size: 10 })
    const offsets = Array.from({ length: 40 }, (_, i) => 100 + i * 7)
    const readers = offsets.map((o) => {
      const reader = new Reader('old')
      reader.lastEventId = ids[o - 1]
      return reader
    })
    await Promise.all(readers.map((reader) => reader.connect(c.port)))
    // The events after each cursor, and the one published live in the test before.
    await Promise.all(readers.map((reader, i) => reader.until((f) => f.length === N + 1 - offsets[i]!, 30000)))
    readers.forEach((reader, i) => t.same(reader.values, [...range(offsets[i]!, N), 'live'], `reader ${i}`))
    // 100 to 1190 is three pages; forty clients at different cursors read them together.
    t.ok(c.broker.stats.ranges <= 4, `pages read by the storm: ${c.broker.stats.ranges}`)
    await Promise.all(readers.map((reader) => reader.disconnect()))
  })

  t.test('a slow client holds one page: the next is read once it is written', async (t) => {
    const big = await publish(a, 'big', 0, PAGE + 100, (i) => String(i).padEnd(16000, '.'))
    const before = b.broker.stats.ranges
    const responses: ServerResponse[] = []
    const hook = (request: { raw: { url?: string } }, reply: { raw: ServerResponse }, done: () => void): void => {
      if (request.raw.url === '/s?topics=big') responses.push(reply.raw)
      done()
    }
    b.hooks.push(hook)
    // A client that does not read: the socket fills within the first page (8 MB).
    const res = await new Promise<IncomingMessage>((resolve) => {
      request({ host: '127.0.0.1', port: b.port, path: '/s?topics=big', headers: { 'last-event-id': big[0]! } }, resolve).end()
    })
    res.pause()
    for (let i = 0; i < 500 && responses[0]?.socket?.writableNeedDrain !== true; i++) await new Promise((resolve) => setTimeout(resolve, 20))
    t.equal(responses[0]!.socket!.writableNeedDrain, true, 'the server waits for the client')
    // Heartbeats run meanwhile; the next page is not read.
    await new Promise((resolve) => setTimeout(resolve, 600))
    t.equal(b.broker.stats.ranges - before, 1, 'one page read while the client does not read')
    res.setEncoding('utf8')
    let text = ''
    await new Promise<void>((resolve) => {
      res.on('data', (chunk: string) => {
        text += chunk
        if (text.includes(`data: ${PAGE + 99}.`)) resolve()
      })
      res.resume()
    })
    t.equal(text.match(/^data: /gm)!.length, PAGE + 99, 'then everything, once')
    t.equal(b.broker.stats.ranges - before, 2, 'and the second page')
    res.destroy()
  })
})

t.test('paging tells what Redis no longer holds, and waits out an outage', redisAvailable(), async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const a = await app(t, redis)
  const b = await app(t, redis, { timeout: 300 }, { size: 10 })
  const ids = await publish(a, 'h', 0, 100)
  const at = (i: number): { t: number, o: number } => ({ t: Number(ids[i]!.split('-')[0]), o: i + 1 })
  // b reads the topic: its cache holds 91 to 100.
  const live = new Reader('h')
  await live.connect(b.port)
  await live.until(() => live.lastEventId !== undefined)
  t.teardown(() => live.disconnect())

  async function resume (cursor: string, port = b.port): Promise<Reader> {
    const reader = new Reader('h')
    reader.lastEventId = cursor
    await reader.connect(port)
    return reader
  }

  t.test('a cursor of another history', async (t) => {
    // Later than the oldest event cached, at a lower offset: judged without Redis.
    const later = await resume(`${at(95).t + 1}-20`)
    await later.until((f) => f.length === 1)
    t.match(later.resets, [{ reason: 'lost', from: `${at(95).t + 1}-20` }])
    await later.disconnect()
    // Redis holds an event at its offset, with another time.
    const other = await resume(`${at(19).t - 1}-20`)
    await other.until((f) => f.length === 1)
    t.match(other.resets, [{ reason: 'lost' }])
    await other.disconnect()
  })

  t.test('a cursor whose own event is gone resumes from the next, which is there', async (t) => {
    await a.client.xdel('sse:{h}:s', ids[29]!)
    const reader = await resume(ids[29]!)
    await reader.until((f) => f.length === 70)
    t.same(reader.values, range(30, 100))
    await reader.disconnect()
  })

  t.test('a gap in Redis is told, never passed over', async (t) => {
    // On a node of its own: b keeps the pages it read while its live reader stays, and a page kept
    // from before the deletion would still hold events 61 to 70 (Redis trims from the front only,
    // so a kept page is never stale in use; this deletion in the middle is the test's own).
    const c = await app(t, redis, { timeout: 300 }, { size: 10 })
    // Events 61 to 70 deleted: a client at 50 gets 51 to 60, then a reset.
    await a.client.xdel('sse:{h}:s', ...ids.slice(60, 70))
    const reader = await resume(ids[49]!, c.port)
    await reader.until((f) => f.length === 11)
    t.same(reader.values, range(50, 60))
    t.match(reader.resets, [{ reason: 'lost', from: ids[59] }])
    await a.app.sse.publish('h', { data: 'next' })
    await reader.until((f) => f.length === 12)
    t.equal(reader.values.at(-1), 'next', 'then live')
    await reader.disconnect()
    // A cursor at 65, deleted, with nothing up to the cache: trimmed.
    const gone = await resume(ids[64]!, c.port)
    await gone.until((f) => f.length === 1)
    t.match(gone.resets, [{ reason: 'trimmed' }])
    await gone.disconnect()
  })

  t.test('too far is judged before any read', async (t) => {
    const app2 = Fastify()
    const c = client(redis)
    await app2.register(sse, { hub: { broker: redisBroker({ client: c }), history: { size: 10 } } })
    app2.get('/s', (request, reply) => reply.sseSubscribe('h', { maxReplay: 20 }))
    await app2.listen({ port: 0, host: '127.0.0.1' })
    const reader = new Reader('h')
    reader.lastEventId = ids[9]
    await reader.connect((app2.server.address() as { port: number }).port)
    await reader.until((f) => f.length === 1)
    t.match(reader.resets, [{ reason: 'too-far' }])
    await reader.disconnect()
    app2.server.closeAllConnections()
    await app2.close()
    c.disconnect()
  })

  t.test('while Redis does not answer, a page is retried; a client that leaves is dropped', async (t) => {
    const warned = b.warnings.length
    redis.signal('SIGSTOP')
    const gone = await resume(ids[4]!)
    const reader = await resume(ids[2]!)
    for (let i = 0; i < 200 && !b.warnings.slice(warned).some((w) => /older history could not be read/.test(w)); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    t.ok(b.warnings.slice(warned).some((w) => /older history could not be read/.test(w)), 'warned once: ' + b.warnings.slice(warned).join(' / '))
    await gone.disconnect()
    redis.signal('SIGCONT')
    await reader.until((f) => f.some((frame) => frame.event === 'sse-reset'))
    // Up to the event deleted before.
    t.same(reader.values, range(3, 29), 'the pages came once Redis answered')
    t.same(gone.frames, [])
    await reader.disconnect()
  })

  t.test('a page still waited for when the app closes is dropped', async (t) => {
    const c = await app(t, redis, { timeout: 300 }, { size: 10 })
    const watcher = new Reader('h')
    await watcher.connect(c.port)
    await watcher.until(() => watcher.lastEventId !== undefined)
    redis.signal('SIGSTOP')
    const reader = new Reader('h')
    reader.lastEventId = ids[1]
    await reader.connect(c.port)
    for (let i = 0; i < 200 && !c.warnings.some((w) => /older history could not be read/.test(w)); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    const closing = c.app.close()
    redis.signal('SIGCONT')
    await closing
    t.same(reader.values, [], 'nothing was sent')
    await reader.disconnect()
    await watcher.disconnect()
  })
})

t.test('the memory broker does not page: a cursor older than the history is trimmed', async (t) => {
  const app = Fastify()
  await app.register(sse, { hub: { history: { size: 5 } } })
  app.get('/s', (request, reply) => reply.sseSubscribe('m'))
  const ids: string[] = []
  for (let i = 0; i < 20; i++) ids.push(await app.sse.publish('m', { data: i }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const reader = new Reader('m')
  reader.lastEventId = ids[2]
  await reader.connect((app.server.address() as { port: number }).port)
  await reader.until((f) => f.length === 1)
  t.match(reader.resets, [{ reason: 'trimmed' }])
  await reader.disconnect()
  app.server.closeAllConnections()
  await app.close()
})

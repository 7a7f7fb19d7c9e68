// Redis failing under the hub: killed and restarted with and without its data, stopped, out of
// reach; a cursor trimmed away. Subscribers are always told, and a publish never hangs.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import sse from '../../index.js'
import { type RedisBroker, type RedisBrokerOptions, redisBroker } from '../../lib/brokers/redis.js'
import { Reader } from '../helpers/redis-cluster.js'
import { type RedisServer, client, redisAvailable, startRedis } from '../helpers/redis.js'

interface App { app: FastifyInstance, broker: RedisBroker, client: Redis, port: number, warnings: string[] }

async function app (t: Test, redis: RedisServer, options: Partial<RedisBrokerOptions> = {}, history: Record<string, number> = {}): Promise<App> {
  const c = client(redis)
  const broker = redisBroker({ client: c, block: 300, grace: 300, timeout: 500, ...options })
  const warnings: string[] = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push(JSON.parse(line).msg) } } } })
  await app.register(sse, { heartbeat: 500, hub: { broker, history } })
  app.get('/s', (request, reply) => reply.sseSubscribe((request.query as { topics: string }).topics.split(',')))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => {
    app.server.closeAllConnections()
    await app.close()
    c.disconnect()
  })
  return { app, broker, client: c, port: (app.server.address() as { port: number }).port, warnings }
}

t.test('with AOF: SIGKILL and restart lose no publish that resolved', redisAvailable(), async (t) => {
  const redis = await startRedis({ aof: true })
  t.teardown(() => redis.stop())
  const a = await app(t, redis)
  const b = await app(t, redis)
  const reader = new Reader('aof')
  await reader.connect(b.port)
  await reader.until(() => reader.lastEventId !== undefined)
  const resolved: number[] = []
  for (let i = 0; i < 20; i++) {
    await a.app.sse.publish('aof', { data: i })
    resolved.push(i)
  }
  await reader.until((f) => f.length === 20)
  await redis.kill()
  // Down: a publish rejects, in bounded time.
  const started = Date.now()
  await t.rejects(a.app.sse.publish('aof', { data: 'lost' }), { code: 'FST_ERR_SSE_BROKER' })
  t.ok(Date.now() - started < 1500, 'rejected within the timeout')
  await redis.start()
  for (let i = 20; i < 40; i++) {
    // The client reconnects on its own: a publish waits for it (within the timeout), or is retried.
    for (;;) {
      try {
        // With a key: a publish that timed out after Redis stored it is not stored twice.
        await a.app.sse.publish('aof', { data: i }, { idempotencyKey: 'aof-' + i })
        break
      } catch {}
    }
    resolved.push(i)
  }
  await reader.until((f) => f.length >= 40)
  t.same(reader.values, resolved, 'the same connection got every event, once, in order')
  t.same(reader.resets, [])
  t.ok(b.broker.stats.connects >= 2, 'the reader reconnected')
  // And a resume from before the restart, on the other node.
  const late = new Reader('aof')
  late.lastEventId = reader.frames[9]!.id
  await late.connect(a.port)
  await late.until((f) => f.length === 30)
  t.same(late.values, resolved.slice(10))
  await late.disconnect()
  await reader.disconnect()
})

t.test('without persistence: a restart is told as lost, then the topic goes on live', redisAvailable(), async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const a = await app(t, redis)
  const b = await app(t, redis)
  const reader = new Reader('gone')
  await reader.connect(b.port)
  await reader.until(() => reader.lastEventId !== undefined)
  for (let i = 0; i < 5; i++) await a.app.sse.publish('gone', { data: i })
  await reader.until((f) => f.length === 5)
  const before = reader.lastEventId
  await redis.kill()
  await redis.start()
  await t.resolves(async () => {
    for (;;) {
      // With a key, as in the tests above: a publish that timed out after Redis stored it (the
      // client sends its queued commands once it reconnects) is not stored again by the retry.
      try { return await a.app.sse.publish('gone', { data: 'new' }, { idempotencyKey: 'gone-new' }) } catch {}
    }
  })
  // Told, with everything of the new history after it: the publish that came first included.
  await reader.until((f) => f.some((frame) => frame.data === 'new'))
  t.match(reader.resets, [{ topic: 'gone', reason: 'lost', from: before, head: '0-0' }])
  await a.app.sse.publish('gone', { data: 'newer' })
  await reader.until((f) => f.some((frame) => frame.data === 'newer'))
  t.same(reader.values, [0, 1, 2, 3, 4, 'new', 'newer'], 'told, then live again')
  t.ok(b.broker.stats.losses >= 1)
  t.ok(b.warnings.some((w) => /lost part of a topic/.test(w)))
  // An old cursor, on a node that was not reading the topic: lost as well.
  const old = new Reader('gone')
  old.lastEventId = before
  await old.connect(a.port)
  await old.until((f) => f.length === 1)
  t.match(old.resets, [{ reason: 'lost' }])
  await old.disconnect()
  await reader.disconnect()
})

t.test('SIGSTOP for 3 s, then SIGCONT: the wedged read is detected, and nothing is lost', redisAvailable(), async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const a = await app(t, redis)
  const b = await app(t, redis)
  const reader = new Reader('stop')
  await reader.connect(b.port)
  await reader.until(() => reader.lastEventId !== undefined)
  for (let i = 0; i < 5; i++) await a.app.sse.publish('stop', { data: i })
  await reader.until((f) => f.length === 5)
  redis.signal('SIGSTOP')
  const started = Date.now()
  await t.rejects(a.app.sse.publish('stop', { data: 'maybe' }), { code: 'FST_ERR_SSE_BROKER', cause: { code: 'ETIMEDOUT' } })
  t.ok(Date.now() - started < 1500, 'a publish to a stopped server rejects within the timeout')
  await new Promise((resolve) => setTimeout(resolve, 3000))
  redis.signal('SIGCONT')
  for (let i = 5; i < 10; i++) {
    for (;;) {
      try {
        await a.app.sse.publish('stop', { data: i }, { idempotencyKey: 'stop-' + i })
        break
      } catch {}
    }
  }
  // The publish that timed out may have run once the server went on: at least once, in order.
  await reader.until((f) => f.filter((frame) => frame.data !== 'maybe').length === 10)
  t.same(reader.values.filter((v) => v !== 'maybe'), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  t.same(reader.resets, [])
  t.ok(b.broker.stats.wedges >= 1, `wedges detected: ${b.broker.stats.wedges}`)
  t.ok(b.warnings.some((w) => /did not answer in time/.test(w)))
  await reader.disconnect()
})

t.test('a cursor trimmed away is reset, on a node that reads the topic and on one that does not', redisAvailable(), async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const a = await app(t, redis, { maxLen: 10 }, { size: 10 })
  const b = await app(t, redis, { maxLen: 10 }, { size: 10 })
  const first = await a.app.sse.publish('trim', { data: 0 })
  // MAXLEN ~ trims whole nodes of the stream (100 entries each, by default).
  for (let i = 1; i < 250; i++) await a.app.sse.publish('trim', { data: i })
  for (const node of [b, a, b]) {
    const reader = new Reader('trim')
    reader.lastEventId = first
    await reader.connect(node.port)
    await reader.until((f) => f.length === 1)
    t.match(reader.resets, [{ topic: 'trim', reason: 'trimmed', from: first }])
    await a.app.sse.publish('trim', { data: 'live' })
    await reader.until((f) => f.length === 2)
    t.same(reader.values.at(-1), 'live')
    await reader.disconnect()
  }
  const stream = await a.client.xlen('sse:{trim}:s')
  t.ok(stream < 250 && stream >= 10, `MAXLEN ~ trims the stream (${stream} kept)`)
})

t.test('a reader parked with nothing to watch, its connection lost meanwhile: the next watch replaces it', redisAvailable(), async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const a = await app(t, redis)
  const first = new Reader('parked')
  await first.connect(a.port)
  await first.until(() => first.lastEventId !== undefined)
  const reads = a.broker.stats.reads
  await first.disconnect()
  // The last subscriber gone, the blocking read is woken and the reader parks: it reads no more.
  for (let i = 0; i < 200 && a.broker.stats.reads === reads; i++) await new Promise((resolve) => setTimeout(resolve, 25))
  t.ok(a.broker.stats.reads > reads, 'the read was woken')
  // Its connection goes while it is parked (it does not reconnect on its own).
  await redis.kill()
  await redis.start()
  await t.resolves(async () => {
    for (;;) {
      try { return await a.app.sse.publish('parked', { data: 'while away' }) } catch {}
    }
  })
  const connects = a.broker.stats.connects
  const second = new Reader('parked')
  await second.connect(a.port)
  await second.until(() => second.lastEventId !== undefined)
  await a.app.sse.publish('parked', { data: 'back' })
  await second.until((f) => f.some((frame) => frame.data === 'back'))
  t.ok(a.broker.stats.connects > connects, 'a new reader connection was made')
  await second.disconnect()
})

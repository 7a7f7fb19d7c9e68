// The broker's edges: a publish Redis refuses, a new subscriber while Redis does not answer, and an
// event read back from its frame alone.
import t from 'tap'
import Fastify from 'fastify'
import sse from '../../index.js'
import { redisBroker } from '../../lib/brokers/redis.js'
import { Reader } from '../helpers/redis-cluster.js'
import { client, redisAvailable, startRedis } from '../helpers/redis.js'

t.test('edges', redisAvailable(), async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())

  async function node (options: Record<string, unknown> = {}, subscribe: Record<string, unknown> = {}) {
    const c = client(redis)
    const broker = redisBroker({ client: c, block: 300, grace: 300, timeout: 300, ...options })
    const warnings: string[] = []
    const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push(JSON.parse(line).msg) } } } })
    await app.register(sse, { heartbeat: 200, hub: { broker } })
    app.get('/s', (request, reply) => reply.sseSubscribe((request.query as { topics: string }).topics, subscribe))
    await app.listen({ port: 0, host: '127.0.0.1' })
    t.teardown(async () => {
      app.server.closeAllConnections()
      await app.close()
      c.disconnect()
    })
    return { app, broker, client: c, warnings, port: (app.server.address() as { port: number }).port }
  }

  t.test('a publish Redis refuses (a key of another type) rejects with its error', async (t) => {
    const a = await node()
    await a.client.set('sse:{wrong}:s', 'a string')
    await t.rejects(a.app.sse.publish('wrong', { data: 1 }), { code: 'FST_ERR_SSE_BROKER', cause: { message: /WRONGTYPE/ } })
  })

  t.test('a new subscriber waits while Redis does not answer, with heartbeats, then starts', async (t) => {
    const a = await node()
    const b = await node()
    await a.app.sse.publish('late', { data: 1 })
    redis.signal('SIGSTOP')
    const reader = new Reader('late')
    reader.lastEventId = '0-0'
    await reader.connect(b.port)
    for (let i = 0; i < 100 && !b.warnings.some((w) => /a topic could not be read/.test(w)); i++) await new Promise((resolve) => setTimeout(resolve, 50))
    t.ok(b.warnings.some((w) => /a topic could not be read; retrying/.test(w)), 'the sync is retried')
    redis.signal('SIGCONT')
    await reader.until((f) => f.length === 1)
    t.same(reader.values, [1])
    await reader.disconnect()
  })

  t.test('without stored JSON, comments and empty data come back from the frame', async (t) => {
    const seen: unknown[] = []
    const a = await node({ storeEvent: false, prefix: 'nojson:' }, { filter: (event: unknown) => { seen.push(event); return true } })
    const reader = new Reader('c')
    await reader.connect(a.port)
    await reader.until(() => reader.lastEventId !== undefined)
    await a.app.sse.publish('c', { comment: 'one\ntwo', event: 'e', data: '' })
    await reader.until((f) => f.length === 1)
    t.same(seen, [{ comment: 'one\ntwo', event: 'e', data: '' }])
    await reader.disconnect()
  })
})

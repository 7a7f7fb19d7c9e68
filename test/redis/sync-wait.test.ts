// A subscription on a shared broker waits for the broker's sync before it answers (SYNC_WAIT at
// most, then the stream opens and waits on). What happens meanwhile, made to happen every time:
// Redis is stopped with SIGSTOP so that the sync waits as long as the test needs, and the test's
// own timer of SYNC_WAIT, set after the subscription's, runs after it (Node runs timers of one
// duration in the order they were set).
import t, { type Test } from 'tap'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import sse from '../../index.js'
import { type RedisBroker, type RedisClient, redisBroker } from '../../lib/brokers/redis.js'
import { SYNC_WAIT } from '../../lib/reply.js'
import { Reader } from '../helpers/redis-cluster.js'
import { type RedisServer, client, redisAvailable, startRedis } from '../helpers/redis.js'

interface Node { app: FastifyInstance, broker: RedisBroker, redis: RedisServer, warnings: string[], port: number, url: string }

async function node (t: Test, routes: (app: FastifyInstance) => void): Promise<Node> {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const c = client(redis)
  const broker = redisBroker({ client: c as unknown as RedisClient, block: 300, grace: 300, timeout: 300 })
  const warnings: string[] = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push(JSON.parse(line).msg) } } } })
  await app.register(sse, { heartbeat: 200, hub: { broker } })
  routes(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => {
    redis.signal('SIGCONT')
    app.server.closeAllConnections()
    await app.close()
    c.disconnect()
  })
  const port = (app.server.address() as { port: number }).port
  return { app, broker, redis, warnings, port, url: `http://127.0.0.1:${port}/s` }
}

function deferred (): { promise: Promise<void>, resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => { resolve = r })
  return { promise, resolve }
}

t.test('the subscription\'s wait', redisAvailable(), async (t) => {
  t.test('shutdown begins while the broker syncs: the wait runs out, no stream opens, and the subscription is answered 503', async (t) => {
    const closing = deferred()
    const called = deferred()
    let closed: Promise<void> | undefined
    const { app, redis, url } = await node(t, (app) => {
      // After the plugin's own preClose: shutdown has begun once this runs.
      app.addHook('preClose', (done) => { closing.resolve(); done() })
      app.get('/s', async (request, reply) => {
        // The server starts to close while this handler works.
        closed = app.close()
        await closing.promise
        const done = reply.sseSubscribe('closing')
        called.resolve()
        return done
      })
    })
    redis.signal('SIGSTOP')
    const response = fetch(url)
    await called.promise
    await sleep(SYNC_WAIT)
    redis.signal('SIGCONT')
    const res = await response
    t.equal(res.status, 503, 'refused once the sync is done, not opened when the wait ran out')
    t.equal(res.headers.get('retry-after'), '5')
    t.match(await res.json(), { code: 'FST_ERR_SSE_SERVER_CLOSING' })
    // The client's keep-alive connection would hold the close.
    app.server.closeIdleConnections()
    await closed
    t.same(app.sse.stats().streams.opened, 0, 'no stream opened')
  })

  t.test('an sse: true handler that does not wait is answered 503 by shutdown; the sync ends after it without sending again', async (t) => {
    const called = deferred()
    let done: Promise<void> | undefined
    const { app, redis, url, warnings } = await node(t, (app) => {
      app.get('/s', { sse: true }, async (request, reply) => {
        done = reply.sseSubscribe('refused')
        called.resolve()
      })
    })
    redis.signal('SIGSTOP')
    const response = fetch(url)
    await called.promise
    const closed = app.close()
    const res = await response
    t.equal(res.status, 503)
    t.match(await res.json(), { code: 'FST_ERR_SSE_SERVER_CLOSING' })
    redis.signal('SIGCONT')
    await done
    app.server.closeIdleConnections()
    await closed
    t.same(app.sse.stats().streams.opened, 0, 'no stream opened')
    t.same(warnings.filter((w) => !/a topic could not be read/.test(w)), ['The server is shutting down; reconnect later'], 'the 503 logged once, nothing sent again')
  })

  t.test('the client leaves a stream that opened while the broker synced: once the sync is done, nothing subscribes', async (t) => {
    let done: Promise<void> | undefined
    const { app, broker, redis, url } = await node(t, (app) => {
      app.get('/s', (request, reply) => {
        done = reply.sseSubscribe('left')
        return done
      })
    })
    redis.signal('SIGSTOP')
    const controller = new AbortController()
    // The response comes once the wait has run out: the stream opened, the sync goes on.
    const res = await fetch(url, { signal: controller.signal })
    t.equal(res.status, 200)
    const ended = new Promise<unknown>((resolve) => {
      const onClose = (message: unknown): void => {
        unsubscribe('fastify-sse-stream:stream:close', onClose)
        resolve(message)
      }
      subscribe('fastify-sse-stream:stream:close', onClose)
    })
    controller.abort()
    t.match(await ended, { reason: 'client-closed' })
    redis.signal('SIGCONT')
    await done
    t.same(app.sse.stats().streams.byTopic, {}, 'no subscriber')
    t.equal(broker.stats.connects, 0, 'the topic was never watched')
  })

  t.test('a stream that opened while the broker synced, for a client whose id was refused, starts with a reset once the sync is done', async (t) => {
    const { app, redis, port } = await node(t, (app) => {
      app.get('/s', (request, reply) => reply.sseSubscribe((request.query as { topics: string }).topics))
    })
    redis.signal('SIGSTOP')
    const reader = new Reader('refused-id')
    // Longer than lastEventIdMaxLength: the plugin refuses it, and the hub is told so.
    reader.lastEventId = 'x'.repeat(2000)
    // Resolves with the response's head: the wait ran out, the stream opened, the sync goes on.
    await reader.connect(port)
    redis.signal('SIGCONT')
    await reader.until((f) => f.length === 1)
    t.match(reader.resets, [{ topic: 'refused-id', reason: 'unknown' }], 'the refused id is told')
    await app.sse.publish('refused-id', { data: 'live' })
    await reader.until((f) => f.length === 2)
    t.same(reader.values, ['live'])
    await reader.disconnect()
  })
})

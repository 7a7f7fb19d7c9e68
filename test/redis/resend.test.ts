// A publish whose reply was lost with its connection is re-sent by ioredis after the reconnect
// (`autoResendUnfulfilledCommands`): the PUBLISH script knows it by its node and sequence number,
// and answers the first id instead of storing the event twice.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import sse from '../../index.js'
import { type RedisBroker, type RedisBrokerOptions, type RedisClient, redisBroker } from '../../lib/brokers/redis.js'
import { PUBLISH } from '../../lib/brokers/redis-scripts.js'
import { Reader } from '../helpers/redis-cluster.js'
import { type RedisServer, client, redisAvailable, startRedis } from '../helpers/redis.js'

type Args = Array<string | Buffer | number>

/**
 * The user's client as the broker sees it, with its PUBLISH commands recorded (keys and arguments
 * after the SHA), and the next one replaced, when `next` is set, by whatever it does with them:
 * that is how a test plays what ioredis does after a reconnect, on a real server.
 */
class Recorder {
  readonly sent: Args[] = []
  next: ((args: Args) => Promise<unknown>) | null = null
  readonly client: RedisClient

  constructor (readonly redis: Redis) {
    this.client = new Proxy(redis, {
      get: (target, name) => {
        if (name === 'evalsha') {
          return (sha: string, ...args: Args) => {
            this.sent.push(args)
            const next = this.next
            this.next = null
            return next === null ? target.evalsha(sha, ...args as [number]) : next(args)
          }
        }
        const value = Reflect.get(target, name, target) as unknown
        return typeof value === 'function' ? value.bind(target) : value
      }
    }) as unknown as RedisClient
  }

  /** The command sent again as it was, by SHA: the first id, or the script's error. */
  again (args: Args): Promise<unknown> {
    return this.redis.evalsha(PUBLISH.sha, ...args as [number])
  }
}

async function node (t: Test, redis: RedisServer, options: Partial<RedisBrokerOptions> = {}): Promise<{ app: FastifyInstance, broker: RedisBroker, recorder: Recorder, port: number }> {
  const c = client(redis)
  const recorder = new Recorder(c)
  const broker = redisBroker({ client: recorder.client, block: 300, grace: 300, ...options })
  const app = Fastify()
  await app.register(sse, { heartbeat: 500, hub: { broker } })
  app.get('/s', (request, reply) => reply.sseSubscribe((request.query as { topics: string }).topics))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => {
    app.server.closeAllConnections()
    await app.close()
    c.disconnect()
  })
  return { app, broker, recorder, port: (app.server.address() as { port: number }).port }
}

/** A topic's stream as [id, data] pairs, data read from the stored frame. */
async function stored (c: Redis, topic: string): Promise<Array<[string, string]>> {
  const entries = await c.xrange('sse:{' + topic + '}:s', '-', '+')
  return entries.map(([id, fields]) => [id, fields[fields.indexOf('d') + 1]!.replace(/^data: /, '').trim()])
}

t.test('with Redis', redisAvailable(), async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())

  t.test('the same command twice stores once, and answers the first id, by EVALSHA and by EVAL', async (t) => {
    const { app, recorder } = await node(t, redis)
    const c = recorder.redis
    const first = await app.sse.publish('twice', { data: 'one' })
    const [sent] = recorder.sent
    t.equal(await recorder.again(sent!), first, 'the re-sent command answers the first id')
    // After a restart Redis knows no script: the broker sends EVAL, with the same arguments.
    await c.script('FLUSH')
    t.equal(await c.eval(PUBLISH.source, ...sent as [number]), first, 'and so does its EVAL')
    t.same(await stored(c, 'twice'), [[first, 'one']], 'stored once')
    // The next publish goes on at the next offset.
    t.match(await app.sse.publish('twice', { data: 'two' }), /-2$/)
  })

  t.test('through the broker: a reply lost, the command re-sent (the script flushed meanwhile), the first id', async (t) => {
    const { app, recorder } = await node(t, redis)
    const c = recorder.redis
    let firstReply: unknown
    recorder.next = async (args) => {
      // Redis applies the command; its reply is lost with the connection; the server restarts
      // without its scripts; the client sends the same command again.
      firstReply = await c.evalsha(PUBLISH.sha, ...args as [number])
      await c.script('FLUSH')
      return await c.evalsha(PUBLISH.sha, ...args as [number])
    }
    const id = await app.sse.publish('lost', { data: 'once' })
    t.equal(id, firstReply, 'publish() resolves with the id the first run gave')
    t.same(await stored(c, 'lost'), [[id, 'once']])
  })

  t.test('an older command re-sent after later ones: found among the newest entries', async (t) => {
    const { app, recorder } = await node(t, redis)
    const b = await node(t, redis)
    const c = recorder.redis
    const ids: string[] = []
    for (const data of ['a', 'b', 'c']) {
      ids.push(await app.sse.publish('older', { data }))
      // Another process's publishes in between.
      await b.app.sse.publish('older', { data: data + '!' })
    }
    t.equal(await recorder.again(recorder.sent[0]!), ids[0])
    t.equal(await recorder.again(recorder.sent[1]!), ids[1])
    t.equal(await recorder.again(recorder.sent[2]!), ids[2])
    t.same((await stored(c, 'older')).map(([, data]) => data), ['a', 'a!', 'b', 'b!', 'c', 'c!'], 'nothing stored twice')
    // With an idempotency key as well: the key answers first, as before.
    const keyed = await app.sse.publish('older', { data: 'k' }, { idempotencyKey: 'k' })
    t.equal(await recorder.again(recorder.sent.at(-1)!), keyed)
    t.equal(await app.sse.publish('older', { data: 'k' }, { idempotencyKey: 'k' }), keyed, 'a retry with the key')
    t.equal(await c.xlen('sse:{older}:s'), 7)
  })

  t.test('an older command whose event is no longer among the newest: a typed rejection, nothing stored', async (t) => {
    const { app, recorder } = await node(t, redis, { maxLen: 2 })
    const c = recorder.redis
    await app.sse.publish('gone', { data: 0 })
    for (let i = 1; i < 5; i++) await app.sse.publish('gone', { data: i })
    const length = await c.xlen('sse:{gone}:s')
    await t.rejects(recorder.again(recorder.sent[0]!), /RESENT/, 'the script answers an error')
    // Through the broker: publish() rejects with FST_ERR_SSE_BROKER, its cause saying why.
    const old = recorder.sent[0]!
    recorder.next = (args) => recorder.again(old)
    await t.rejects(app.sse.publish('gone', { data: 'new' }), { code: 'FST_ERR_SSE_BROKER', cause: { code: 'ERESENT', message: /re-sent/ } })
    t.equal(await c.xlen('sse:{gone}:s'), length, 'nothing stored')
  })

  t.test('an EVAL sent after NOSCRIPT for a command that never ran, behind a later one of its node: stored as new', async (t) => {
    const { app, recorder } = await node(t, redis)
    const c = recorder.redis
    const a = await app.sse.publish('fallback', { data: 'a' })
    // The second publish never reaches Redis (as if its EVALSHA met NOSCRIPT and its EVAL waits).
    recorder.next = () => Promise.reject(new Error('not sent'))
    await t.rejects(app.sse.publish('fallback', { data: 'b' }), { code: 'FST_ERR_SSE_BROKER' })
    const never = recorder.sent[1]!
    // A later publish of this node runs first (another process loaded the script meanwhile).
    const later = await app.sse.publish('fallback', { data: 'c' })
    // As a re-send (not a fallback), a number below the last one, not in the stream, is an error.
    await t.rejects(recorder.again(never), /RESENT/)
    // As the EVAL after NOSCRIPT, it never ran: a new event.
    const fallback = [...never]
    fallback[fallback.length - 1] = '1'
    const id = String(await c.eval(PUBLISH.source, ...fallback as [number]))
    t.not(id, a)
    t.not(id, later)
    t.same((await stored(c, 'fallback')).map(([, data]) => data), ['a', 'c', 'b'], 'stored once, after the later one')
    // The node's field keeps the later number: a re-send of that one still answers its first id.
    t.equal(await recorder.again(recorder.sent[2]!), later)
    // And the fallback sent twice is found the second time.
    t.equal(String(await c.eval(PUBLISH.source, ...fallback as [number])), id)
  })

  t.test('after NOSCRIPT, a publish waits for the fallbacks of those sent before it: their order is kept', async (t) => {
    const { app, recorder } = await node(t, redis)
    const c = recorder.redis
    await app.sse.publish('order', { data: 'warm' })
    await c.script('FLUSH')
    // On one connection: EVALSHA a, PING, EVALSHA b. The NOSCRIPT of a is handled (its EVAL sent)
    // before PING's answer, which publishes c: c must not run before b's EVAL.
    const a = app.sse.publish('order', { data: 'a' })
    const cc = c.ping().then(() => app.sse.publish('order', { data: 'c' }))
    const b = app.sse.publish('order', { data: 'b' })
    const ids = await Promise.all([a, b, cc])
    t.same((await stored(c, 'order')).map(([id, data]) => [id, data]).slice(1), [[ids[0], 'a'], [ids[1], 'b'], [ids[2], 'c']], 'stored in the order sent')
    t.equal(await app.sse.publish('order', { data: 'd' }).then((id) => id.endsWith('-5')), true, 'and the next goes on')
  })

  t.test('a publish held past its timeout has been rejected, and is never sent', async (t) => {
    const { app, recorder } = await node(t, redis, { timeout: 300 })
    const c = recorder.redis
    const watcher = client(redis)
    t.teardown(() => watcher.disconnect())
    let last = await app.sse.publish('held', { data: 'warm' })
    await c.script('FLUSH')
    // EVALSHA a, PING, BLPOP for 1 s, EVALSHA b: late, published on PING's answer, is held until
    // b's answer, which comes after the BLPOP, past late's timeout.
    const a = app.sse.publish('held', { data: 'a' }).catch(() => {})
    let late!: Promise<string>
    const pong = c.ping().then(() => { late = app.sse.publish('held', { data: 'late' }) })
    void c.blpop('held:nothing', 1)
    const b = app.sse.publish('held', { data: 'b' }).catch(() => {})
    await pong
    await t.rejects(late, { code: 'FST_ERR_SSE_BROKER', cause: { code: 'ETIMEDOUT' } })
    await Promise.all([a, b])
    // a and b timed out too, but were sent: they are stored once the BLPOP is over.
    const seen: string[] = []
    while (seen.length < 2) {
      const reply = await watcher.xread('BLOCK', 5000, 'STREAMS', 'sse:{held}:s', last)
      for (const [id] of reply![0]![1]) {
        seen.push(id)
        last = id
      }
    }
    // Anything sent with them has run by the time the client's next command answers.
    await c.ping()
    t.same((await stored(c, 'held')).map(([, data]) => data), ['warm', 'a', 'b'], 'late was not sent')
  })

  t.test('the meta hash keeps one field per process; past 16, those idle for idempotencyTtl go', async (t) => {
    const c = client(redis)
    t.teardown(() => c.disconnect())
    const meta = 'sse:{nodes}:m'
    const { app } = await node(t, redis)
    await app.sse.publish('nodes', { data: 0 })
    await app.sse.publish('nodes', { data: 1 })
    t.equal(await c.hlen(meta), 3, 'o, t and one field for the process')
    // 15 processes that published long ago (t = 1000 ms), and one that just did.
    for (let i = 0; i < 15; i++) await c.hset(meta, 'n:old' + String(i), '7 1000-' + String(i))
    const recent = (await c.xrevrange('sse:{nodes}:s', '+', '-', 'COUNT', 1))[0]![0]
    await c.hset(meta, 'n:recent', '3 ' + recent)
    t.equal(await c.hlen(meta), 19)
    // A process publishing to the topic again adds nothing; a new one checks the others.
    await app.sse.publish('nodes', { data: 2 })
    t.equal(await c.hlen(meta), 19)
    const b = await node(t, redis)
    await b.app.sse.publish('nodes', { data: 3 })
    const fields = Object.keys(await c.hgetall(meta)).sort()
    t.equal(fields.length, 5, 'o, t, the two live processes and the recent one: ' + fields.join(' '))
    t.ok(fields.includes('n:recent'))
    t.notOk(fields.some((f) => f.startsWith('n:old')), 'the idle ones are dropped')
  })
})

t.test('with AOF: SIGKILL while 200 publishes are in flight; each stored and delivered once', redisAvailable(), async (t) => {
  const redis = await startRedis({ aof: true })
  t.teardown(() => redis.stop())
  const a = await node(t, redis, { timeout: 20_000 })
  const b = await node(t, redis)
  const c = a.recorder.redis
  const reader = new Reader('kill')
  await reader.connect(b.port)
  await reader.until(() => reader.lastEventId !== undefined)
  const resolved = new Map<string, string>()
  let rejected = 0
  for (let round = 0; round < 3; round++) {
    let settled = 0
    let killAt: () => void
    const half = new Promise<void>((resolve) => { killAt = resolve })
    const publishes = Array.from({ length: 200 }, (_, i) => {
      const data = `r${round}-${i}`
      return a.app.sse.publish('kill', { data }).then((id) => { resolved.set(data, id) }, () => { rejected++ }).finally(() => {
        if (++settled === 20) killAt()
      })
    })
    // Killed once the first answers came back: the rest are on the wire or in Redis.
    await half
    await redis.kill()
    await redis.start()
    await Promise.all(publishes)
  }
  const entries = await stored(c, 'kill')
  const byData = new Map<string, string[]>()
  for (const [id, data] of entries) byData.set(data, [...byData.get(data) ?? [], id])
  const twice = [...byData].filter(([, ids]) => ids.length > 1)
  t.same(twice, [], 'no event stored twice')
  t.equal(rejected, 0, 'none rejected')
  t.equal(resolved.size, 600, 'every publish resolved')
  for (const [data, id] of resolved) {
    if (byData.get(data)?.[0] !== id) t.fail(`${data} resolved with ${id}, stored as ${String(byData.get(data))}`)
  }
  t.equal(entries.length, byData.size)
  await reader.until((f) => f.length === entries.length, 30_000)
  t.same(reader.values, entries.map(([, data]) => data), 'the subscriber got each stored event once, in order')
  t.same(reader.resets, [])
  await reader.disconnect()
})

// app.sse.pipe() on the Redis broker starts a topic's producer at most once across every process
// that shares the broker: a keyed request repeated on another node resumes the work there instead
// of running it again, two nodes that pipe one topic at once run it once, a finished topic is not
// run again, and a claim Redis cannot answer rejects, typed, in bounded time, starting nothing.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import sse from '../../index.js'
import { type RedisBroker, redisBroker } from '../../lib/brokers/redis.js'
import { type Node, startNode } from '../helpers/redis-cluster.js'
import { type RedisServer, client, redisAvailable, startRedis } from '../helpers/redis.js'
import { type Frame, SseReader, parseFrames } from '../helpers/hub.js'
import { listen, within } from '../helpers/http.js'
import { seedRoutes } from '../../examples/demo.js'

interface Read { status: number, frames: Frame[] }

/**
 * POSTs the keyed request to a node, as the seed's fetch-based front end does, and reads its
 * frames: all of them (the stream ends with the work), or `stop` of them, then aborts.
 */
async function post (port: number, key: string, lastEventId?: string, stop = Infinity): Promise<Read> {
  const controller = new AbortController()
  const headers: Record<string, string> = { 'idempotency-key': key }
  if (lastEventId !== undefined) headers['last-event-id'] = lastEventId
  const res = await fetch(`http://127.0.0.1:${port}/chat?count=6&interval=40`, { method: 'POST', headers, signal: controller.signal })
  const frames: Frame[] = []
  if (res.body === null) return { status: res.status, frames }
  const decoder = new TextDecoder()
  let text = ''
  try {
    for await (const chunk of res.body) {
      const parsed = parseFrames(text + decoder.decode(chunk as Uint8Array, { stream: true }))
      text = parsed.rest
      frames.push(...parsed.frames)
      if (frames.length >= stop) {
        controller.abort()
        break
      }
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error
  }
  return { status: res.status, frames }
}

const values = (frames: Frame[]): number[] => frames.map((f) => (JSON.parse(f.data!) as { i: number }).i)

t.test('across processes', redisAvailable(), async (t) => {
  const redis: RedisServer = await startRedis()
  t.teardown(() => redis.stop())
  const check = client(redis)
  t.teardown(() => { check.disconnect() })
  const nodes: Node[] = await Promise.all([0, 1].map(() => startNode(redis.port, { broker: { block: 1000, grace: 1000 } })))
  t.teardown(() => Promise.all(nodes.map((node) => node.close())))
  const [a, b] = nodes as [Node, Node]

  t.test('a keyed POST repeated on another node resumes the work there, which runs once', async (t) => {
    const first = await post(a.port, 'k1', undefined, 2)
    t.same(values(first.frames), [0, 1])
    // The same key on B, with the id of the last event read: the rest, once, in order, then the end.
    const rest = await post(b.port, 'k1', first.frames[1]!.id)
    t.equal(rest.status, 200)
    t.same(values(rest.frames), [2, 3, 4, 5])
    const ids = [...first.frames, ...rest.frames].map((f) => Number(f.id!.split('-')[1]))
    t.same(ids, [1, 2, 3, 4, 5, 6], 'one history: no second run\'s events')
    t.same(await check.lrange('runs:chat:k1', 0, -1), [String(a.child.pid)], 'the work ran once, on A')
    // Done: with the last id, B answers 204; without one, the whole stream again, and no new run.
    t.equal((await post(b.port, 'k1', rest.frames[3]!.id)).status, 204)
    t.same(values((await post(b.port, 'k1')).frames), [0, 1, 2, 3, 4, 5])
    t.equal(await check.llen('runs:chat:k1'), 1)
  })

  t.test('both nodes pipe the same topics at once: each topic runs once', async (t) => {
    const topics = Array.from({ length: 20 }, (_, i) => 'race-' + i)
    await within(Promise.all(topics.flatMap((topic) => [a.pipe(topic, 3, 10), b.pipe(topic, 3, 10)])), 15000, 'every pipe to settle')
    const winners = new Set<string>()
    for (const topic of topics) {
      const runs = await check.lrange('runs:' + topic, 0, -1)
      t.equal(runs.length, 1, topic + ' ran once')
      winners.add(runs[0]!)
      // Three events and the end marker: one history.
      t.equal(await check.xlen('sse:{' + topic + '}:s'), 4, topic + ' holds one run')
    }
    t.comment(`runs by ${winners.size} node(s)`)
  })

  t.test('a finished topic is not run again, on any node', async (t) => {
    await a.pipe('done', 2, 0)
    const started = Date.now()
    await b.pipe('done', 2, 0)
    await a.pipe('done', 2, 0)
    t.ok(Date.now() - started < 2000, 'the losing calls resolve at once')
    t.equal(await check.llen('runs:done'), 1)
    t.equal(await check.xlen('sse:{done}:s'), 3)
  })

  t.test('a topic that holds events published by hand is not piped into', async (t) => {
    await b.publish('used', 'by hand')
    await a.pipe('used', 2, 0)
    t.equal(await check.llen('runs:used'), 0)
    t.equal(await check.xlen('sse:{used}:s'), 1)
  })
})

interface App { app: FastifyInstance, broker: RedisBroker, client: Redis }

async function app (t: Test, redis: RedisServer): Promise<App> {
  const c = client(redis)
  const broker = redisBroker({ client: c, block: 300, grace: 300, timeout: 500 })
  const app = Fastify()
  await app.register(sse, { hub: { broker } })
  t.teardown(async () => {
    await app.close()
    c.disconnect()
  })
  return { app, broker, client: c }
}

async function * events (n: number): AsyncGenerator<{ data: number }> {
  for (let i = 0; i < n; i++) yield { data: i }
}

t.test('a claim Redis cannot answer', redisAvailable(), async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const { app: a, client: c } = await app(t, redis)
  await c.ping()
  await redis.kill()
  let calls = 0
  const source = (): AsyncGenerator<{ data: number }> => { calls++; return events(2) }
  const started = Date.now()
  const piped = a.sse.pipe('down', source)
  t.equal(a.sse.pipe('down', source), piped, 'a second call while the claim is out shares it')
  await t.rejects(within(piped, 3000, 'the claim'), { code: 'FST_ERR_SSE_BROKER' })
  t.ok(Date.now() - started < 1500, 'rejected within the broker\'s timeout')
  t.equal(calls, 0, 'the work did not start without a claim')
  // Once Redis is back, a retry takes the claim and runs the work.
  await redis.start()
  for (;;) {
    try {
      await a.sse.pipe('down', source)
      break
    } catch (error) {
      t.equal((error as { code: string }).code, 'FST_ERR_SSE_BROKER')
    }
  }
  t.equal(calls, 1)
  t.equal(await c.xlen('sse:{down}:s'), 3)
})

t.test('an app that closes while its claim is out starts nothing', redisAvailable(), async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const c = client(redis)
  t.teardown(() => { c.disconnect() })
  const broker = redisBroker({ client: c, timeout: 10000 })
  const app = Fastify()
  await app.register(sse, { hub: { broker } })
  await c.ping()
  // Stopped: the claim is sent, and waits for its answer.
  redis.signal('SIGSTOP')
  let calls = 0
  const piped = app.sse.pipe('closing', () => { calls++; return events(1) })
  const closed = app.close()
  // The hub closes first; the broker's close then waits on Redis. A closed hub refuses a publish
  // at once (an open one's would wait on Redis).
  for (;;) {
    const publish = app.sse.publish('probe', { data: 1 }).then(() => 'stored', (error: { code: string }) => error.code)
    const turn = new Promise((resolve) => setImmediate(() => resolve('pending')))
    if (await Promise.race([publish, turn]) === 'FST_ERR_SSE_HUB_CLOSED') break
  }
  redis.signal('SIGCONT')
  await within(piped, 5000, 'the claim')
  await closed
  t.equal(calls, 0, 'granted after the close: the work did not start')
  t.equal(await c.get('sse:{closing}:p') === null, false, 'the claim was taken')
  await t.rejects(broker.claim('after'), /closed/, 'a closed broker takes no claim')
})

t.test('the demo\'s seed stream, started on one instance, resumes on another', redisAvailable(), async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const starts: string[] = []
  const urls = await Promise.all([0, 1].map(async () => {
    const c = client(redis)
    const app = Fastify()
    await app.register(sse, { hub: { broker: redisBroker({ client: c, block: 300, grace: 300 }) } })
    await app.register(seedRoutes, { interval: 60, retry: 1000, onStart: (key: string) => starts.push(key) })
    t.teardown(async () => {
      app.server.closeAllConnections()
      await app.close()
      c.disconnect()
    })
    return listen(app)
  }))
  const first = new SseReader(`${urls[0]!}/sse/seed-1`, { method: 'POST' })
  await first.waitFor((f) => f.length >= 2, 5000, 'two events on A')
  first.destroy()
  const id = first.frames[1]!.id!
  // The resume URL on the other instance, with the id of the last event read.
  const rest = new SseReader(`${urls[1]!}/sse/seed-1`, { lastEventId: id })
  await within(rest.closed, 5000, 'the rest of the stream on B')
  t.same(rest.frames.map((f) => f.id!.split('-')[1]), ['3', '4', '5', '6'])
  t.equal(rest.frames.at(-1)!.event, 'end')
  t.same(starts, ['seed-1'], 'the work ran once')
})

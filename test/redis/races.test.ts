// The broker's branches that depend on what its reader sees and when, made to happen every time:
// the reader's socket is paused (it stops reading, as a stalled process would) while the test
// changes what Redis holds, and the reader's connection is cut with CLIENT KILL under it. Also: a
// script error that is not NOSCRIPT, and calls the hub never makes twice.
import t from 'tap'
import Fastify from 'fastify'
import type { Redis } from 'ioredis'
import sse from '../../index.js'
import { type RedisClient, redisBroker } from '../../lib/brokers/redis.js'
import { ORIGIN } from '../../lib/hub/position.js'
import { Reader } from '../helpers/redis-cluster.js'
import { client, redisAvailable, startRedis } from '../helpers/redis.js'

t.test('races', redisAvailable(), async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const admin = client(redis)
  t.teardown(() => admin.disconnect())

  let names = 0
  /** A node; its reader connections are named, and kept here, so that the test can reach them. */
  async function node () {
    const c = client(redis)
    const readers: Redis[] = []
    const readerName = `reader-${++names}`
    const duplicate = c.duplicate.bind(c)
    c.duplicate = (override?: Record<string, unknown>) => {
      const reader = duplicate({ ...override, connectionName: readerName })
      readers.push(reader)
      return reader
    }
    // block: long enough that no read times out, or is taken for wedged, while its socket is paused.
    const broker = redisBroker({ client: c as unknown as RedisClient, block: 10_000, grace: 1000, timeout: 1000 })
    const warnings: string[] = []
    const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { warnings.push(JSON.parse(line).msg) } } } })
    await app.register(sse, { heartbeat: 500, hub: { broker } })
    app.get('/s', (request, reply) => reply.sseSubscribe((request.query as { topics: string }).topics))
    await app.listen({ port: 0, host: '127.0.0.1' })
    t.teardown(async () => {
      // A paused reader would hold the close for its whole block time.
      for (const reader of readers) reader.stream.resume()
      app.server.closeAllConnections()
      await app.close()
      c.disconnect()
    })
    /** The reader's Redis client id, once it is blocked in its XREAD (the topics it reads are set). */
    async function blockedReader (): Promise<string> {
      // Nothing tells when a command is blocked in Redis: CLIENT LIST is asked, for 10 s at most.
      for (let i = 0; i < 2000; i++) {
        const list = await admin.client('LIST') as string
        const line = list.split('\n').find((l) => l.includes(` name=${readerName} `) && l.includes(' cmd=xread') && / flags=\S*b/.test(l))
        if (line !== undefined) return /(?:^| )id=(\d+)/.exec(line)![1]!
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      throw new Error('the reader never blocked in XREAD')
    }
    return { app, broker, client: c, readers, warnings, blockedReader, port: (app.server.address() as { port: number }).port }
  }

  /**
   * Stops a node's reader from reading, once it is blocked in its XREAD. A paused socket whose
   * buffer is empty still sees its end (Node reads on until its buffer fills): the reply that the
   * next publish brings waits in that buffer, and keeps the end of the connection, cut by kill(),
   * unseen behind it until the socket is resumed.
   */
  async function cut (node: { blockedReader: () => Promise<string>, readers: Redis[] }): Promise<void> {
    killing.set(node, await node.blockedReader())
    node.readers.at(-1)!.stream.pause()
  }
  const killing = new Map<object, string>()
  async function kill (node: object): Promise<void> {
    await admin.client('KILL', 'ID', killing.get(node)!)
  }

  async function calls (command: string): Promise<number> {
    const info = await admin.info('commandstats')
    return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0)
  }

  /** The server's clock, in ms. */
  async function now (): Promise<number> {
    const [s, us] = await admin.time()
    return Number(s) * 1000 + Math.floor(Number(us) / 1000)
  }

  t.test('a script error other than NOSCRIPT is not run again with EVAL', async (t) => {
    const a = await node()
    // The first publish loads the script (EVALSHA answers NOSCRIPT on a new server, EVAL runs it).
    await a.app.sse.publish('script-ok', { data: 1 })
    await admin.set('sse:{script-wrong}:s', 'a string')
    const evals = await calls('eval')
    const evalshas = await calls('evalsha')
    await t.rejects(a.app.sse.publish('script-wrong', { data: 1 }), { code: 'FST_ERR_SSE_BROKER', cause: { message: /WRONGTYPE/ } })
    t.equal(await calls('evalsha'), evalshas + 1, 'EVALSHA ran, and failed')
    t.equal(await calls('eval'), evals, 'the error is not taken for NOSCRIPT: the script is not sent again')
    // The claim of a piped topic runs its script the same way.
    await a.app.sse.pipe('claim-ok', [{ data: 1 }])
    await admin.hset('sse:{claim-wrong}:p', 'field', 'a hash')
    const claimEvals = await calls('eval')
    const claimEvalshas = await calls('evalsha')
    await t.rejects(a.app.sse.pipe('claim-wrong', [{ data: 1 }]), { code: 'FST_ERR_SSE_BROKER', cause: { message: /WRONGTYPE/ } })
    t.equal(await calls('evalsha'), claimEvalshas + 1, 'the claim ran, and failed')
    t.equal(await calls('eval'), claimEvals, 'and was not sent again')
  })

  t.test('events a sync delivered first are not delivered again when the reader reads them', async (t) => {
    const a = await node()
    const b = await node()
    const first = new Reader('skip')
    await first.connect(b.port)
    await first.until(() => first.lastEventId !== undefined)
    // b's reader stops reading: the reply to its XREAD (the first event) waits in its socket, and
    // its connection is cut behind it.
    await cut(b)
    await a.app.sse.publish('skip', { data: 1 })
    await kill(b)
    const id = await a.app.sse.publish('skip', { data: 2 })
    // A client that a served the second event comes to b, ahead of b's head: b syncs the topic,
    // and delivers both events to its subscribers before its reader sees them.
    const second = new Reader('skip')
    second.lastEventId = id
    await second.connect(b.port)
    await first.until((f) => f.length === 2)
    await a.app.sse.publish('skip', { data: 3 })
    const reads = b.broker.stats.reads
    b.readers.at(-1)!.stream.resume()
    // The reader reads the first event (held already), then reconnects and reads on from it: the
    // second (held already) and the third (new).
    await first.until((f) => f.length === 3)
    await second.until((f) => f.length === 1)
    t.ok(b.broker.stats.reads >= reads + 2, 'the reader read both')
    t.same(first.values, [1, 2, 3], 'each event once')
    t.same(second.values, [3])
    t.same(first.resets, [], 'the history is the same one: no reset')
    t.same(second.resets, [])
    await second.disconnect()
    await first.disconnect()
  })

  t.test('a history lost and published again up to the same offset is told as lost, and read from its start', async (t) => {
    const a = await node()
    const b = await node()
    const reader = new Reader('same')
    await reader.connect(b.port)
    await reader.until(() => reader.lastEventId !== undefined)
    for (let i = 0; i < 3; i++) await a.app.sse.publish('same', { data: i })
    await reader.until((f) => f.length === 3)
    await cut(b)
    const before = await a.app.sse.publish('same', { data: 3 })
    const last = await now()
    await kill(b)
    // Redis loses its data (as a restart without persistence does), and a publishes as many events
    // again, in a later millisecond: the same offsets, other times.
    await admin.flushall()
    while (await now() <= last);
    for (let i = 0; i < 4; i++) await a.app.sse.publish('same', { data: 'new ' + i })
    const losses = b.broker.stats.losses
    b.readers.at(-1)!.stream.resume()
    await reader.until((f) => f.length === 9)
    t.equal(b.broker.stats.losses, losses + 1, 'the probe found the loss')
    t.ok(b.warnings.some((w) => /lost part of a topic/.test(w)))
    t.match(reader.resets, [{ topic: 'same', reason: 'lost', from: before, head: '0-0' }])
    t.same(reader.values, [0, 1, 2, 3, 'new 0', 'new 1', 'new 2', 'new 3'], 'told, then the new history from its start')
    await reader.disconnect()
  })

  t.test('a reader that fell behind the trimming is told, and goes on from the head', async (t) => {
    const a = await node()
    const b = await node()
    const reader = new Reader('behind')
    await reader.connect(b.port)
    await reader.until(() => reader.lastEventId !== undefined)
    for (let i = 0; i < 3; i++) await a.app.sse.publish('behind', { data: i })
    await reader.until((f) => f.length === 3)
    await cut(b)
    const before = await a.app.sse.publish('behind', { data: 3 })
    await kill(b)
    // Three more, and the stream trimmed to its newest: the last event b read is gone.
    let head = ''
    for (let i = 4; i < 7; i++) head = await a.app.sse.publish('behind', { data: i })
    await admin.xtrim('sse:{behind}:s', 'MAXLEN', 1)
    const losses = b.broker.stats.losses
    const reads = b.broker.stats.reads
    b.readers.at(-1)!.stream.resume()
    await reader.until((f) => f.length === 5)
    t.equal(b.broker.stats.losses, losses + 1, 'the probe found the loss')
    t.match(reader.resets, [{ topic: 'behind', reason: 'lost', from: before, head }])
    await a.app.sse.publish('behind', { data: 'live' })
    await reader.until((f) => f.length === 6)
    t.same(reader.values, [0, 1, 2, 3, 'live'], 'what was trimmed away is not sent: the topic goes on from the head')
    t.equal(reader.resets.length, 1, 'told once')
    t.equal(b.broker.stats.reads, reads + 2, 'two reads: the reply that waited, then the live event (nothing before the head read again)')
    await reader.disconnect()
  })

  t.test('watch, unwatch and close are safe to call again', async (t) => {
    const a = await node()
    const reader = new Reader('again')
    await reader.connect(a.port)
    await reader.until(() => reader.lastEventId !== undefined)
    await a.app.sse.publish('again', { data: 1 })
    await reader.until((f) => f.length === 1)
    await a.blockedReader()
    const wakes = a.broker.stats.wakes
    // What a race of the hub's calls would do: a topic watched again, one not watched unwatched.
    a.broker.watch('again', ORIGIN)
    a.broker.unwatch('never')
    await a.app.sse.publish('again', { data: 2 })
    await reader.until((f) => f.length === 2)
    t.same(reader.values, [1, 2])
    t.equal(a.broker.stats.wakes, wakes, 'the blocked read was not woken: the watched topics did not change')
    await reader.disconnect()
    const dels = await calls('del')
    await a.broker.close()
    t.equal(await calls('del'), dels + 1, 'the close removes its wake key')
    await a.broker.close()
    t.equal(await calls('del'), dels + 1, 'a second close does nothing')
  })
})

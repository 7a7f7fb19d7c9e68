// Several processes share topics through Redis: an event published on one node reaches every
// node's subscribers, and a Last-Event-ID from one node resumes exactly on another.
import t from 'tap'
import { type Node, Reader, startNode } from '../helpers/redis-cluster.js'
import { type RedisServer, redisAvailable, startRedis } from '../helpers/redis.js'
import { seededRandom } from '../helpers/random.js'

// Three node processes, a randomized run and 1,000 cycles: about 35 s alone on 2 cores, more when
// the machine is busy; the file gets more than the suite's 60 s.
t.setTimeout(180_000)

t.test('cross-node', redisAvailable(), async (t) => {
  const redis: RedisServer = await startRedis()
  t.teardown(() => redis.stop())
  const nodes: Node[] = await Promise.all([0, 1, 2].map(() => startNode(redis.port, { broker: { block: 1000, grace: 1000 } })))
  t.teardown(() => Promise.all(nodes.map((node) => node.close())))

  t.test('an event published on one node reaches subscribers on every node, once, in order', async (t) => {
    const readers = nodes.map(() => new Reader('news'))
    await Promise.all(readers.map((reader, i) => reader.connect(nodes[i]!.port)))
    // Primed: each reader holds a position before the first event.
    await Promise.all(readers.map((reader) => reader.until(() => reader.lastEventId !== undefined)))
    const ids: string[] = []
    for (let i = 0; i < 30; i++) ids.push(await nodes[i % 3]!.publish('news', i))
    await Promise.all(readers.map((reader) => reader.until((f) => f.length === 30)))
    for (const reader of readers) {
      t.same(reader.values, Array.from({ length: 30 }, (_, i) => i))
      t.same(reader.frames.map((f) => f.id), ids, 'each event carries the id its publish resolved with')
      await reader.disconnect()
    }
    // Offsets are per topic and without gaps, whichever node published.
    t.same(ids.map((id) => Number(id.split('-')[1])), Array.from({ length: 30 }, (_, i) => i + 1))
  })

  t.test('a client moves between nodes with its Last-Event-ID and misses nothing', async (t) => {
    const reader = new Reader('moves')
    let sent = 0
    for (let hop = 0; hop < 6; hop++) {
      await reader.connect(nodes[hop % 3]!.port)
      for (let i = 0; i < 5; i++) await nodes[(hop + i) % 3]!.publish('moves', sent++)
      await reader.until((f) => f.length === sent)
      await reader.disconnect()
      // Published while the client is away, from another node.
      for (let i = 0; i < 3; i++) await nodes[(hop + 1) % 3]!.publish('moves', sent++)
    }
    await reader.connect(nodes[0]!.port)
    await reader.until((f) => f.length === sent)
    t.same(reader.values, Array.from({ length: sent }, (_, i) => i))
    t.same(reader.resets, [])
    await reader.disconnect()
  })

  t.test('several topics on one connection resume across nodes', async (t) => {
    const reader = new Reader('x,y')
    await reader.connect(nodes[1]!.port)
    await nodes[0]!.publish('x', 11)
    await nodes[2]!.publish('y', 21)
    await reader.until((f) => f.length === 2)
    await reader.disconnect()
    await nodes[0]!.publish('y', 22)
    await nodes[1]!.publish('x', 12)
    await reader.connect(nodes[2]!.port)
    await reader.until((f) => f.length === 4)
    t.same((reader.values.slice(0, 2) as number[]).sort(), [11, 21])
    t.same((reader.values.slice(2) as number[]).sort(), [12, 22])
    t.same(reader.resets, [])
    await reader.disconnect()
  })

  t.test('randomized: 1,000 events from random nodes, clients reconnecting to random nodes', async (t) => {
    const seed = Number(process.env.SEED ?? Date.now() % 1e9)
    t.comment('seed ' + seed)
    const next = seededRandom(seed)
    const rand = { int: (n: number) => Math.floor(next() * n) }
    const topic = 'storm'
    const readers = Array.from({ length: 6 }, () => new Reader(topic))
    await Promise.all(readers.map((reader) => reader.connect(nodes[rand.int(3)]!.port)))
    await Promise.all(readers.map((reader) => reader.until(() => reader.lastEventId !== undefined)))
    const total = 1000
    let published = 0
    let moves = 0
    while (published < total) {
      // A burst of publishes from random nodes, some in parallel.
      const burst = Math.min(total - published, 1 + rand.int(40))
      const publishes = []
      for (let i = 0; i < burst; i++) publishes.push(nodes[rand.int(3)]!.publish(topic, published + i))
      published += burst
      await Promise.all(publishes)
      // Some clients drop and come back on a random node, with their last id.
      for (const reader of readers) {
        if (rand.int(4) === 0) {
          await reader.disconnect()
          await reader.connect(nodes[rand.int(3)]!.port)
          moves++
        }
      }
    }
    await Promise.all(readers.map((reader) => reader.until((f) => f.length >= total, 30000)))
    for (const reader of readers) {
      // Parallel publishes may land in any order: the topic's order is the order of their ids.
      const ids = reader.frames.map((f) => Number(f.id!.split('-')[1]))
      t.same(ids, Array.from({ length: total }, (_, i) => i + 1), 'every event once, in order')
      t.same(new Set(reader.values).size, total)
      t.same(reader.resets, [])
      await reader.disconnect()
    }
    t.ok(moves > 20, `clients moved ${moves} times`)
  })

  t.test('many topics per node, the reader\'s topic set changing under load', async (t) => {
    const topics = Array.from({ length: 60 }, (_, i) => 'many-' + i)
    const first = topics.map((topic) => new Reader(topic))
    await Promise.all(first.map((reader, i) => reader.connect(nodes[i % 3]!.port)))
    await Promise.all(first.map((reader) => reader.until(() => reader.lastEventId !== undefined)))
    // While events flow, half the subscribers leave and others join: each node's one read changes
    // its set of topics again and again.
    const joined: Reader[] = []
    let round = 0
    const publishing = (async () => {
      for (; round < 20; round++) {
        await Promise.all(topics.map((topic, i) => nodes[(i + round) % 3]!.publish(topic, round)))
      }
    })()
    for (let i = 0; i < 30; i++) {
      await first[i]!.disconnect()
      const reader = new Reader(topics[i]!)
      reader.lastEventId = first[i]!.lastEventId
      await reader.connect(nodes[(i + 1) % 3]!.port)
      joined.push(reader)
    }
    await publishing
    for (let i = 0; i < topics.length; i++) {
      const reader = i < 30 ? joined[i]! : first[i]!
      const seen = i < 30 ? first[i]!.values.length : 0
      await reader.until((f) => f.length + seen === 20)
      const values = i < 30 ? [...first[i]!.values, ...reader.values] : reader.values
      t.same(values, Array.from({ length: 20 }, (_, r) => r), topics[i])
      await reader.disconnect()
    }
    for (const reader of first) await reader.disconnect()
    const stats = await Promise.all(nodes.map((node) => node.stats()))
    t.ok(stats.some((s) => s.wakes! > 0), 'the reader was woken when its topics changed')
  })

  t.test('memory stays flat over 1,000 subscribe and disconnect cycles across nodes', async (t) => {
    const cycle = async (i: number): Promise<void> => {
      const reader = new Reader('cycle-' + (i % 50))
      await reader.connect(nodes[i % 3]!.port)
      await reader.until(() => reader.lastEventId !== undefined)
      await reader.disconnect()
    }
    for (let i = 0; i < 200; i++) await cycle(i)
    const before = await Promise.all(nodes.map((node) => node.memory()))
    for (let i = 0; i < 1000; i++) await cycle(i)
    const after = await Promise.all(nodes.map((node) => node.memory()))
    for (let i = 0; i < 3; i++) {
      t.ok(after[i]! - before[i]! < 3 * 1024 * 1024, `node ${i}: heap grew ${Math.round((after[i]! - before[i]!) / 1024)} KiB`)
    }
  })
})

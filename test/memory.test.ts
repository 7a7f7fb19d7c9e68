import t from 'tap'
import Fastify from 'fastify'
import { once } from 'node:events'
import { setImmediate as tick } from 'node:timers/promises'
import sse from '../index.js'
import { listen, logCollector, open, silentClient } from './helpers/stream.js'

// tap runs every test file with --expose-gc (package.json "tap.node-arg").
const gc = (globalThis as { gc?: () => void }).gc!

async function settledHeap (): Promise<number> {
  for (let i = 0; i < 3; i++) { gc(); await tick() }
  return process.memoryUsage().heapUsed
}

const MiB = 1024 * 1024

t.test('a client that reads nothing holds the source still and server memory bounded', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse, { heartbeat: false, writeTimeout: false })
  const frame = 'm'.repeat(MiB)
  let pulled = 0
  app.get('/', (_req, reply) => reply.sse(function * () {
    while (true) {
      pulled++
      yield { data: frame }
    }
  }))
  const url = await listen(app) + '/'
  const heapBefore = await settledHeap()
  const rssBefore = process.memoryUsage().rss
  const client = await silentClient(url)
  // A fixed two-second window in which an unthrottled source would produce gigabytes.
  const samples: number[] = []
  for (let i = 0; i < 8; i++) {
    await new Promise((resolve) => setTimeout(resolve, 250))
    samples.push(pulled)
  }
  t.equal(samples[7], samples[3], 'no pull at all in the last second: the source is held still')
  const heapGrowth = (await settledHeap()) - heapBefore
  const rssGrowth = process.memoryUsage().rss - rssBefore
  t.ok(pulled < 64, `the source was pulled ${pulled} times (1 MiB each), bounded by the socket buffers`)
  t.ok(heapGrowth < 16 * MiB, `heap grew ${(heapGrowth / MiB).toFixed(1)} MiB`)
  t.ok(rssGrowth < 96 * MiB, `RSS grew ${(rssGrowth / MiB).toFixed(1)} MiB`)
  client.destroy()
})

t.test('1,000 connect and disconnect cycles leave no handles, listeners or heap behind', async (t) => {
  const logs = logCollector()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  t.teardown(() => app.close())
  await app.register(sse, { heartbeat: 1000 })
  let finished = 0
  app.get('/', (_req, reply) => reply.sse(async function * ({ signal }) {
    try {
      yield { data: 'hi' }
      await once(signal, 'abort').catch(() => {})
    } finally { finished++ }
  }))
  const url = await listen(app) + '/'
  const cycle = async (): Promise<void> => {
    const c = await open(url)
    await c.waitFor('data: hi\n\n')
    c.destroy()
    await c.closed
  }
  // Warm up, then measure.
  for (let i = 0; i < 50; i++) await cycle()
  while (finished < 50) await tick()
  const heapBefore = await settledHeap()
  const handlesBefore = process.getActiveResourcesInfo().length
  const serverListeners = app.server.listenerCount('connection') + app.server.listenerCount('request')
  const total = 1000
  const concurrency = 10
  for (let i = 0; i < total; i += concurrency) {
    await Promise.all(Array.from({ length: concurrency }, cycle))
  }
  // Every source has run its finally once the last close has been seen.
  const deadline = Date.now() + 5000
  while (finished < total + 50 && Date.now() < deadline) await tick()
  t.equal(finished, total + 50, 'every source was released')
  const heapGrowth = (await settledHeap()) - heapBefore
  t.ok(heapGrowth < 4 * MiB, `heap grew ${(heapGrowth / 1024).toFixed(0)} KiB over ${total} cycles`)
  t.ok(process.getActiveResourcesInfo().length <= handlesBefore + 2, 'no handles left behind')
  t.equal(app.server.listenerCount('connection') + app.server.listenerCount('request'), serverListeners)
  t.equal(logs.lines.filter((l) => l.sse?.reason === 'client-closed').length, total + 50)
})

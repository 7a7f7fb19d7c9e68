// The plugin's register of open streams (PluginState.streams): streams that come and go in any
// order are counted, looked at by the scheduler and ended by a shutdown, whichever slots they took.
import t from 'tap'
import Fastify from 'fastify'
import sse from '../index.js'
import { OpenStreams } from '../lib/plugin-state.js'
import type { SseStream } from '../lib/stream.js'
import { type Client, listen, open } from './helpers/stream.js'

/** Resolves once the client has read a heartbeat after what it had read so far. */
function nextPing (client: Client): Promise<string> {
  const from = client.text.length
  return client.waitFor((text) => text.slice(from).includes(': ping\n'))
}

t.test('streams that open and end in any order are all counted, heartbeated and shut down', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse, { heartbeat: 40 })
  // Each stream's end, by the number its request carries.
  const ended = new Map<string, Promise<void>>()
  const handler = (req: { query: unknown }, reply: { sseSink: () => { done: Promise<void> } }): void => {
    ended.set((req.query as { n: string }).n, reply.sseSink().done)
  }
  app.get('/a', handler)
  app.get('/b/:id', handler)
  const url = await listen(app)
  const stats = (): { open: number, byRoute: Record<string, number> } => app.sse.stats().streams

  const first = await Promise.all(Array.from({ length: 20 }, (_, n) => open(url + (n % 2 === 0 ? '/a' : `/b/${n}`) + `?n=${n}`)))
  t.equal(stats().open, 20)
  // Every other pair leaves: slots are freed here and there, not at the end.
  const leaving = [...first.keys()].filter((n) => n % 4 < 2)
  const staying = first.filter((_, n) => n % 4 >= 2)
  for (const n of leaving) first[n]!.destroy()
  await Promise.all(leaving.map((n) => ended.get(String(n))))
  t.equal(stats().open, 10, 'the ten that left are gone from the count')
  t.same(stats().byRoute, { '/a': 5, '/b/:id': 5 })

  // New streams take the freed slots, and more.
  const second = await Promise.all(Array.from({ length: 15 }, (_, n) => open(url + `/a?n=${20 + n}`)))
  t.equal(stats().open, 25)
  t.same(stats().byRoute, { '/a': 20, '/b/:id': 5 })
  t.equal(app.sse.stats().streams.opened, 35)

  // The scheduler looks at every open stream, wherever its slot.
  await Promise.all([...staying, ...second].map(nextPing))
  t.pass('all 25 open streams had a heartbeat')

  // All leave: the register starts over, and a stream opened next is looked at as before.
  for (const client of [...staying, ...second]) client.destroy()
  await Promise.all(ended.values())
  t.equal(stats().open, 0)
  t.same(stats().byRoute, {})
  const last = await open(url + '/b/last?n=last')
  t.same(stats().byRoute, { '/b/:id': 1 })
  await nextPing(last)
  // The shutdown finds it.
  await app.close()
  await last.closed
  t.match(last.text, /\nretry: \d+\n$/, 'ended by the shutdown, with its retry line')
  t.equal(app.sse.stats().ended.shutdown, 1)
})

t.test('streams that end during a scheduler pass do not stop it for the others', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse, { heartbeat: 40 })
  const short: Array<Promise<void>> = []
  // Lifetimes end in the scheduler's passes, between streams that go on.
  app.get('/short', (_req, reply) => { short.push(reply.sseSink({ maxAge: 60, heartbeat: false }).done) })
  app.get('/long', (_req, reply) => { reply.sseSink() })
  const url = await listen(app)
  const clients: Client[] = []
  for (let i = 0; i < 12; i++) clients.push(await open(url + (i % 2 === 0 ? '/short' : '/long')))
  const long = clients.filter((_, i) => i % 2 === 1)
  await Promise.all(short)
  t.equal(app.sse.stats().ended['max-age'], 6, 'the six short ones ended in the passes')
  await Promise.all(long.map(nextPing))
  t.equal(app.sse.stats().streams.open, 6, 'the six long ones are open, and had a heartbeat since')
  for (const client of long) client.destroy()
})

t.test('OpenStreams: streams taken out and put in while it is iterated', async (t) => {
  const streams = new OpenStreams()
  const made = Array.from({ length: 6 }, (_, n) => ({ n, slot: -1 }) as unknown as SseStream & { n: number })
  for (const stream of made) streams.add(stream)
  const seen: number[] = []
  const late = { n: 6, slot: -1 } as unknown as SseStream & { n: number }
  for (const stream of streams) {
    const { n } = stream as SseStream & { n: number }
    seen.push(n)
    if (n === 1) {
      streams.delete(stream) // the current one
      streams.delete(made[3]!) // one still to come
      streams.add(late) // takes slot 3, still to come
    }
  }
  t.same(seen, [0, 1, 2, 6, 4, 5], 'the one taken out is not seen; the one put in its slot is')
  t.equal(streams.size, 5)
  streams.delete(made[3]!)
  t.equal(streams.size, 5, 'a stream that is not in it takes nothing out')
  t.same(Array.from(streams, (s) => (s as SseStream & { n: number }).n), [0, 2, 6, 4, 5])
  // The last ones end during a pass: it stops, and the slots start over.
  const passed: number[] = []
  for (const stream of streams) {
    passed.push((stream as SseStream & { n: number }).n)
    for (const other of Array.from(streams)) streams.delete(other)
  }
  t.same(passed, [0])
  t.equal(streams.size, 0)
  streams.add(made[0]!)
  t.equal(made[0]!.slot, 0, 'the first stream after takes the first slot')
  t.same(Array.from(streams), [made[0]])
})

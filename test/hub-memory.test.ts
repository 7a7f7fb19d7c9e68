// The hub's memory and lifecycle bounds over real sockets: a subscriber that reads nothing during
// 20,000 x 1 KB publishes (heap bounded, the others on time), 20,000 one-off topics freed (topic
// count back to 0, heap back at baseline), 1,000 subscribe and disconnect cycles with nothing left
// behind, and a shutdown with 200 subscribers. tap runs every file with --expose-gc.
import t from 'tap'
import { setImmediate as turn, setTimeout as delay } from 'node:timers/promises'
import { build, silentClient } from './helpers/stream.js'
import { listen, within } from './helpers/http.js'
import { SseReader, checkOneTopic, offsetOf, probeBroker, subscribe } from './helpers/hub.js'
import { inDefaultShutdownWindow } from './helpers/stream.js'

const gc = (globalThis as { gc?: () => void }).gc!
const MiB = 1024 * 1024

async function settledHeap (): Promise<number> {
  for (let i = 0; i < 3; i++) { gc(); await turn() }
  return process.memoryUsage().heapUsed
}

/** Waits, a sweep at a time, until `pred` holds: bounded by `tries` timer turns of `ms`. */
async function until (pred: () => boolean, what: string, tries = 200, ms = 25): Promise<void> {
  for (let i = 0; i < tries && !pred(); i++) await delay(ms)
  if (!pred()) throw new Error(`never: ${what}`)
}

t.test('a subscriber that reads nothing during 20,000 x 1 KB publishes: heap bounded, the others on time', async (t) => {
  const { app } = await build(t, { heartbeat: false, writeTimeout: false })
  app.get('/', (_req, reply) => reply.sseSubscribe('feed'))
  const url = await listen(app)
  const N = 20_000
  const kb = 'k'.repeat(1000)
  // Warm up the paths, then measure.
  for (let i = 0; i < 2000; i++) await app.sse.publish('warm', { data: kb })
  const heapBefore = await settledHeap()
  const silent = await silentClient(url + '/')
  t.teardown(() => silent.destroy())
  const sentAt = new Float64Array(N + 1)
  const lags: number[] = []
  let base = 0
  const readers: SseReader[] = []
  for (let r = 0; r < 3; r++) {
    readers.push(await subscribe(url + '/', {}, (frame) => {
      if (frame.data !== undefined) lags.push(performance.now() - sentAt[offsetOf(frame.id!) - base]!)
    }))
  }
  await Promise.all(readers.map((r) => r.waitForFrames(1)))
  base = offsetOf(readers[0]!.frames[0]!.id!)
  let peak = 0
  for (let i = 1; i <= N; i++) {
    sentAt[i] = performance.now()
    await app.sse.publish('feed', { data: kb })
    if (i % 50 === 0) await turn()
    if (i % 5000 === 0) peak = Math.max(peak, process.memoryUsage().heapUsed - heapBefore)
  }
  await Promise.all(readers.map((r) => r.waitFor(() => r.lastId !== undefined && offsetOf(r.lastId) === base + N, 20_000, 'every event')))
  for (const r of readers) {
    const seq = checkOneTopic(r.frames, undefined)
    t.equal(seq.offsets.length, N, 'every event, in order')
    t.same(seq.resets, [], 'no reset: reading readers keep up')
    r.destroy()
    await r.closed
    // The test's own copy of 20 MB: not the server's.
    r.frames.length = 0
  }
  // The silent subscriber is still there, holding its position.
  t.equal(silent.destroyed, false)
  const growth = (await settledHeap()) - heapBefore
  lags.sort((a, b) => a - b)
  const p99 = lags[Math.floor(lags.length * 0.99)]!
  const max = lags.at(-1)!
  t.comment(`heap growth ${(growth / MiB).toFixed(1)} MiB (peak before GC ${(peak / MiB).toFixed(1)} MiB); delivery p99 ${p99.toFixed(0)} ms, max ${max.toFixed(0)} ms`)
  // 20 MB were published; the history holds 1 MiB of it, the silent reader a socket's worth.
  t.ok(growth < 8 * MiB, `heap grew ${(growth / MiB).toFixed(1)} MiB`)
  t.ok(p99 < 250, `the readers were on time: p99 ${p99.toFixed(0)} ms behind the publish`)
  t.ok(max < 1000, `max ${max.toFixed(0)} ms`)
})

t.test('20,000 one-off topics are freed: the topic count back to 0, the heap back at baseline', async (t) => {
  const broker = probeBroker()
  const { app } = await build(t, { heartbeat: false, hub: { broker, history: { maxAge: 20 } } })
  app.get('/gen/:id', (req, reply) => reply.sseSubscribe(`gen:${(req.params as { id: string }).id}`))
  const url = await listen(app)
  const oneOff = async (from: number, count: number): Promise<void> => {
    for (let i = from; i < from + count; i++) {
      await app.sse.publish(`gen:${i}:${'u'.repeat(36)}`, { event: 'result', data: { i } })
      if (i % 500 === 0) await turn()
    }
  }
  // Warm up the paths, then take the baseline once everything has been swept.
  await oneOff(0, 2000)
  await until(() => broker.hub.size === 0, 'the warm-up topics to be swept')
  const baseline = await settledHeap()
  await oneOff(2000, 20_000)
  t.ok(broker.hub.size > 0, `${broker.hub.size} topics held right after publishing`)
  // Subscribe and leave, on topics of their own (some with history, some without).
  for (let i = 0; i < 200; i++) {
    const c = await subscribe(`${url}/gen/${i % 2 === 0 ? 'sub' + i : `${i}:${'u'.repeat(36)}`}`)
    await c.waitForFrames(1)
    c.destroy()
    await c.closed
  }
  await until(() => broker.hub.size === 0, 'every one-off topic to be freed')
  t.equal(broker.hub.size, 0, 'no topic held')
  const growth = (await settledHeap()) - baseline
  t.ok(growth < 1 * MiB, `heap ${(growth / 1024).toFixed(0)} KiB from baseline after 20,000 topics`)
})

t.test('1,000 subscribe and disconnect cycles leave no topic, stream, listener, handle or heap behind', async (t) => {
  const broker = probeBroker()
  const { app, logs } = await build(t, { heartbeat: 1000, hub: { broker } })
  app.get('/own/:id', (req, reply) => reply.sseSubscribe(`own:${(req.params as { id: string }).id}`))
  app.get('/shared', (_req, reply) => reply.sseSubscribe(['shared', 'other']))
  const url = await listen(app)
  await app.sse.publish('shared', { data: 'held' })
  let n = 0
  const cycle = async (): Promise<void> => {
    const i = n++
    const c = await subscribe(i % 2 === 0 ? `${url}/own/${i}` : `${url}/shared`, i % 4 === 1 ? { lastEventId: 'not-an-id' } : {})
    await c.waitForFrames(1)
    c.destroy()
    await c.closed
  }
  const ended = (): number => logs.lines.filter((l) => l.sse?.reason === 'client-closed').length
  for (let i = 0; i < 50; i++) await cycle()
  await until(() => ended() === 50, 'the warm-up streams to end')
  const heapBefore = await settledHeap()
  const handlesBefore = process.getActiveResourcesInfo().length
  const listeners = app.server.listenerCount('connection') + app.server.listenerCount('request')
  for (let i = 0; i < 1000; i += 10) await Promise.all(Array.from({ length: 10 }, cycle))
  await until(() => ended() === 1050, 'every stream to end')
  t.equal(broker.hub.size, 1, "only 'shared', which holds history, is left ('other' and every own topic freed)")
  const growth = (await settledHeap()) - heapBefore
  t.ok(growth < 4 * MiB, `heap grew ${(growth / 1024).toFixed(0)} KiB over 1,000 cycles`)
  t.ok(process.getActiveResourcesInfo().length <= handlesBefore + 2, 'no handles left behind')
  t.equal(app.server.listenerCount('connection') + app.server.listenerCount('request'), listeners)
  // The shared topic has no reader left: a publish reaches nobody and frees nothing it should not.
  await app.sse.publish('shared', { data: 'after' })
  const c = await subscribe(`${url}/shared`)
  await c.waitForFrames(1)
  await app.sse.publish('other', { data: 'live' })
  await c.waitForFrames(2)
  t.equal(c.frames[1]!.data, 'live')
  c.destroy()
})

t.test('shutdown with 200 subscribers: app.close() ends them all promptly, each with the retry line', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false })
  app.get('/one', (_req, reply) => reply.sseSubscribe('news'))
  app.get('/two', (_req, reply) => reply.sseSubscribe(['news', 'alerts']))
  const url = await listen(app)
  const readers: SseReader[] = []
  for (let i = 0; i < 200; i++) readers.push(await subscribe(url + (i % 2 === 0 ? '/one' : '/two')))
  const id = await app.sse.publish('news', { data: 'hello' })
  await Promise.all(readers.map((r) => r.waitFor((f) => f.some((x) => x.data === 'hello'))))
  const start = performance.now()
  await within(app.close(), 3000, 'app.close()')
  const took = performance.now() - start
  await within(Promise.all(readers.map((r) => r.closed)), 1000, 'every client to see the end')
  t.ok(took < 2000, `closed in ${took.toFixed(0)} ms`)
  const retries = readers.map((r) => /^retry: (\d+)\n$/.exec(r.rest)?.[1])
  t.equal(retries.filter((r) => r !== undefined && inDefaultShutdownWindow(Number(r))).length, 200, 'each ends with a retry line in the window')
  t.equal(readers[0]!.frames.at(-1)!.id, id)
  t.equal(logs.lines.filter((l) => l.sse?.reason === 'shutdown').length, 200)
  await t.rejects(app.sse.publish('news', { data: 'late' }), { code: 'FST_ERR_SSE_HUB_CLOSED' })
})

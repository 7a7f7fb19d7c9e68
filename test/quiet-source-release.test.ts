// Peers: @fastify/sse "an idle async generator is closed only when it yields again: a quiet
// stream leaks forever". Sources that wait on something other than ctx.signal itself:
// - a generator over events.on(bus, name, { signal }) is released with the bus quiet;
// - a bare async iterator parked in next() (events.on(), a subscription) has its return() run at
//   once, so the emitter's listener is removed though no event ever arrives again;
// - pinned: a generator that ignores the signal is stopped only when its await settles (a JS rule,
//   documented in docs/lifecycle.md "Disconnects").
import t from 'tap'
import { EventEmitter, on } from 'node:events'
import type { EventObject } from '../index.js'
import { build, deferred, isEnd, listen, open } from './helpers/stream.js'
import { within } from './helpers/http.js'

t.test('a quiet generator over events.on(bus, name, { signal }) is released as soon as the client goes', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false })
  const bus = new EventEmitter()
  const finished = deferred()
  app.get('/', (_req, reply) => reply.sse(async function * ({ signal }) {
    try {
      for await (const [ev] of on(bus, 'tick', { signal }) as AsyncIterableIterator<[EventObject]>) yield ev
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err
    } finally { finished.resolve() }
  }))
  const client = await open(await listen(app) + '/')
  for (let i = 0; i < 100 && bus.listenerCount('tick') === 0; i++) await new Promise((resolve) => setImmediate(resolve))
  bus.emit('tick', { id: 1, data: 'one' })
  await client.waitFor('id: 1\ndata: one\n\n')
  t.equal(bus.listenerCount('tick'), 1, 'subscribed while open')
  client.destroy()
  t.equal((await logs.waitFor(isEnd)).sse.reason, 'client-closed')
  await within(finished.promise, 1000, "the source's finally, with the bus quiet")
  t.equal(bus.listenerCount('tick'), 0, 'no listener left')
})

t.test('pinned limitation (docs/lifecycle.md "Disconnects"): a generator that ignores the signal is stopped only when its await settles', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false })
  const bus = new EventEmitter()
  const finished = deferred()
  app.get('/', (_req, reply) => reply.sse(async function * () {
    try {
      for await (const [ev] of on(bus, 'tick') as AsyncIterableIterator<[EventObject]>) yield ev
    } finally { finished.resolve() }
  }))
  const client = await open(await listen(app) + '/')
  for (let i = 0; i < 100 && bus.listenerCount('tick') === 0; i++) await new Promise((resolve) => setImmediate(resolve))
  client.destroy()
  t.equal((await logs.waitFor(isEnd)).sse.reason, 'client-closed')
  t.equal(bus.listenerCount('tick'), 1, 'still subscribed while the bus is quiet (JS semantics of return() on a suspended generator)')
  bus.emit('tick', { data: 'late' })
  await within(finished.promise, 1000, 'the generator to finish once its await settles')
  t.equal(bus.listenerCount('tick'), 0, 'released at the next event')
})

t.test('a bare events.on() iterator given as the source loses its listener at once', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false })
  const bus = new EventEmitter()
  app.get('/', (_req, reply) => reply.sse(on(bus, 'tick') as unknown as AsyncIterable<EventObject>))
  const client = await open(await listen(app) + '/')
  for (let i = 0; i < 100 && bus.listenerCount('tick') === 0; i++) await new Promise((resolve) => setImmediate(resolve))
  t.equal(bus.listenerCount('tick'), 1, 'subscribed while open')
  client.destroy()
  t.equal((await logs.waitFor(isEnd)).sse.reason, 'client-closed')
  for (let i = 0; i < 100 && bus.listenerCount('tick') > 0; i++) await new Promise((resolve) => setImmediate(resolve))
  t.equal(bus.listenerCount('tick'), 0, 'no listener left: nothing leaks while the bus stays quiet')
})

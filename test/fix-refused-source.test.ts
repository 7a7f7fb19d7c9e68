// Regression: while the server closes, reply.sse(asyncSourceFunction) refuses the stream with 503 and
// aborts ctx.signal, but drops the promise the source function returned. A source function that
// awaits anything with the signal (the documented way to write one) then rejects, and nobody
// handles it: an unhandledRejection, which crashes a Node 20 process by default, in the middle
// of the graceful shutdown.
import t from 'tap'
import { EventEmitter, on } from 'node:events'
import { setTimeout as delay } from 'node:timers/promises'
import { build, deferred, holdUntilClosing, listen } from './helpers/stream.js'

t.test('a source function refused during shutdown never causes an unhandled rejection', async (t) => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })

  const { app } = await build(t)
  const shutdown = holdUntilClosing(app)
  const called = deferred()
  app.get('/', async (_req, reply) => {
    await shutdown.hold()
    return reply.sse(async ({ signal }) => {
      called.resolve()
      // e.g. a database query or a subscription that honours the signal
      await delay(50, undefined, { signal })
      return [{ data: 'x' }]
    })
  })
  const base = await listen(app)
  const res = fetch(base + '/', { headers: { connection: 'close' } })
  const { closed } = await shutdown.close()
  t.equal((await res).status, 503)
  await called.promise
  await closed
  await delay(100) // let the rejection surface (the source's delay is 50 ms)
  t.same(unhandled.map((e) => (e as Error).name), [], 'no unhandled rejection')
})

t.test('a refused iterator is stopped, and a return() that throws is logged', async (t) => {
  const { app, logs } = await build(t)
  const shutdown = holdUntilClosing(app)
  const iterator = {
    [Symbol.iterator] () { return this },
    next: () => ({ done: false, value: { data: 'x' } }),
    return: (): IteratorResult<{ data: string }> => { throw new Error('stop failed') }
  }
  app.get('/', async (_req, reply) => {
    await shutdown.hold()
    return reply.sse(iterator)
  })
  const res = fetch(await listen(app) + '/', { headers: { connection: 'close' } })
  const { closed } = await shutdown.close()
  t.equal((await res).status, 503)
  await closed
  const line = await logs.waitFor((l) => l.err?.message === 'stop failed')
  t.equal(line.level, 50)
})

t.test('a refused source promise that resolves later has its iterator stopped', async (t) => {
  const { app } = await build(t)
  const emitter = new EventEmitter()
  const shutdown = holdUntilClosing(app)
  const resolved = deferred()
  app.get('/', async (_req, reply) => {
    await shutdown.hold()
    return reply.sse(async () => {
      const it = on(emitter, 'tick')
      resolved.resolve()
      return it as AsyncIterable<never>
    })
  })
  const res = fetch(await listen(app) + '/', { headers: { connection: 'close' } })
  const { closed } = await shutdown.close()
  t.equal((await res).status, 503)
  await closed
  await resolved.promise
  await delay(10)
  t.equal(emitter.listenerCount('tick'), 0, 'the listener the iterator held is gone')
})

// Regression: SourcePump.handle() reads `result.done` unguarded. A hand-written iterator whose next()
// returns (or resolves to) something that is not an object throws a TypeError there:
// - async: inside the `.then(onResult, onError)` callback, so the derived promise rejects with no
//   handler: an unhandledRejection (a crash on Node 20 by default), and the stream is never closed;
// - sync: out of reply.sse() after open(), so the stream stays open and registered, the client
//   hangs, and reply.sse() throws instead of returning its promise. (From a 'drain' it would be
//   an uncaught exception.)
// for await / yield* throw a TypeError for such a result; the stream should end as 'error'.
import t from 'tap'
import { setTimeout as delay } from 'node:timers/promises'
import { build, isEnd, listen, open } from './helpers/stream.js'

function within<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([p, new Promise<never>((_r, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })]).finally(() => clearTimeout(timer))
}

t.test('an async iterator whose next() resolves to undefined', async (t) => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })
  const { app, logs } = await build(t, { heartbeat: false })
  app.get('/', (_req, reply) => reply.sse({
    [Symbol.asyncIterator] () {
      return { next: async () => undefined as unknown as IteratorResult<{ data: string }> }
    }
  }))
  const client = await open(await listen(app) + '/')
  await t.resolves(within(client.closed, 1000, 'the stream to end'), 'the stream ends')
  await delay(20)
  t.same(unhandled.map((e) => String(e)), [], 'no unhandled rejection')
  t.equal(logs.lines.find(isEnd)?.sse.reason, 'error')
  client.destroy()
})

t.test('a sync iterator whose next() returns undefined', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false })
  let thrown: unknown
  app.get('/', (_req, reply) => {
    try {
      return reply.sse({
        [Symbol.iterator] () {
          return { next: () => undefined as unknown as IteratorResult<{ data: string }> }
        }
      })
    } catch (err) {
      thrown = err
      throw err
    }
  })
  const client = await open(await listen(app) + '/')
  await t.resolves(within(client.closed, 1000, 'the stream to end'), 'the stream ends')
  t.equal(thrown, undefined, 'reply.sse() returned its promise, it did not throw')
  t.equal(logs.lines.find(isEnd)?.sse.reason, 'error')
  client.destroy()
})

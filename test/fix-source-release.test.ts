// Regression: a source the stream will never pull is dropped without being stopped:
// - a source function's promise that resolves after the client left (index.ts `if (stream.closed) return`);
// - any source given while the server closes (the refuse() path).
// An iterator that holds resources from creation, such as events.on(emitter, name) (a listener)
// or a database cursor, is never return()ed, so they leak. SourcePump would release it, but it is
// never constructed on these paths.
import t from 'tap'
import type { EventObject } from '../index.js'
import { EventEmitter, on } from 'node:events'
import { setTimeout as delay } from 'node:timers/promises'
import { build, deferred, holdUntilClosing, isEnd, listen, open } from './helpers/stream.js'

t.test('a late events.on() source after the client left is released', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false })
  const emitter = new EventEmitter()
  const gate = deferred()
  const settled = deferred()
  app.get('/', (_req, reply) => {
    reply.sse(async () => {
      await gate.promise
      return on(emitter, 'tick') as AsyncIterable<never> as AsyncIterable<EventObject>
    }).then(() => settled.resolve())
  })
  const client = await open(await listen(app) + '/')
  client.destroy()
  await settled.promise
  t.equal((await logs.waitFor(isEnd)).sse.reason, 'client-closed')
  gate.resolve()
  await delay(20)
  t.equal(emitter.listenerCount('tick'), 0, 'no listener left on the emitter')
})

t.test('a source given while the server closes is released', async (t) => {
  const { app } = await build(t)
  const emitter = new EventEmitter()
  const shutdown = holdUntilClosing(app)
  const answered = deferred()
  app.get('/', async (_req, reply) => {
    await shutdown.hold()
    await reply.sse(on(emitter, 'tick') as AsyncIterable<never> as AsyncIterable<EventObject>)
    answered.resolve()
    return reply
  })
  const base = await listen(app)
  const res = fetch(base + '/', { headers: { connection: 'close' } })
  const { closed } = await shutdown.close()
  t.equal((await res).status, 503)
  await answered.promise
  await closed
  t.equal(emitter.listenerCount('tick'), 0, 'no listener left on the emitter')
})

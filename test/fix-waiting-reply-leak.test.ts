// Regression: registry.waiting holds every reply of an `sse: true` handler that has returned and waits
// for reply.sse(), until that call or the shutdown. A handler that stops waiting when its client
// leaves (it removes its listener on close, as a careful app does) never calls reply.sse(): the
// reply, its request and raw objects stay in the plugin's registry for the life of the server,
// one per such disconnect.
import t from 'tap'
import { EventEmitter } from 'node:events'
import { build, deferred, listen } from './helpers/stream.js'
import { openStream } from './helpers/http.js'

const gc = (globalThis as { gc?: () => void }).gc

t.test('a waiting reply whose client left can be collected', { skip: gc === undefined ? 'needs --expose-gc' : false }, async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const bus = new EventEmitter()
  let ref: WeakRef<object> | undefined
  const entered = deferred()
  const left = deferred()
  app.get('/', { sse: true }, async (_req, reply) => {
    const onReady = (): void => { void reply.sse([{ data: 'late' }]) }
    bus.once('ready', onReady)
    reply.raw.once('close', () => { bus.off('ready', onReady); left.resolve() })
    ref = new WeakRef(reply)
    entered.resolve()
  })
  const client = openStream(await listen(app) + '/')
  await entered.promise
  client.destroy()
  await left.promise
  t.equal(bus.listenerCount('ready'), 0, 'the app let go of the reply')
  for (let i = 0; i < 20 && ref!.deref() !== undefined; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    gc!()
  }
  t.equal(ref!.deref(), undefined, 'the reply was collected')
})

// Regression: the fix takes a waiting `sse: true` reply out of the registry on
// its response's 'close', but registers that listener only once the handler has returned. A
// client that leaves while the async handler is still awaiting (a query, say) has already had
// its 'close': the reply is added to registry.waiting and stays there until the shutdown, one
// per such disconnect: the leak fix-waiting-reply-leak covers, for the commonest timing.
import t from 'tap'
import { build, deferred, listen } from './helpers/stream.js'
import { openStream } from './helpers/http.js'

const gc = (globalThis as { gc?: () => void }).gc

t.test('a waiting reply whose client left before the handler returned can be collected', { skip: gc === undefined ? 'needs --expose-gc' : false }, async (t) => {
  const { app } = await build(t, { heartbeat: false })
  let ref: WeakRef<object> | undefined
  const entered = deferred()
  const left = deferred()
  const returned = deferred()
  app.get('/', { sse: true }, async (_req, reply) => {
    reply.raw.once('close', () => left.resolve())
    ref = new WeakRef(reply)
    entered.resolve()
    await left.promise // the client leaves while the handler awaits
    returned.resolve() // a careful app: its client is gone, so it streams nothing
  })
  const client = openStream(await listen(app) + '/')
  await entered.promise
  client.destroy()
  await returned.promise
  for (let i = 0; i < 20 && ref!.deref() !== undefined; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    gc!()
  }
  t.equal(ref!.deref(), undefined, 'the reply was collected')
})

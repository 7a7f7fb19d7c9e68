// Regression: a stream refused during shutdown now settles only on the
// response's 'close' when Fastify has not sent the 503 yet (an async onSend/onError hook). If the
// client had already left (its 'close' fired while the handler awaited), that event never comes
// again: reply.sse() and sink.done never settle, the handler never returns, and whatever the app
// does after `await reply.sse()` (unsubscribe, release) never runs.
import t from 'tap'
import { setImmediate as tick } from 'node:timers/promises'
import { build, listen } from './helpers/stream.js'
import { deferred, openStream, within } from './helpers/http.js'

for (const hook of ['onSend', 'onError'] as const) {
  for (const kind of ['sse', 'sseSink'] as const) {
    t.test(`refused ${kind}() for a client that already left settles (async ${hook} hook)`, async (t) => {
      const { app } = await build(t, { heartbeat: false })
      app.addHook(hook, async () => { await tick() })
      const entered = deferred()
      const left = deferred()
      const closing = deferred()
      const settled = deferred()
      app.addHook('preClose', async () => { closing.resolve() })
      app.get('/', async (_req, reply) => {
        reply.raw.once('close', () => left.resolve())
        entered.resolve()
        await left.promise // the client is gone while the handler awaits (a query, say)
        await closing.promise // and the server has begun to close
        if (kind === 'sse') await reply.sse([{ data: 'x' }])
        else await reply.sseSink().done
        settled.resolve()
      })
      const client = openStream(await listen(app) + '/')
      await entered.promise
      client.destroy()
      await left.promise
      const closed = app.close()
      await t.resolves(within(settled.promise, 1000, `${kind}() to settle`), 'the refused stream settles')
      await closed
    })
  }
}

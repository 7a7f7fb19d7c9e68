// Regression: the heartbeat does not reset on each frame (issue 3, item 5: "The timer resets on
// every frame"). beat() runs on a fixed period and only checks whether anything was written since
// the previous beat, so after an event the next ping comes between 1x and 2x `heartbeat` later.
// A user who sets heartbeat just under a proxy's idle timeout (55 s for a 60 s proxy) sees quiet
// gaps of up to ~110 s and the proxy drops the stream.
import t from 'tap'
import { once } from 'node:events'
import { build, listen, open } from './helpers/stream.js'

t.test('the first ping comes one interval after the last event, not two', async (t) => {
  const HB = 300
  const { app } = await build(t, { heartbeat: HB })
  app.get('/', (_req, reply) => reply.sse(async function * ({ signal }) {
    yield { data: 'a' }
    await once(signal, 'abort').catch(() => {})
  }))
  const client = await open(await listen(app) + '/')
  await client.waitFor('data: a\n\n')
  const t0 = performance.now()
  await client.waitFor(': ping\n', 3000)
  const gap = performance.now() - t0
  client.destroy()
  t.ok(gap < 1.5 * HB, `silence before the first ping: ${Math.round(gap)} ms with heartbeat ${HB} ms`)
})

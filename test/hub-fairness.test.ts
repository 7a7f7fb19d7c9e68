// A subscription to several topics: a topic with a large backlog does not keep the others waiting.
// Each write carries at most 64 KiB, and each flush starts at the next topic.
import t from 'tap'
import { build, listen, open } from './helpers/stream.js'

t.test('a backlog on one topic does not hold another topic back', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  app.get('/', (_req, reply) => reply.sseSubscribe(['big', 'small'], { from: 'oldest', prime: false }))
  const pad = 'x'.repeat(1000)
  for (let i = 0; i < 400; i++) await app.sse.publish('big', { data: `big ${i} ${pad}` })
  await app.sse.publish('small', { data: 'small 0' })
  const client = await open(await listen(app) + '/')
  await client.waitFor('big 399 ')
  const small = client.text.indexOf('data: small 0\n')
  t.ok(small !== -1, 'the small topic\'s event arrived')
  // 400 KB of backlog: the small topic's event goes out within the first writes, not after them.
  t.ok(small < 200_000, `it came after ${small} bytes of the big topic's backlog, not after all of it`)
  client.destroy()
})

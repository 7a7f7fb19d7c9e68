// A subscription's comment longer than one piece (64 Ki units) leaves its rest waiting for a drain;
// the priming id written after it goes behind that rest, never into the comment's line (where a
// client would read it as part of the comment, and have no id to resume from).
import t from 'tap'
import { build, listen, open } from './helpers/stream.js'

t.test('the priming id comes after a comment of several pieces, not inside it', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const comment = 'c'.repeat(100_000) + 'é'.repeat(50_000)
  app.get('/s', (_req, reply) => reply.sseSubscribe('long', { comment }))
  const url = await listen(app) + '/s'
  const client = await open(url)
  t.teardown(() => client.destroy())
  await client.waitFor('id: 0-0\n\n')
  t.equal(client.text, ': ' + comment + '\nid: 0-0\n\n', 'the comment line whole, then the id')
  await app.sse.publish('long', { data: 'after' })
  await client.waitFor('data: after\n')
  t.match(client.text.slice(client.text.indexOf('id: 0-0\n\n') + 9), /^data: after\nid: \d+-1\n\n$/)
})

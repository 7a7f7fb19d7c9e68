// Regression: readLastEventId() re-decodes every non-ASCII Last-Event-ID as UTF-8, also when its
// bytes are not UTF-8. fetch-based Node clients (eventsource@4, fetch-event-source under Node)
// send a header string whose characters are all <= U+00FF as one byte per character (latin1).
// So an id such as `café`, which the server sent and eventsource@4 received correctly, comes
// back on reconnect as `caf\uFFFD`: the reconnect succeeds and the source resumes from a wrong
// id, silently. (The docs only warn about ids with characters above U+00FF, for which the
// client fails loudly with "Cannot convert argument to a ByteString".) The bytes E9 alone are
// not valid UTF-8, so no browser sent them: when the UTF-8 decoding fails, the latin1 value
// is the one the client meant.
// Expected: `café` (or at worst undefined, an invalid id); actual: `caf\uFFFD`.
import t from 'tap'
import Fastify from 'fastify'
import { EventSource } from 'eventsource'
import sse from '../index.js'
import { deferred, get, listen, within } from './helpers/http.js'

t.test('eventsource@4 resumes after a latin1-only id', async (t) => {
  const app = Fastify()
  await app.register(sse)
  const seen: Array<string | undefined> = []
  const second = deferred()
  app.get('/feed', (req, reply) => reply.sse(function * ({ lastEventId }) {
    seen.push(lastEventId)
    if (seen.length === 2) second.resolve()
    yield { retry: 100 }
    if (seen.length === 1) yield { id: 'café', data: 'first' }
  }))
  const url = await listen(app)
  const es = new EventSource(`${url}/feed`)
  t.teardown(async () => {
    es.close()
    app.server.closeAllConnections()
    await app.close()
  })
  const got = deferred<string>()
  es.addEventListener('message', (ev) => { got.resolve(ev.lastEventId) })
  t.equal(await within(got.promise, 3000, 'the first event'), 'café', 'the client received the id intact')
  await within(second.promise, 3000, 'the reconnect')
  es.close()
  t.same(seen, [undefined, 'café'], 'the server reads back the id it sent')
})

t.test('node:http: a latin1 header value that is not UTF-8', async (t) => {
  const app = Fastify()
  await app.register(sse)
  t.teardown(() => app.close())
  app.get('/', (req, reply) => { reply.send({ id: req.lastEventId ?? null }) })
  const url = await listen(app)
  // node:http writes header strings as latin1: the byte E9.
  const res = await get(url + '/', { headers: { 'last-event-id': 'café' } })
  t.same(JSON.parse(res.body), { id: 'café' })
  // A browser's UTF-8 bytes (C3 A9, seen by Node as 'Ã©') must still decode to 'é'.
  const utf8 = await get(url + '/', { headers: { 'last-event-id': Buffer.from('café…🦄').toString('latin1') } })
  t.same(JSON.parse(utf8.body), { id: 'café…🦄' }, 'control: UTF-8 bytes still decode')
})

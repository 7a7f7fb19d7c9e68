// Conformance case 46: a redirect (301, 302, 303, 307, 308) to the SSE route opens and
// delivers the stream, with the npm `eventsource@4` client (Chromium was checked by the protocol
// authors).
import t from 'tap'
import Fastify from 'fastify'
import { EventSource } from 'eventsource'
import sse from '../index.js'
import { deferred, listen, within } from './helpers/http.js'

t.test('redirects to the stream are followed', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse)
  app.get('/events', (_req, reply) => reply.sse([{ id: 'r1', event: 'hello', data: 'redirected' }]))
  app.get('/old/:code', (req, reply) => reply.redirect('/events', Number((req.params as { code: string }).code)))
  const url = await listen(app)
  for (const code of [301, 302, 303, 307, 308]) {
    const es = new EventSource(`${url}/old/${code}`)
    const got = deferred<{ data: string, id: string, origin: string }>()
    es.addEventListener('hello', (e) => { got.resolve({ data: e.data, id: e.lastEventId, origin: e.origin }); es.close() })
    es.onerror = () => { if (es.readyState === es.CLOSED) got.reject(new Error('closed')) }
    try {
      t.same(await within(got.promise, 2000, `the event through ${code}`), { data: 'redirected', id: 'r1', origin: url }, `${code}`)
    } finally { es.close() }
  }
})

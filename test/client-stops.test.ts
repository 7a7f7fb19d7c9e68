// Conformance cases 41, 42 with the npm `eventsource@4` client; browser.test.ts covers 204
// with Chromium only: after a stream that sets retry: 50 ends, the client reconnects; a 204, a
// 500 JSON error and a 503 (the plugin's own shutdown refusal shape) each make it CLOSED with no
// further request. Absence of requests is watched for 6 retry periods (a bounded quiet window).
import t from 'tap'
import Fastify from 'fastify'
import { EventSource } from 'eventsource'
import sse from '../index.js'
import { deferred, listen, within } from './helpers/http.js'

for (const [status, send] of [
  [204, (reply: any) => reply.code(204).send()],
  [500, (reply: any) => reply.code(500).send({ error: 'Internal Server Error' })],
  [503, (reply: any) => reply.code(503).header('retry-after', '5').send({ code: 'FST_ERR_SSE_SERVER_CLOSING' })]
] as const) {
  t.test(`${status} stops eventsource@4 for good`, async (t) => {
    const app = Fastify()
    await app.register(sse)
    let requests = 0
    app.get('/', (_req, reply) => {
      if (requests++ === 0) return reply.sse([{ retry: 50 }, { id: 1, data: 'only' }])
      return send(reply)
    })
    const url = await listen(app)
    const es = new EventSource(url + '/')
    t.teardown(async () => { es.close(); await app.close() })
    const data: string[] = []
    const closed = deferred<unknown>()
    es.onmessage = (e) => data.push(e.data)
    es.onerror = (e) => { if (es.readyState === es.CLOSED) closed.resolve((e as { code?: unknown }).code) }
    const code = await within(closed.promise, 3000, 'CLOSED')
    t.same(data, ['only'])
    if (status === 204) t.equal(code, 204, 'error code 204')
    t.equal(requests, 2, 'the stream, then the stop')
    await new Promise((resolve) => setTimeout(resolve, 300)) // six retry periods: an absence
    t.equal(requests, 2, 'no request after it')
    t.equal(es.readyState, es.CLOSED)
  })
}

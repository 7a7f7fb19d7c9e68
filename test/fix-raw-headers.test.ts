// Regression: headers set on the raw response (res.setHeader, as Express-style middleware and some
// hooks do) are not cleaned: streamHeaders() deletes content-length / content-encoding /
// transfer-encoding only from its copy (reply.getHeaders()), and res.writeHead(status, obj)
// MERGES obj into the headers already set on res. A raw Content-Length then goes out with the
// stream: the client stops reading after that many bytes (or Node refuses the write).
import t from 'tap'
import { build, listen, open } from './helpers/stream.js'

t.test('a raw content-length or content-encoding set earlier is not sent with the stream', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  app.addHook('onRequest', async (_req, reply) => {
    reply.raw.setHeader('content-length', '3')
    reply.raw.setHeader('content-encoding', 'gzip')
  })
  app.get('/', (_req, reply) => reply.sse([{ data: 'longer than three bytes' }]))
  const client = await open(await listen(app) + '/')
  await client.closed
  t.notOk('content-length' in client.res.headers, `content-length: ${client.res.headers['content-length'] ?? ''}`)
  t.notOk('content-encoding' in client.res.headers, `content-encoding: ${client.res.headers['content-encoding'] ?? ''}`)
  t.equal(client.text, 'data: longer than three bytes\n\n')
})

// Regression: The shutdown's `retry:` line is documented as each stream's last line. But the plugin's
// preClose resolves as soon as every stream has called res.end(), and Fastify then calls
// server.close(), whose closeIdleConnections() destroys every connection whose response is
// `finished` (set by end(), before anything is flushed). Whatever still sits in the socket's
// buffer is cut: always the `retry:` line and the terminating chunk, and the farewell's tail.
// Here the tail is left in the buffer by a sink that writes 600 small frames in its abort
// listener (libuv writes at most 1024 buffers per writev, the rest waits for the next loop
// turn); a client whose kernel buffer is nearly full (a slow mobile link) leaves it the same way.
import t from 'tap'
import { build, listen, open } from './helpers/stream.js'
import { deferred } from './helpers/http.js'

t.test('what a stream wrote before its shutdown end reaches a reading client', async (t) => {
  const { app } = await build(t, { heartbeat: false, shutdownRetry: [10000, 10000] })
  const opened = deferred()
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    sink.signal.addEventListener('abort', () => {
      for (let i = 0; i < 600; i++) void sink.send({ data: i })
      sink.end()
    })
    void sink.send({ data: 'hello' })
    opened.resolve()
  })
  const client = await open(await listen(app) + '/')
  await opened.promise
  await client.waitFor('data: hello\n\n')
  await app.close()
  await client.closed
  t.ok(client.text.includes('data: 599\n\n'), 'the last farewell frame arrived')
  t.ok(client.text.endsWith('data: 599\n\nretry: 10000\n'), `the retry line is the last line (got ${client.text.length} chars, ending ${JSON.stringify(client.text.slice(-24))})`)
})

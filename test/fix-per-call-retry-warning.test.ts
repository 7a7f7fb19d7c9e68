// Conformance case 29: "The plugin should enforce or warn below a floor (suggest >= 500 ms)".
// options.test.ts proves the warning for a plugin-wide `retry` below 500 ms. The same option given
// per call (reply.sse(src, { retry: 0 }) or reply.sseSink({ retry: 100 })) sends `retry: 0` to
// every client of that route with no warning at all: lib/reply.ts createStream() calls
// resolveOptions() without a logger, and options.ts warns only through the logger it is given.
import t from 'tap'
import Fastify from 'fastify'
import sse from '../index.js'
import { captureLogs, get, listen } from './helpers/http.js'

t.test('a per-call retry below 500 ms is warned about, like a plugin-wide one', async (t) => {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'warn', stream: logs.stream } })
  t.teardown(() => app.close())
  await app.register(sse)
  app.get('/source', (_req, reply) => reply.sse([{ data: 'x' }], { retry: 0 }))
  app.get('/sink', (_req, reply) => {
    const sink = reply.sseSink({ retry: 100 })
    void sink.send({ data: 'y' })
    sink.end()
  })
  const url = await listen(app)
  t.equal((await get(url + '/source')).body, 'retry: 0\n: heartbeat=15000\ndata: x\n\n', 'still sent: 0 is valid')
  t.equal((await get(url + '/sink')).body, 'retry: 100\n: heartbeat=15000\ndata: y\n\n')
  const warnings = logs.lines.filter((l) => l.level === 40 && /below 500 ms/.test(String(l.msg)))
  t.equal(warnings.length, 2, `one warning per stream opened with a low retry (got ${warnings.length})`)
  t.match(warnings[0]?.msg, /retry 0 ms is below 500 ms/)
  t.match(warnings[1]?.msg, /retry 100 ms is below 500 ms/)
  t.ok(warnings.length > 0 && warnings.every((l) => typeof l.reqId === 'string'), 'logged through request.log, with the reqId')
})

// Regression: open() guards HEAD ("Node drops every write and reports it accepted, so nothing would
// ever push back on the source"), but Node does the same for every response that may not have a
// body: status 204 and 304 (res._hasBody is false; write() returns true and discards the chunk).
// The status is whatever reply.code() set (docs/http.md: "The status is the one set with
// reply.code()"). A source is then pulled as fast as it can produce, with no backpressure: a
// sync source that never ends (`while (true) yield …`, as the tests themselves use) blocks the
// event loop for good, and an async one spins the CPU. The log line counts bytes never sent.
// Expected: as for HEAD, the stream ends at once (reason done) and the source is not pulled.
// The generator is bounded here (LIMIT) so that the test ends.
import t from 'tap'
import { build, isEnd, listen } from './helpers/stream.js'
import { get, within } from './helpers/http.js'

const LIMIT = 50_000
const KiB = 'x'.repeat(1024)

for (const status of [204, 304]) {
  t.test(`status ${status}: the source is not pulled without backpressure`, async (t) => {
    const { app, logs } = await build(t, { heartbeat: false })
    let pulled = 0
    app.get('/', (_req, reply) => {
      reply.code(status)
      return reply.sse(function * () {
        while (pulled < LIMIT) { pulled++; yield { data: KiB } }
      })
    })
    const res = await within(get(await listen(app) + '/'), 5000, 'the response')
    t.equal(res.status, status)
    t.equal(res.body, '')
    const end = await logs.waitFor(isEnd)
    t.ok(pulled <= 1, `the source was pulled ${pulled} times`)
    t.ok(end.sse.bytes < 64 * 1024, `the end line claims ${end.sse.bytes} bytes written`)
  })
}

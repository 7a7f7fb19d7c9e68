// Regression: a source whose [Symbol.asyncIterator]() (or [Symbol.iterator]()) throws. checkSource()
// only checks that the method exists; the SourcePump constructor calls it after the stream has
// been opened, with no try/catch. A locked ReadableStream is such a source: its
// [Symbol.asyncIterator]() throws ERR_INVALID_STATE at once.
// - Source given directly: reply.sse() throws after the reply was hijacked and the head written.
//   The stream stays registered, open and silent: the client hangs, nothing is logged as the
//   stream's end, reply.sse()'s promise never settles.
// - Source function returning a promise: the throw happens inside the `.then()` callback in
//   reply.ts, so the derived promise rejects with nobody to handle it (an unhandledRejection, a
//   crash on Node 20), and the stream hangs the same way.
// Expected (as for an iterator whose next() throws): the stream ends with reason 'error', the
// error is logged, no unhandled rejection.
import t from 'tap'
import { build, deferred, isEnd, listen, open } from './helpers/stream.js'
import { within } from './helpers/http.js'

function lockedStream (): ReadableStream<{ data: string }> {
  const stream = new ReadableStream<{ data: string }>({
    start (controller) { controller.enqueue({ data: 'x' }) }
  })
  stream.getReader() // locked: e.g. a reader was taken earlier by mistake
  return stream
}

t.test('a source whose iterator method throws: given directly', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false })
  const thrown = deferred<unknown>()
  app.get('/', (_req, reply) => {
    try {
      void reply.sse(lockedStream())
    } catch (err) {
      thrown.resolve(err) // after hijack: too late for Fastify to answer it
    }
    return reply
  })
  const client = await open(await listen(app) + '/')
  t.teardown(() => client.destroy())
  const end = await within(logs.waitFor(isEnd, 2000).then((l) => l, () => null), 3000, 'end line')
  t.not(end, null, 'the stream ends (expected reason error)')
  t.equal(end?.sse.reason, 'error')
  t.ok(client.ended, 'the client sees the response end')
})

t.test('a source whose iterator method throws: from an async source function', async (t) => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })

  const { app, logs } = await build(t, { heartbeat: false })
  app.get('/', (_req, reply) => reply.sse(async () => lockedStream()))
  const client = await open(await listen(app) + '/')
  t.teardown(() => client.destroy())
  const end = await logs.waitFor(isEnd, 2000).then((l) => l, () => null)
  t.same(unhandled.map((e) => (e as Error).message), [], 'no unhandled rejection')
  t.not(end, null, 'the stream ends (expected reason error)')
  t.equal(end?.sse.reason, 'error')
})

t.test('a source whose iterator method returns a non-object ends as error, as for await would', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false })
  app.get('/', (_req, reply) => reply.sse({ [Symbol.asyncIterator]: () => 42 } as unknown as AsyncIterable<{ data: string }>))
  const client = await open(await listen(app) + '/')
  t.teardown(() => client.destroy())
  const end = await logs.waitFor(isEnd)
  t.equal(end.sse.reason, 'error')
  const failure = logs.lines.find((l) => l.level === 50)
  t.equal(failure?.err?.message, 'The iterator number 42 is not an object')
  t.equal(failure?.err?.type, 'TypeError')
  await client.closed
})

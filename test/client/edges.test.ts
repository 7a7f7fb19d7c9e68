// Edge cases of the client: a page's location as the base URL, a close that lands while a fetch
// or a validator is still working, a heartbeat value that is not a number, and an sse-reset
// with no id.
import t from 'tap'
import { connect, defineStream, type SseResetData, type StandardSchemaV1 } from '../../lib/client/index.js'
import { deferred } from '../helpers/http.js'
import { fakeClock, startApp, take } from '../helpers/client.js'

t.test("a relative URL resolves against the page's location", async (t) => {
  const { url } = await startApp(t, (app) => {
    app.get('/here', (_req, reply) => reply.sse([{ data: 'here' }]))
  })
  const g = globalThis as { location?: { href: string } }
  g.location = { href: `${url}/page/index.html` }
  t.teardown(() => { delete g.location })
  const stream = connect('/here', { onEnd: 'stop' })
  t.same((await take(stream)).map((e) => e.data), ['here'])
})

t.test('close() while a fetch that ignores the signal is still out: its response is dropped', async (t) => {
  const { url } = await startApp(t, (app) => {
    app.get('/x', (_req, reply) => reply.sse([{ data: 'x' }]))
  })
  const started = deferred()
  const release = deferred()
  let opened = 0
  const stream = connect(`${url}/x`, {
    onOpen: () => { opened++ },
    fetch: async (request) => {
      started.resolve()
      await release.promise
      return fetch(request.url)
    }
  })
  await started.promise
  stream.close()
  release.resolve()
  t.same(await take(stream), [])
  t.equal(opened, 0)
})

t.test('close() while a validator is working: the event is not delivered', async (t) => {
  const { url } = await startApp(t, (app) => {
    app.get('/v', (_req, reply) => reply.sse([{ id: 1, data: '1' }]))
  })
  let stream: ReturnType<typeof connect<ReturnType<typeof contract>>> | undefined
  const slow: StandardSchemaV1<number> = {
    '~standard': {
      version: 1,
      vendor: 'test',
      validate: async (value) => { stream!.close(); return { value: value as number } }
    }
  }
  const contract = () => defineStream({ path: '/v', events: { message: slow } })
  stream = connect(contract(), { baseUrl: url })
  t.same(await take(stream), [])
  t.equal(stream.lastEventId, undefined)
})

t.test('a heartbeat that is not a number keeps the default idle timeout', async (t) => {
  const { url } = await startApp(t, (app) => {
    app.get('/h', (_req, reply) => reply.sse(async function * ({ signal }) {
      yield { comment: 'heartbeat=soon' }
      yield { data: 'a' }
      await new Promise((resolve) => signal.addEventListener('abort', resolve))
    }))
  })
  const clock = fakeClock()
  const stream = connect(`${url}/h`, { timers: clock.timers })
  const iterator = stream[Symbol.asyncIterator]()
  await iterator.next()
  const next = iterator.next()
  await new Promise((resolve) => setImmediate(resolve))
  t.same(clock.pending(), [45000])
  stream.close()
  await next
})

t.test('an sse-reset before any id: onReset gets an empty id', async (t) => {
  const { url } = await startApp(t, (app) => {
    app.get('/r', (_req, reply) => reply.sse([{ event: 'sse-reset', data: '{"topic":"t","reason":"r"}' }]))
  })
  const resets: Array<[SseResetData, string]> = []
  const stream = connect(`${url}/r`, { onEnd: 'stop', onReset: (data, id) => resets.push([data, id]) })
  await take(stream)
  t.same(resets, [[{ topic: 't', reason: 'r' }, '']])
})

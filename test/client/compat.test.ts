// fetchEventSource() from fastify-sse-stream/client/compat against the real plugin: the
// fetch-event-source callback contract, and the defects it fixes.
import t from 'tap'
import { fetchEventSource, EventStreamContentType, type EventSourceMessage } from '../../lib/client/compat.js'
import { SseHttpError, SseInterruptedError, type CloseInfo } from '../../lib/client/index.js'
import { startApp } from '../helpers/client.js'

class RetriableError extends Error {}
class FatalError extends Error {}

/** The seed's onopen: an exact content-type comparison, FatalError for 4xx but 429. */
async function seedOnOpen (response: Response): Promise<void> {
  if (response.ok && response.headers.get('content-type') === EventStreamContentType) return
  if (response.status >= 400 && response.status < 500 && response.status !== 429) throw new FatalError(`HTTP ${response.status}`)
  throw new RetriableError(`HTTP ${response.status}`)
}

t.test('the seed options: a POST with a JSON body, ended by its end event, with no re-POST', async (t) => {
  const posts: unknown[] = []
  const { url } = await startApp(t, (app) => {
    app.post('/sse', (req, reply) => {
      posts.push([req.headers['content-type'], req.body])
      return reply.sse([
        { id: 123, retry: 15000, event: 'error', data: 'system has some error.' },
        { id: 124, data: 'The time is now' },
        { id: 125, event: 'end', data: 'The end' }
      ])
    })
  })
  const messages: EventSourceMessage[] = []
  const errors: unknown[] = []
  await fetchEventSource(`${url}/sse`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ foo: 'bar' }),
    onopen: seedOnOpen,
    onmessage: (msg) => { messages.push(msg) },
    onclose: () => { throw new RetriableError() },
    onerror: (err) => { errors.push(err) }
  })
  t.same(messages, [
    { id: '123', event: 'error', data: 'system has some error.' },
    { id: '124', event: '', data: 'The time is now' },
    { id: '125', event: 'end', data: 'The end' }
  ])
  t.same(errors, [])
  t.same(posts, [['application/json', { foo: 'bar' }]])
})

t.test('a FatalError from onopen, rethrown by onerror, rejects after one request; onerror runs once', async (t) => {
  let calls = 0
  const { url } = await startApp(t, (app) => {
    app.post('/forbidden', (_req, reply) => { calls++; return reply.code(403).send() })
  })
  const errors: unknown[] = []
  const error = await fetchEventSource(`${url}/forbidden`, {
    method: 'POST',
    onopen: seedOnOpen,
    onerror: (err) => { errors.push(err); if (err instanceof FatalError) throw err }
  }).catch((e: unknown) => e)
  t.ok(error instanceof FatalError)
  t.same(errors, [error])
  t.equal(calls, 1)
})

t.test('the default onopen checks the media type; onerror returning a number sets the delay', async (t) => {
  let calls = 0
  const { url } = await startApp(t, (app) => {
    app.get('/flaky', (_req, reply) => {
      if (++calls === 1) return reply.send('not sse')
      return reply.sse([{ event: 'end', data: 'ok' }])
    })
  })
  const errors: string[] = []
  const retries: number[] = []
  await fetchEventSource(`${url}/flaky`, {
    onerror: (err) => { errors.push(err.message); return 7 },
    onRetry: (info) => retries.push(info.delay)
  })
  t.same(errors, ['Expected content-type to be text/event-stream, Actual: text/plain'])
  t.same(retries, [7])
  t.equal(calls, 2)
})

t.test('an error onmessage throws goes to onerror; the stream goes on, or stops if onerror throws; never a new request', async (t) => {
  let calls = 0
  const { url } = await startApp(t, (app) => {
    app.get('/x', (_req, reply) => { calls++; return reply.sse([{ data: 'bad' }, { data: 'good' }, { event: 'FatalError', data: 'stop' }, { data: 'never' }]) })
  })
  const seen: string[] = []
  const errors: unknown[] = []
  const error = await fetchEventSource(`${url}/x`, {
    onmessage: (msg) => {
      seen.push(msg.data)
      if (msg.data === 'bad') throw new RetriableError('consumer bug')
      if (msg.event === 'FatalError') throw new FatalError(msg.data)
    },
    onerror: (err) => { errors.push(err); if (err instanceof FatalError) throw err }
  }).catch((e: unknown) => e)
  t.same(seen, ['bad', 'good', 'stop'])
  t.ok(error instanceof FatalError)
  t.equal(errors.length, 2)
  t.equal(calls, 1)
})

t.test('onclose: returning stops; throwing retries a GET, but a POST that cannot resume is rejected', async (t) => {
  let gets = 0
  let posts = 0
  const { url } = await startApp(t, (app) => {
    app.get('/g', (_req, reply) => { gets++; return gets < 3 ? reply.sse([{ id: gets, data: String(gets) }]) : reply.code(204).send() })
    app.post('/p', (_req, reply) => { posts++; return reply.sse([{ data: 'once' }]) })
  })
  let closes = 0
  await fetchEventSource(`${url}/g`, { onclose: () => { closes++ } })
  t.equal(closes, 1)
  t.equal(gets, 1)

  gets = 0
  const ids: string[] = []
  await fetchEventSource(`${url}/g`, { retryDelay: 1, onmessage: (m) => ids.push(m.id), onclose: () => { throw new RetriableError() } })
  t.same(ids, ['1', '2'], '204 ends it')
  t.equal(gets, 3)

  const errors: unknown[] = []
  const error = await fetchEventSource(`${url}/p`, {
    method: 'POST',
    terminalEvent: [],
    onclose: () => { throw new RetriableError() },
    onerror: (err) => { errors.push(err) }
  }).catch((e: unknown) => e)
  t.ok(error instanceof SseInterruptedError, 'never re-POSTs blindly')
  t.ok((error as Error).cause instanceof RetriableError)
  t.equal(posts, 1)
  t.equal(errors.at(-1), error, 'onerror heard about it too')
})

t.test('a fatal error onopen let through reaches onerror; what onerror throws is rejected with', async (t) => {
  const { url } = await startApp(t, (app) => {
    app.get('/gone', (_req, reply) => reply.code(410).send())
  })
  const errors: unknown[] = []
  const error = await fetchEventSource(`${url}/gone`, { onopen: async () => {}, onerror: (err) => { errors.push(err) } }).catch((e: unknown) => e)
  t.ok(error instanceof SseHttpError && error.status === 410)
  t.same(errors, [error])

  const replaced = new FatalError('mine')
  const mine = await fetchEventSource(`${url}/gone`, { onopen: async () => {}, onerror: () => { throw replaced } }).catch((e: unknown) => e)
  t.equal(mine, replaced)
})

t.test('abort resolves, and the final onClose says why; 204 resolves without onopen', async (t) => {
  const { url } = await startApp(t, (app) => {
    app.get('/hold', (_req, reply) => reply.sse(async function * ({ signal }) {
      yield { data: 'first' }
      await new Promise((resolve) => signal.addEventListener('abort', resolve))
    }))
    app.get('/none', (_req, reply) => reply.code(204).send())
  })
  const ctrl = new AbortController()
  const closes: CloseInfo[] = []
  await fetchEventSource(`${url}/hold`, {
    signal: ctrl.signal,
    openWhenHidden: false,
    onmessage: () => ctrl.abort(),
    onClose: (info) => closes.push(info)
  })
  t.same(closes, [{ reason: 'abort' }])

  let opened = 0
  await fetchEventSource(`${url}/none`, { onopen: async () => { opened++ }, fetch: (request) => fetch(request) })
  t.equal(opened, 0)
})

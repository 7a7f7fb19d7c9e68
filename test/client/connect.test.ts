// The client against the real plugin over real sockets: response classification, dynamic
// requests, Last-Event-ID, terminal events, state, and every way of ending a stream.
import t from 'tap'
import type { FastifyRequest } from 'fastify'
import {
  connect,
  isSseError,
  SseHttpError,
  SseNetworkError,
  SseProtocolError,
  type CloseInfo,
  type RequestContext,
  type StreamState
} from '../../lib/client/index.js'
import { deferred, within } from '../helpers/http.js'
import { startApp, take } from '../helpers/client.js'

// Fast, deterministic reconnects where backoff is not the subject.
const quick = { retryDelay: 1, jitter: false } as const

t.test('classification', async (t) => {
  t.test('200 with text/event-stream opens, whatever the case and parameters of the media type', async (t) => {
    const { url } = await startApp(t, (app) => {
      app.get('/typed', (_req, reply) => reply.type('Text/Event-Stream ; charset=UTF-8').send('data: x\n\n'))
    })
    const stream = connect(`${url}/typed`, { onEnd: 'stop' })
    t.same(await take(stream), [{ event: 'message', data: 'x', id: '' }])
    t.same(await stream.closed, { reason: 'end' })
  })

  t.test('204 ends the stream with no reconnect', async (t) => {
    let calls = 0
    const { url } = await startApp(t, (app) => {
      app.get('/over', (_req, reply) => { calls++; return reply.code(204).send() })
    })
    const states: StreamState[] = []
    const stream = connect(`${url}/over`, { onStateChange: (s) => states.push(s) })
    t.same(await take(stream), [])
    t.same(await stream.closed, { reason: 'end' })
    t.equal(calls, 1)
    t.same(states, ['closed'])
    t.equal(stream.state, 'closed')
  })

  t.test('401 and 403: one retry after the headers function runs again, then fatal', async (t) => {
    const tokens: Array<string | undefined> = []
    const { url } = await startApp(t, (app) => {
      app.get('/auth', (req, reply) => {
        tokens.push(req.headers.authorization)
        if (req.headers.authorization !== 'Bearer fresh') return reply.code(401).send()
        return reply.sse([{ data: 'in' }])
      })
      app.get('/never', (req, reply) => {
        tokens.push(req.headers.authorization)
        return reply.code(403).send()
      })
    })
    let token = 'stale'
    const stream = connect(`${url}/auth`, {
      onEnd: 'stop',
      headers: () => {
        const headers = { authorization: `Bearer ${token}` }
        token = 'fresh'
        return headers
      }
    })
    t.same((await take(stream)).map((e) => e.data), ['in'])
    t.same(tokens, ['Bearer stale', 'Bearer fresh'])

    tokens.length = 0
    const denied = connect(`${url}/never`, { headers: async () => ({ authorization: 'Bearer x' }) })
    const error = await take(denied).catch((e: unknown) => e)
    t.ok(error instanceof SseHttpError && error.status === 403 && !error.retriable)
    t.equal(tokens.length, 2, 'exactly one retry')

    tokens.length = 0
    const fixed = connect(`${url}/never`, { headers: { authorization: 'Bearer x' } })
    t.match(await fixed.closed, { reason: 'fatal', error: { status: 403 } })
    t.equal(tokens.length, 1, 'static headers would not change: no retry')
  })

  t.test('429 and 5xx retry, honouring Retry-After in seconds or as a date', async (t) => {
    const answers = [
      (reply: any) => reply.code(429).header('retry-after', '3').send(),
      (reply: any) => reply.code(503).header('retry-after', new Date(Date.now() + 60_000).toUTCString()).send(),
      (reply: any) => reply.code(500).header('retry-after', 'soon').send(),
      (reply: any) => reply.code(502).send(),
      (reply: any) => reply.code(408).send(),
      (reply: any) => reply.sse([{ data: 'finally' }])
    ]
    let calls = 0
    const { url } = await startApp(t, (app) => {
      app.get('/busy', (_req, reply) => answers[calls++]!(reply))
    })
    const delays: number[] = []
    const statuses: number[] = []
    const stream = connect(`${url}/busy`, {
      ...quick,
      onEnd: 'stop',
      shouldRetry: (error, { delay }) => {
        statuses.push((error as SseHttpError).status)
        delays.push(delay)
        return 0
      }
    })
    t.same((await take(stream)).map((e) => e.data), ['finally'])
    t.same(statuses, [429, 503, 500, 502, 408])
    t.equal(delays[0], 3000, 'Retry-After: 3')
    t.ok(delays[1]! > 55_000 && delays[1]! <= 60_000, `Retry-After as a date: ${delays[1]}`)
    t.same(delays.slice(2), [4, 8, 16], 'no usable Retry-After: the backoff')
  })

  t.test('any other status is fatal, with the response', async (t) => {
    let calls = 0
    const { url } = await startApp(t, (app) => {
      app.get('/missing', (_req, reply) => { calls++; return reply.code(404).send({ no: 'such' }) })
    })
    const closes: CloseInfo[] = []
    const stream = connect(`${url}/missing`, { ...quick, onClose: (info) => closes.push(info) })
    const error = await take(stream).catch((e: unknown) => e) as SseHttpError
    t.ok(isSseError(error))
    t.equal(error.name, 'SseHttpError')
    t.equal(error.status, 404)
    t.equal(error.response.status, 404)
    t.equal(calls, 1)
    t.same(closes, [{ reason: 'fatal', error }])
    t.same(await take(stream), [], 'the error is thrown once; then the iterator is done')
  })

  t.test('200 with another content type is a fatal protocol error', async (t) => {
    const { url } = await startApp(t, (app) => {
      app.get('/json', (_req, reply) => reply.send({ not: 'sse' }))
      app.get('/none', (_req, reply) => { reply.raw.writeHead(200); reply.raw.end(); return reply })
    })
    for (const path of ['/json', '/none']) {
      const { reason, error } = await connect(`${url}${path}`, { onEvent: () => {} }).closed
      t.equal(reason, 'fatal')
      t.ok(error instanceof SseProtocolError, path)
      t.match((error as Error).message, path === '/json' ? 'got application/json' : 'got undefined')
    }
  })

  t.test('a network error is retried, and maxRetries gives up with it', async (t) => {
    const { app, url } = await startApp(t, () => {})
    await app.close()
    const stream = connect(`${url}/gone`, { ...quick, maxRetries: 2 })
    const error = await take(stream).catch((e: unknown) => e)
    t.ok(error instanceof SseNetworkError && error.retriable)
    t.ok((error as Error).cause instanceof Error, 'the fetch error is the cause')
    t.equal(stream.attempt, 3)
    t.match(await stream.closed, { reason: 'gave-up' })
  })
})

t.test('requests', async (t) => {
  t.test('url, headers and body may be async functions, called again on every attempt', async (t) => {
    const seen: Array<{ url: string, auth: unknown, type: unknown, body: unknown, accept: unknown }> = []
    const { url } = await startApp(t, (app) => {
      app.post('/p/:n', (req: FastifyRequest<{ Params: { n: string } }>, reply) => {
        seen.push({ url: req.url, auth: req.headers.authorization, type: req.headers['content-type'], body: req.body, accept: req.headers.accept })
        if (seen.length === 1) return reply.code(503).send()
        return reply.sse([{ data: 'ok' }])
      })
    })
    const contexts: RequestContext[] = []
    const stream = connect(async (context) => {
      contexts.push(context)
      return new URL(`/p/${context.attempt}`, url)
    }, {
      ...quick,
      method: 'post',
      idempotencyKey: 'k1',
      onEnd: 'stop',
      headers: async ({ attempt }) => new Headers({ authorization: `t${attempt}`, 'last-event-id': 'ignored' }),
      body: async ({ attempt }) => ({ attempt })
    })
    // The 503 came before any event: the POST is re-sent only because it never started.
    stream.closed.then(() => {})
    const error = await take(stream).catch((e: unknown) => e)
    t.match(error, { name: 'SseInterruptedError' }, 'a POST is not re-sent after a 503 without an event ID')
    t.same(seen.map((s) => s.url), ['/p/1'])
    t.same(contexts.map((c) => [c.attempt, c.lastEventId, c.signal instanceof AbortSignal]), [[1, undefined, true]])
    t.same(seen[0], { url: '/p/1', auth: 't1', type: 'application/json', body: { attempt: 1 }, accept: 'text/event-stream' })

    seen.length = 0
    const put = connect(async ({ attempt }) => `${url}/p/${attempt}`, {
      ...quick,
      method: 'POST',
      init: { credentials: 'omit' },
      headers: { 'content-type': 'application/json' },
      body: ({ attempt }) => `[${attempt}]`,
      onEnd: 'stop',
      // A resumable POST: the 503 is retried.
      lastEventId: '3',
      idempotencyKey: true
    })
    t.same((await take(put)).map((e) => e.data), ['ok'])
    t.same(seen.map((s) => [s.url, s.body]), [['/p/1', [1]], ['/p/2', [2]]])
  })

  t.test('a request that cannot be built is fatal at once', async (t) => {
    const noBase = connect('/relative')
    const { reason, error } = await (async () => { await take(noBase).catch(() => {}); return noBase.closed })()
    t.equal(reason, 'fatal')
    t.ok(error instanceof TypeError, 'no base URL for a relative URL')
    const failing = connect('http://127.0.0.1:9/', { headers: () => { throw new Error('no token') } })
    t.match(await take(failing).catch((e: unknown) => e), { message: 'no token' })
    t.equal(failing.attempt, 1)
  })

  t.test('a relative URL resolves against baseUrl, an injected fetch gets each Request', async (t) => {
    const { url } = await startApp(t, (app) => {
      app.get('/rel', (_req, reply) => reply.sse([{ data: 'r' }]))
    })
    const requests: string[] = []
    const stream = connect('rel', {
      baseUrl: `${url}/base/`.replace('/base/', '/'),
      onEnd: 'stop',
      fetch: (request) => { requests.push(`${request.method} ${request.url} ${request.headers.get('accept')}`); return fetch(request) }
    })
    t.same((await take(stream)).map((e) => e.data), ['r'])
    t.same(requests, [`GET ${url}/rel text/event-stream`])
  })
})

t.test('Last-Event-ID', async (t) => {
  t.test('set for the first connect, it persists across attempts until an empty id resets it', async (t) => {
    const ids: Array<string | undefined> = []
    const { url } = await startApp(t, (app) => {
      app.get('/ids', (req, reply) => {
        ids.push(req.headers['last-event-id'] as string | undefined)
        if (ids.length === 1) return reply.code(503).send()
        if (ids.length === 2) return reply.sse([{ data: 'no id' }])
        if (ids.length === 3) return reply.sse([{ id: '', data: 'reset' }])
        return reply.code(204).send()
      })
    })
    const stream = connect(`${url}/ids`, { ...quick, lastEventId: '41' })
    t.same(await take(stream), [
      { event: 'message', data: 'no id', id: '41' },
      { event: 'message', data: 'reset', id: '' }
    ])
    t.same(ids, ['41', '41', '41', undefined])
    t.equal(stream.lastEventId, '')
  })

  t.test('is committed when the event is delivered: a drop inside an event resumes before it', async (t) => {
    const ids: Array<string | undefined> = []
    const { url } = await startApp(t, (app) => {
      app.get('/cut', (req, reply) => {
        ids.push(req.headers['last-event-id'] as string | undefined)
        if (ids.length > 1) return reply.sse([{ id: '2', data: 'b' }, { event: 'end' }])
        // Written by hand: the plugin never sends half an event.
        reply.hijack()
        reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
        reply.raw.write('id: 1\ndata: a\n\nid: 2\ndata: half of b', () => reply.raw.destroy())
      })
    })
    const stream = connect(`${url}/cut`, { ...quick, terminalEvent: 'end' })
    const got = await take(stream)
    t.same(got.map((e) => [e.id, e.data]), [['1', 'a'], ['2', 'b'], ['2', '']])
    t.same(ids, [undefined, '1'], 'the id line of the cut event was not committed')
  })

  t.test('an id-only frame advances it, with no event', async (t) => {
    const ids: Array<string | undefined> = []
    const { url } = await startApp(t, (app) => {
      app.get('/idonly', (req, reply) => {
        ids.push(req.headers['last-event-id'] as string | undefined)
        if (ids.length === 1) return reply.sse([{ id: '5', data: 'a' }, { id: '7' }])
        return reply.code(204).send()
      })
    })
    const stream = connect(`${url}/idonly`, quick)
    t.same((await take(stream)).map((e) => [e.id, e.data]), [['5', 'a']])
    t.same(ids, [undefined, '7'])
    t.equal(stream.lastEventId, '7')
  })
})

t.test('ending', async (t) => {
  t.test('a terminal event is delivered, then the stream closes cleanly', async (t) => {
    let calls = 0
    const { url } = await startApp(t, (app) => {
      app.get('/seed', (_req, reply) => {
        calls++
        return reply.sse(async function * ({ signal }) {
          yield { id: 1, event: 'error', data: 'system has some error.' }
          yield { id: 2, data: 'The time is now' }
          yield { id: 3, event: 'end', data: 'The end' }
          yield { id: 4, data: 'after the end' }
          await new Promise((resolve) => signal.addEventListener('abort', resolve))
        })
      })
    })
    const stream = connect(`${url}/seed`, { terminalEvent: ['end', 'done'] })
    t.same(await take(stream), [
      { event: 'error', data: 'system has some error.', id: '1' },
      { event: 'message', data: 'The time is now', id: '2' },
      { event: 'end', data: 'The end', id: '3' }
    ])
    t.same(await stream.closed, { reason: 'end' })
    t.equal(calls, 1)
  })

  t.test('onEnd: stop closes at the end of the body; a function decides', async (t) => {
    const { url } = await startApp(t, (app) => {
      app.get('/once', (_req, reply) => reply.sse([{ data: 'one' }]))
    })
    let asked = 0
    const stream = connect(`${url}/once`, { onEnd: () => { asked++; return asked === 1 ? 'reconnect' : 'stop' }, ...quick })
    t.same((await take(stream)).map((e) => e.data), ['one', 'one'])
    t.equal(asked, 2)
    t.same(await stream.closed, { reason: 'end' })
  })

  t.test('an AbortSignal aborted before the call: no request, closed at once', async (t) => {
    let calls = 0
    const { url } = await startApp(t, (app) => {
      app.get('/x', (_req, reply) => { calls++; return reply.sse([{ data: 'x' }]) })
    })
    const closes: CloseInfo[] = []
    const stream = connect(`${url}/x`, { signal: AbortSignal.abort(), onClose: (info) => closes.push(info) })
    t.equal(stream.state, 'closed')
    t.same(await take(stream), [])
    t.same(closes, [{ reason: 'abort' }])
    t.equal(calls, 0)
  })

  // Each way of stopping cancels the body: the route sees its client leave.
  const stoppers: Array<[string, (stream: ReturnType<typeof connect>, ac: AbortController) => Promise<void>]> = [
    ['signal', async (_stream, ac) => { ac.abort() }],
    ['close()', async (stream) => { stream.close() }],
    ['break', async (stream) => { for await (const _ of stream) break }], // eslint-disable-line no-unreachable-loop
    ['asyncDispose', async (stream) => { await stream[Symbol.asyncDispose]() }]
  ]
  for (const [name, stop] of stoppers) {
    t.test(`${name}: one close callback with reason abort, and the body is cancelled`, async (t) => {
      const gone = deferred()
      const { url } = await startApp(t, (app) => {
        app.get('/long', (_req, reply) => reply.sse(async function * ({ signal }) {
          signal.addEventListener('abort', () => gone.resolve())
          yield { id: 1, data: 'first' }
          await new Promise((resolve) => signal.addEventListener('abort', resolve))
        }))
      })
      const ac = new AbortController()
      const closes: CloseInfo[] = []
      const states: StreamState[] = []
      const stream = connect(`${url}/long`, { signal: ac.signal, onClose: (info) => closes.push(info), onStateChange: (s) => states.push(s) })
      if (name !== 'break') t.same((await take(stream, 1)).map((e) => e.data), ['first'])
      await stop(stream, ac)
      await within(gone.promise, 5000, 'the route to see its client leave')
      t.same(await stream.closed, { reason: 'abort' })
      ac.abort()
      stream.close()
      t.same(closes, [{ reason: 'abort' }], 'one callback')
      t.same(states, ['open', 'closed'])
      t.same(await take(stream), [])
    })
  }

  t.test('await using closes the stream at the end of the block', async (t) => {
    const { url } = await startApp(t, (app) => {
      app.get('/u', (_req, reply) => reply.sse(async function * ({ signal }) {
        yield { data: 'u' }
        await new Promise((resolve) => signal.addEventListener('abort', resolve))
      }))
    })
    let outer: ReturnType<typeof connect> | undefined
    {
      await using stream = connect(`${url}/u`)
      outer = stream
      t.same((await take(stream, 1)).map((e) => e.data), ['u'])
    }
    t.same(await outer.closed, { reason: 'abort' })
  })
})

t.test('state moves connecting → open → reconnecting → open → closed', async (t) => {
  let calls = 0
  const { url } = await startApp(t, (app) => {
    app.get('/s', (_req, reply) => reply.sse([{ id: String(++calls), event: calls === 2 ? 'end' : 'tick', data: '' }]))
  })
  const states: StreamState[] = []
  const opened: number[] = []
  const stream = connect(`${url}/s`, { ...quick, terminalEvent: 'end', onStateChange: (s) => states.push(s), onOpen: (r) => opened.push(r.status) })
  t.equal(stream.state, 'connecting')
  t.same((await take(stream)).map((e) => e.event), ['tick', 'end'])
  t.same(states, ['open', 'reconnecting', 'open', 'closed'])
  t.same(opened, [200, 200])
})

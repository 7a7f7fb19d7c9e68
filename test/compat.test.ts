// HTTP compatibility over real sockets: headers, CORS, compression, HTTP/2, inject(), POST,
// usage errors and async handlers.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify'
import cors from '@fastify/cors'
import compress from '@fastify/compress'
import http from 'node:http'
import http2 from 'node:http2'
import sse, { errors } from '../index.js'
import { captureLogs, deferred, get, listen, openStream, within } from './helpers/http.js'

const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no'
}

t.test('headers', async (t) => {
  t.test('are flushed at once, before the first event, and keep hook and reply headers', async (t) => {
    const app = Fastify()
    // A keep-alive client, as browsers are.
    const agent = new http.Agent({ keepAlive: true })
    t.teardown(async () => {
      agent.destroy()
      await app.close()
    })
    await app.register(sse)
    app.addHook('onRequest', async (_req, reply) => { reply.header('x-from-hook', 'hook') })
    const release = deferred()
    app.get('/', (_req, reply) => {
      reply.header('x-from-reply', 'reply')
      return reply.sse(async function * () {
        await release.promise
        yield { data: 'first' }
      })
    })
    const url = await listen(app)
    // What a browser sends (protocol case 50); none of it is required.
    const client = openStream(url, {
      agent,
      headers: { accept: 'text/event-stream', 'cache-control': 'no-cache', pragma: 'no-cache' }
    })
    const res = await within(client.response, 2000, 'the response head')
    // The head goes out with the stream's opening line (the advertised heartbeat), not behind
    // the first event.
    t.equal(await client.waitFor('\n'), ': heartbeat=15000\n', 'the head and opening line arrived while the source was still waiting')
    t.equal(res.statusCode, 200)
    t.match(res.headers, SSE_HEADERS)
    t.equal(res.headers['content-type'], 'text/event-stream', 'exactly, with no charset')
    t.equal(res.headers.connection, 'keep-alive')
    t.equal(res.headers['x-from-hook'], 'hook')
    t.equal(res.headers['x-from-reply'], 'reply')
    t.notOk('content-length' in res.headers)
    t.notOk('content-encoding' in res.headers)
    release.resolve()
    t.equal(await client.ended, ': heartbeat=15000\ndata: first\n\n')
  })

  t.test('of an idle stream with heartbeat off go out alone, with no body byte', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(sse, { heartbeat: false })
    const release = deferred()
    app.get('/', (_req, reply) => reply.sse(async function * () {
      await release.promise
      yield { data: 'first' }
    }))
    const client = openStream(await listen(app))
    const res = await within(client.response, 2000, 'the response head')
    t.equal(res.statusCode, 200)
    t.equal(client.body, '', 'no opening line: nothing to advertise')
    release.resolve()
    t.equal(await client.ended, 'data: first\n\n')
  })

  t.test('a client that asks to close gets Connection: close, not keep-alive', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(sse)
    app.get('/', (_req, reply) => reply.sse([{ data: 'x' }]))
    // Without an agent, node:http sends Connection: close.
    const res = await get(await listen(app), { headers: { connection: 'close' } })
    t.equal(res.headers.connection, 'close')
    t.equal(res.body, ': heartbeat=15000\ndata: x\n\n')
  })

  t.test('keep the status set with reply.code()', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(sse)
    app.get('/', (_req, reply) => reply.code(201).sse([{ data: 'x' }]))
    const res = await get(await listen(app))
    t.equal(res.status, 201)
    t.equal(res.headers['content-type'], 'text/event-stream')
    t.equal(res.body, ': heartbeat=15000\ndata: x\n\n')
  })

  t.test('replace a content type, length, encoding or transfer encoding set earlier', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(sse)
    app.get('/', (_req, reply) => reply
      .header('content-type', 'application/json; charset=utf-8')
      .header('content-length', '3')
      .header('content-encoding', 'gzip')
      .header('transfer-encoding', 'identity')
      .sse([{ data: 'longer than three bytes' }]))
    const res = await get(await listen(app))
    t.equal(res.headers['content-type'], 'text/event-stream')
    t.notOk('content-length' in res.headers)
    t.notOk('content-encoding' in res.headers)
    t.equal(res.headers['transfer-encoding'], 'chunked', 'the body is chunked, as every stream is')
    t.equal(res.body, ': heartbeat=15000\ndata: longer than three bytes\n\n')
  })
})

t.test('@fastify/cors', async (t) => {
  const ORIGIN = 'http://app.example'

  t.test('a cross-origin stream carries Access-Control-Allow-Origin', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(cors)
    await app.register(sse)
    app.get('/', (_req, reply) => reply.sse([{ data: 'x' }]))
    const res = await get(await listen(app), { headers: { origin: ORIGIN } })
    t.equal(res.status, 200)
    t.equal(res.headers['access-control-allow-origin'], '*')
    t.equal(res.headers['content-type'], 'text/event-stream')
    t.equal(res.body, ': heartbeat=15000\ndata: x\n\n')
  })

  t.test('a preflight asking for last-event-id is allowed, and credentials get the exact origin', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(cors, {
      origin: [ORIGIN],
      credentials: true,
      methods: ['GET', 'POST'],
      allowedHeaders: ['content-type', 'last-event-id']
    })
    await app.register(sse)
    app.get('/', (req, reply) => reply.sse([{ data: req.lastEventId ?? 'none' }]))
    const url = await listen(app)

    const preflight = await get(url, {
      method: 'OPTIONS',
      headers: {
        origin: ORIGIN,
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'last-event-id'
      }
    })
    t.equal(preflight.status, 204)
    t.equal(preflight.headers['access-control-allow-origin'], ORIGIN)
    t.equal(preflight.headers['access-control-allow-credentials'], 'true')
    t.match(preflight.headers['access-control-allow-headers'], /(^|,\s*)last-event-id(,|$)/i)
    t.match(preflight.headers['access-control-allow-methods'], /GET/)

    const res = await get(url, { headers: { origin: ORIGIN, 'last-event-id': '41', cookie: 'session=1' } })
    t.equal(res.status, 200)
    t.equal(res.headers['access-control-allow-origin'], ORIGIN, 'the exact origin, never * with credentials')
    t.equal(res.headers['access-control-allow-credentials'], 'true')
    t.match(res.headers.vary, /origin/i)
    t.equal(res.body, ': heartbeat=15000\ndata: 41\n\n')

    const other = await get(url, { headers: { origin: 'http://evil.example' } })
    t.notOk('access-control-allow-origin' in other.headers, 'another origin is not allowed')
  })
})

t.test('@fastify/compress registered globally never compresses the stream', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(compress, { global: true })
  await app.register(sse)
  const second = deferred()
  app.get('/json', async () => ({ text: 'x'.repeat(4096) }))
  app.get('/events', (_req, reply) => reply.sse(async function * () {
    yield { data: 'one' }
    await second.promise
    yield { data: 'two' }
  }))
  const url = await listen(app)
  const acceptEncoding = { 'accept-encoding': 'gzip, deflate, br' }

  const control = await get(`${url}/json`, { headers: acceptEncoding })
  t.match(control.headers['content-encoding'], /^(br|gzip|deflate)$/, 'compression is active on other routes')

  const client = openStream(`${url}/events`, { headers: acceptEncoding })
  const res = await client.response
  t.notOk('content-encoding' in res.headers)
  t.equal(res.headers['content-type'], 'text/event-stream')
  // The first event arrives while the source still holds the second: nothing buffers it.
  t.equal(await client.waitFor('data: one\n\n'), ': heartbeat=15000\ndata: one\n\n')
  second.resolve()
  t.equal(await client.ended, ': heartbeat=15000\ndata: one\n\ndata: two\n\n')
})

t.test('HTTP/2 (h2c)', async (t) => {
  /** Opens one request on `session`; resolves the head, then the whole body. */
  function h2request (session: http2.ClientHttp2Session, path: string): {
    stream: http2.ClientHttp2Stream
    headers: Promise<http2.IncomingHttpHeaders>
    body: () => string
    ended: Promise<string>
    waitFor: (needle: string) => Promise<void>
  } {
    const stream = session.request({ ':path': path })
    let body = ''
    const waiters: Array<() => void> = []
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => { body += chunk; for (const w of waiters.splice(0)) w() })
    const headers = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once('response', resolve))
    const ended = new Promise<string>((resolve, reject) => {
      stream.on('end', () => resolve(body))
      stream.on('error', reject)
    })
    ended.catch(() => {})
    const waitFor = (needle: string): Promise<void> => within(new Promise<void>((resolve) => {
      const check = (): void => { if (body.includes(needle)) resolve(); else waiters.push(check) }
      check()
    }), 2000, needle)
    return { stream, headers, body: () => body, ended, waitFor }
  }

  type H2App = FastifyInstance<http2.Http2Server, http2.Http2ServerRequest, http2.Http2ServerResponse>

  async function setup (t: Test, route: (app: H2App) => void): Promise<http2.ClientHttp2Session> {
    const app = Fastify({ http2: true })
    await app.register(sse)
    route(app)
    const url = await listen(app)
    const session = http2.connect(url)
    t.teardown(async () => {
      session.close()
      await app.close()
    })
    return session
  }

  t.test('sends no connection-specific headers and triggers no UnsupportedWarning', async (t) => {
    const warnings: Error[] = []
    const onWarning = (w: Error): void => { warnings.push(w) }
    process.on('warning', onWarning)
    t.teardown(() => { process.off('warning', onWarning) })
    const session = await setup(t, (app) => {
      app.get('/', (_req, reply) => reply.sse([{ id: 1, data: 'x' }, { data: 'y' }]))
    })
    const req = h2request(session, '/')
    const headers = await req.headers
    t.equal(headers[':status'], 200)
    t.match(headers, SSE_HEADERS)
    for (const name of ['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'content-length']) {
      t.notOk(name in headers, `no ${name}`)
    }
    t.equal(await req.ended, ': heartbeat=15000\nid: 1\ndata: x\n\ndata: y\n\n')
    await new Promise((resolve) => setImmediate(resolve)) // warnings are emitted on nextTick
    t.same(warnings.filter((w) => w.name === 'UnsupportedWarning'), [])
  })

  t.test('the warning check can fail: a Connection header on HTTP/2 does warn', async (t) => {
    // Node's own printer is set aside for this control, so the expected warning stays quiet.
    const printers = process.listeners('warning')
    process.removeAllListeners('warning')
    const seen = deferred<Error>()
    const onWarning = (w: Error): void => { if (w.name === 'UnsupportedWarning') seen.resolve(w) }
    process.on('warning', onWarning)
    t.teardown(() => {
      process.off('warning', onWarning)
      for (const printer of printers) process.on('warning', printer)
    })
    const session = await setup(t, (app) => {
      app.get('/', (_req, reply) => { reply.raw.setHeader('connection', 'keep-alive'); reply.send('x') })
    })
    await h2request(session, '/').ended
    t.match(await within(seen.promise, 2000, 'UnsupportedWarning'), { message: /connection header/ })
  })

  t.test('serves 10 concurrent streams on one session', async (t) => {
    const N = 10
    const release = deferred()
    const session = await setup(t, (app) => {
      app.get('/:n', (req, reply) => reply.sse(async function * () {
        const n = (req.params as { n: string }).n
        yield { data: `open ${n}` }
        await release.promise
        yield { data: `done ${n}` }
      }))
    })
    const requests = Array.from({ length: N }, (_v, n) => h2request(session, `/${n}`))
    // Every stream is open at the same time before any of them may finish.
    await Promise.all(requests.map((r, n) => r.waitFor(`open ${n}`)))
    release.resolve()
    const bodies = await within(Promise.all(requests.map((r) => r.ended)), 2000, 'all streams to end')
    t.same(bodies, requests.map((_r, n) => `: heartbeat=15000\ndata: open ${n}\n\ndata: done ${n}\n\n`))
  })

  t.test('a client closing its stream ends the server stream', async (t) => {
    const settled = deferred()
    const released = deferred<string>()
    const session = await setup(t, (app) => {
      app.get('/', (_req, reply) => {
        reply.sse(async function * ({ signal }) {
          try {
            yield { data: 'hello' }
            await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
          } finally {
            released.resolve((signal.reason as Error).message)
          }
        }).then(() => settled.resolve())
      })
    })
    const req = h2request(session, '/')
    await req.waitFor('data: hello\n\n')
    req.stream.close(http2.constants.NGHTTP2_CANCEL)
    await within(settled.promise, 2000, 'reply.sse() to settle')
    t.equal(await within(released.promise, 2000, 'the source to be released'), 'The SSE stream ended: client-closed')
  })
})

t.test('HEAD gets the head and an empty body at once, and the source is never pulled', async (t) => {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  // A keep-alive client holds the connection after the (bodiless) HEAD response, as browsers do.
  const agent = new http.Agent({ keepAlive: true })
  t.teardown(async () => {
    agent.destroy()
    await app.close()
  })
  await app.register(sse)
  let pulled = 0
  const settled = deferred()
  // Fastify answers HEAD for every GET route (exposeHeadRoutes).
  app.get('/', (_req, reply) => reply.sse(async function * ({ signal }) {
    while (!signal.aborted) {
      pulled++
      yield { data: 'x' }
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }).then(() => settled.resolve()))
  const res = await get(await listen(app), { method: 'HEAD', agent })
  t.equal(res.status, 200)
  t.equal(res.headers['content-type'], 'text/event-stream')
  t.equal(res.body, '')
  await within(settled.promise, 1000, 'reply.sse() to settle')
  t.equal(pulled, 0)
  t.match(logs.find('stream ended'), [{ sse: { reason: 'done', events: 0 } }])
})

t.test('app.inject() reads a finite stream: headers and exact body', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse, { retry: 1000 })
  app.get('/', (_req, reply) => reply.sse(async function * () {
    yield { id: 1, event: 'tick', data: { n: 1 } }
    yield { comment: 'note' }
    yield { data: 'a\nb' }
    yield { event: 'end' }
  }))
  const res = await app.inject('/')
  t.equal(res.statusCode, 200)
  t.match(res.headers, { ...SSE_HEADERS, connection: 'keep-alive' })
  t.notOk('content-length' in res.headers)
  t.equal(res.body,
    'retry: 1000\n' +
    ': heartbeat=15000\n' +
    'event: tick\nid: 1\ndata: {"n":1}\n\n' +
    ': note\n' +
    'data: a\ndata: b\n\n' +
    'event: end\ndata: \n\n')
})

t.test('GET and POST alike: a POSTed JSON body is readable and the stream stays open', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse)
  let release = deferred()
  app.route({
    method: ['GET', 'POST'],
    url: '/chat',
    handler: (req, reply) => reply.sse(async function * () {
      yield { event: 'echo', data: req.body ?? null }
      // The request's body has been read and its 'close' has fired: the stream must not end.
      await release.promise
      yield { event: 'end' }
    })
  })
  const url = await listen(app)

  const res = await fetch(`${url}/chat`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ prompt: 'héllo', n: 2 })
  })
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-type'), 'text/event-stream')
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader()
  let text = ''
  while (!text.includes('\n\n')) {
    const { value, done } = await within(reader.read(), 2000, 'the echo event')
    if (done) break
    text += value
  }
  t.equal(text, ': heartbeat=15000\nevent: echo\ndata: {"prompt":"héllo","n":2}\n\n')
  release.resolve()
  for (;;) {
    const { value, done } = await within(reader.read(), 2000, 'the end of the stream')
    if (done) break
    text += value
  }
  t.equal(text, ': heartbeat=15000\nevent: echo\ndata: {"prompt":"héllo","n":2}\n\nevent: end\ndata: \n\n')

  release = deferred()
  release.resolve()
  const getRes = await get(`${url}/chat`)
  t.equal(getRes.body, ': heartbeat=15000\nevent: echo\ndata: null\n\nevent: end\ndata: \n\n')
})

t.test('usage errors', async (t) => {
  t.test('reply.sse() after the reply was sent throws FST_ERR_SSE_ALREADY_SENT', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(sse)
    const caught: unknown[] = []
    app.get('/sent', (_req, reply) => {
      reply.send('plain')
      try { reply.sse([{ data: 'x' }]) } catch (err) { caught.push(err) }
    })
    app.get('/twice', (_req, reply) => {
      const done = reply.sse([{ data: 'x' }])
      try { reply.sse([{ data: 'y' }]) } catch (err) { caught.push(err) }
      return done
    })
    const url = await listen(app)
    const sent = await get(`${url}/sent`)
    t.equal(sent.body, 'plain')
    const twice = await get(`${url}/twice`)
    t.equal(twice.body, ': heartbeat=15000\ndata: x\n\n')
    t.equal(caught.length, 2)
    for (const err of caught) {
      t.ok(err instanceof errors.FST_ERR_SSE_ALREADY_SENT)
      t.match(err, { code: 'FST_ERR_SSE_ALREADY_SENT', statusCode: 500, name: 'FastifyError' })
    }
  })

  t.test('an invalid source is a normal 500 with FST_ERR_SSE_INVALID_SOURCE', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(sse)
    const sources: Record<string, unknown> = {
      number: 42,
      string: 'data: x',
      object: { data: 'x' },
      null: null,
      'function returning a number': () => 5,
      'function returning a string': () => 'abc'
    }
    app.get('/:kind', (req, reply) => {
      // A synchronous throw from the handler, before any header went out.
      return reply.sse(sources[(req.params as { kind: string }).kind] as never)
    })
    app.get('/async/:kind', async (req, reply) => {
      await reply.sse(sources[(req.params as { kind: string }).kind] as never)
    })
    const url = await listen(app)
    for (const kind of Object.keys(sources)) {
      for (const prefix of ['', 'async/']) {
        const res = await get(`${url}/${prefix}${encodeURIComponent(kind)}`)
        t.equal(res.status, 500, `${prefix}${kind}: status`)
        t.match(res.headers['content-type'], /^application\/json/, `${prefix}${kind}: a normal error reply`)
        t.match(JSON.parse(res.body), {
          code: 'FST_ERR_SSE_INVALID_SOURCE',
          message: /reply\.sse\(\) takes an AsyncIterable/
        }, `${prefix}${kind}: error`)
      }
    }
  })

  t.test('a source function may return a promise of an iterable', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(sse)
    app.get('/', (_req, reply) => reply.sse(async ({ lastEventId }) => {
      await new Promise((resolve) => setImmediate(resolve))
      return [{ data: `after ${lastEventId ?? 'nothing'}` }, { data: 'second' }]
    }))
    const res = await get(await listen(app))
    t.equal(res.status, 200)
    t.equal(res.body, ': heartbeat=15000\ndata: after nothing\n\ndata: second\n\n')
  })

  t.test('a source promise that rejects, or gives a non-iterable, ends the 200 stream cleanly', async (t) => {
    const logs = captureLogs()
    const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
    t.teardown(() => app.close())
    await app.register(sse)
    const settled: string[] = []
    app.get('/rejects', (_req, reply) => reply.sse(async () => {
      throw new Error('database down')
    }).then(() => { settled.push('rejects') }))
    app.get('/not-iterable', (_req, reply) => reply.sse(async () => 42 as never).then(() => { settled.push('not-iterable') }))
    app.get('/error-event', (_req, reply) => reply.sse(async () => {
      throw new Error('secret detail')
    }, { errorEvent: true }))
    app.get('/error-event-4xx', (_req, reply) => reply.sse(async () => {
      throw Object.assign(new Error('No such topic'), { statusCode: 404 })
    }, { errorEvent: true }))
    const url = await listen(app)

    const rejects = await get(`${url}/rejects`)
    t.equal(rejects.status, 200, 'the head was already sent')
    t.equal(rejects.headers['content-type'], 'text/event-stream')
    t.equal(rejects.body, ': heartbeat=15000\n', 'ended cleanly after the opening line, with no partial frame')
    const notIterable = await get(`${url}/not-iterable`)
    t.equal(notIterable.status, 200)
    t.equal(notIterable.body, ': heartbeat=15000\n')
    const withEvent = await get(`${url}/error-event`)
    t.equal(withEvent.body, ': heartbeat=15000\nevent: error\ndata: Internal Server Error\n\n', 'a safe message, not the error\'s')
    const with4xx = await get(`${url}/error-event-4xx`)
    t.equal(with4xx.body, ': heartbeat=15000\nevent: error\ndata: No such topic\n\n', 'a 4xx error\'s message is meant for the client')
    t.same(settled.sort(), ['not-iterable', 'rejects'])

    const failures = logs.find('the event source failed')
    t.equal(failures.length, 4)
    t.match(failures[0], { level: 50, err: { message: 'database down' } })
    t.match(failures[1], { err: { code: 'FST_ERR_SSE_INVALID_SOURCE' } })
    t.match(logs.find('stream ended').map((line) => (line.sse as { reason: string }).reason), ['error', 'error', 'error', 'error'])
  })
})

t.test('async handlers', async (t) => {
  function events (): AsyncGenerator<{ data: string }> {
    return (async function * () {
      yield { data: 'a' }
      await new Promise((resolve) => setImmediate(resolve))
      yield { data: 'b' }
    })()
  }

  t.test('reply.sse() not awaited, awaited, or called later on an sse: true route', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(sse)
    const settled = deferred()
    app.get('/not-awaited', async (_req, reply) => { reply.sse(events()) })
    app.get('/awaited', async (_req, reply) => { await reply.sse(events()) })
    app.get('/timeout', { sse: true }, async (_req, reply) => {
      setTimeout(() => { reply.sse(events()).then(() => settled.resolve()) }, 20)
    })
    app.get('/immediate', { sse: true }, async (_req, reply) => {
      await new Promise((resolve) => setImmediate(resolve))
      setImmediate(() => { reply.sse(events()) })
    })
    const url = await listen(app)
    for (const path of ['/not-awaited', '/awaited', '/timeout', '/immediate']) {
      const res = await get(url + path)
      t.equal(res.status, 200, `${path}: status`)
      t.equal(res.headers['content-type'], 'text/event-stream', `${path}: content type`)
      t.equal(res.body, ': heartbeat=15000\ndata: a\n\ndata: b\n\n', `${path}: body`)
    }
    await within(settled.promise, 1000, 'the late reply.sse() to settle')
  })

  t.test('an sse: true route still answers what its handler returns or throws', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(sse)
    app.get('/value', { sse: true }, async () => ({ not: 'a stream' }))
    app.get('/throws', { sse: true }, async () => { throw Object.assign(new Error('nope'), { statusCode: 403 }) })
    app.get('/sync', { sse: true }, (_req, reply) => { reply.send('sync') })
    const url = await listen(app)
    t.same(JSON.parse((await get(`${url}/value`)).body), { not: 'a stream' })
    const thrown = await get(`${url}/throws`)
    t.equal(thrown.status, 403)
    t.equal((await get(`${url}/sync`)).body, 'sync')
  })

  t.test('without sse: true, a handler that resolves first gives an empty 200 and the late call throws', async (t) => {
    // Pinned on purpose: Fastify answers an async handler that resolves to undefined with an
    // empty 200, and the plugin cannot know a stream is coming. The late reply.sse() must fail
    // loudly rather than write into a finished response. Routes that reply later need sse: true.
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(sse)
    const late = deferred<unknown>()
    app.get('/', async (_req, reply: FastifyReply) => {
      setImmediate(() => {
        try {
          reply.sse(events())
          late.resolve(null)
        } catch (err) {
          late.resolve(err)
        }
      })
    })
    const res = await get(await listen(app))
    t.equal(res.status, 200)
    t.equal(res.body, '')
    t.equal(res.headers['content-length'], '0')
    t.not(res.headers['content-type'], 'text/event-stream')
    t.match(await within(late.promise, 1000, 'the late call'), { code: 'FST_ERR_SSE_ALREADY_SENT' })
  })

  t.test('a late reply.sse() after the client left settles at once without pulling the source', async (t) => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(sse, { writeTimeout: false })
    const arrived = deferred()
    const gone = deferred()
    const settled = deferred()
    let signal: AbortSignal | undefined
    let pulled = 0
    app.get('/', async (req, reply) => {
      req.raw.socket.once('close', () => gone.resolve())
      arrived.resolve()
      await gone.promise // the handler is still busy (a database call, say) when the client leaves
      reply.sse((ctx) => {
        signal = ctx.signal
        return (async function * () {
          for (let i = 0; i < 1000; i++) {
            pulled++
            yield { data: String(i) }
            await new Promise((resolve) => setImmediate(resolve))
          }
        })()
      }).then(() => settled.resolve())
    })
    const client = openStream(await listen(app))
    await arrived.promise
    client.destroy()
    await within(settled.promise, 1000, 'reply.sse() to settle')
    t.equal((signal?.reason as Error | undefined)?.message, 'The SSE stream ended: client-closed')
    t.equal(pulled, 0, 'the source was never pulled')
  })
})

// HTTP details the docs promise: the app's cache directives kept, no connection-specific header on
// HTTP/2, no keep-alive claim on HTTP/1.0, and a Last-Event-ID read once, by the rules of an id.
import t from 'tap'
import http2 from 'node:http2'
import net from 'node:net'
import { once } from 'node:events'
import Fastify from 'fastify'
import sse from '../index.js'
import { build, isEnd, listen, open } from './helpers/stream.js'

/** Sends raw bytes and reads until the server closes the connection. */
async function raw (url: string, request: string): Promise<string> {
  const { port } = new URL(url)
  const socket = net.connect(Number(port), '127.0.0.1')
  let text = ''
  socket.setEncoding('latin1').on('data', (chunk: string) => { text += chunk })
  socket.write(request)
  await once(socket, 'close')
  return text
}

t.test('the app\'s Cache-Control directives are kept, and no-cache, no-transform added', async (t) => {
  const { app } = await build(t)
  app.get('/private', (_req, reply) => reply.header('cache-control', 'private, max-age=0').sse([{ data: 'x' }]))
  app.get('/already', (_req, reply) => reply.header('cache-control', 'No-Cache, no-transform, private').sse([{ data: 'x' }]))
  app.get('/buffering', (_req, reply) => reply.header('x-accel-buffering', 'yes').sse([{ data: 'x' }]))
  app.get('/default', (_req, reply) => reply.sse([{ data: 'x' }]))
  const url = await listen(app)
  const headers = async (path: string): Promise<Headers> => (await fetch(url + path)).headers
  t.equal((await headers('/private')).get('cache-control'), 'private, max-age=0, no-cache, no-transform')
  t.equal((await headers('/already')).get('cache-control'), 'No-Cache, no-transform, private')
  const buffering = await headers('/buffering')
  t.equal(buffering.get('x-accel-buffering'), 'yes', 'an app that sets it has chosen')
  t.equal(buffering.get('cache-control'), 'no-cache, no-transform')
  t.equal((await headers('/default')).get('x-accel-buffering'), 'no')
})

t.test('HTTP/2: connection-specific headers set by a hook are dropped, and Node does not warn', async (t) => {
  const app = Fastify({ http2: true })
  t.teardown(() => app.close())
  await app.register(sse)
  app.addHook('onRequest', async (_req, reply) => {
    reply.header('connection', 'keep-alive').header('keep-alive', 'timeout=5').header('upgrade', 'h2c').header('proxy-connection', 'keep-alive')
  })
  app.get('/', (_req, reply) => reply.sse([{ data: 'x' }]))
  const warnings: string[] = []
  const onWarning = (w: Error): void => { warnings.push(w.message) }
  process.on('warning', onWarning)
  t.teardown(() => process.off('warning', onWarning))
  const url = await listen(app)
  const client = http2.connect(url)
  t.teardown(() => client.close())
  const req = client.request({ ':path': '/' })
  const [headers] = await once(req, 'response') as [http2.IncomingHttpHeaders]
  let body = ''
  req.setEncoding('utf8').on('data', (c: string) => { body += c })
  await once(req, 'end')
  t.equal(headers[':status'], 200)
  for (const name of ['connection', 'keep-alive', 'upgrade', 'proxy-connection', 'transfer-encoding']) t.equal(headers[name], undefined, name)
  t.equal(body, ': heartbeat=15000\ndata: x\n\n')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(warnings.filter((w) => /connection-specific/i.test(w)), [], 'no warning')
})

t.test('HTTP/1.0: the response does not claim keep-alive; the stream ends by closing', async (t) => {
  const { app } = await build(t)
  app.get('/', (_req, reply) => reply.sse([{ data: 'x' }]))
  const text = await raw(await listen(app), 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
  const [head, body] = text.split('\r\n\r\n')
  t.notMatch(head, /connection: keep-alive/i)
  t.equal(body, ': heartbeat=15000\ndata: x\n\n')
})

t.test('Last-Event-ID', async (t) => {
  t.test('from the query, a value an id could never hold is ignored', async (t) => {
    const { app } = await build(t)
    app.get('/', async (request) => ({ id: request.lastEventId ?? null }))
    const url = await listen(app)
    const id = async (query: string): Promise<unknown> => (await (await fetch(url + '/?lastEventId=' + query)).json() as { id: unknown }).id
    t.equal(await id('abc'), 'abc')
    t.equal(await id('a%20b'), 'a b', 'inner spaces are fine')
    for (const bad of ['%1B%5B31m', '%20edge', 'edge%20', '%09tab', 'a%01b', 'a%7Fb']) t.equal(await id(bad), null, bad)
  })

  t.test('two Last-Event-ID headers are ignored rather than joined as "a, b"', async (t) => {
    const { app } = await build(t)
    app.get('/', async (request) => ({ id: request.lastEventId ?? null }))
    const url = await listen(app)
    const response = await raw(url, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nLast-Event-ID: 5\r\nLast-Event-ID: 7\r\n\r\n')
    t.match(response, /\{"id":null\}/)
    const single = await raw(url, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nLast-Event-ID: 5, 7\r\n\r\n')
    t.match(single, /\{"id":"5, 7"\}/, 'one header holding a comma is a valid id')
  })

  t.test('request.lastEventId is read once per request, and so is its log line', async (t) => {
    const { app, logs } = await build(t)
    let reads: unknown[] = []
    app.get('/', (request, reply) => {
      reads = [request.lastEventId, request.lastEventId, request.lastEventId]
      return reply.sse((ctx) => [{ data: String(ctx.lastEventId) }])
    })
    const client = await open(await listen(app) + '/?lastEventId=%00')
    await client.closed
    t.same(reads, [undefined, undefined, undefined])
    t.equal(client.text, ': heartbeat=15000\ndata: undefined\n\n')
    await logs.waitFor(isEnd)
    t.equal(logs.lines.filter((l) => /ignoring an invalid last event id/.test(l.msg)).length, 1)
  })

  t.test('a stream reading another query parameter reads its own', async (t) => {
    const { app } = await build(t)
    app.get('/', (request, reply) => reply.sse((ctx) => [{ data: `${String(request.lastEventId)} ${String(ctx.lastEventId)}` }], { lastEventIdQuery: 'since' }))
    const client = await open(await listen(app) + '/?lastEventId=a&since=b')
    await client.closed
    t.equal(client.text, ': heartbeat=15000\ndata: a b\n\n')
  })
})

// Conformance cases 37, 38: whatever content type a hook, reply.type() or the raw response
// set earlier (a non-UTF-8 charset, odd casing), the stream goes out with exactly one
// `Content-Type: text/event-stream` header, byte for byte. compat.test.ts covers only an
// application/json type set through reply.header().
import t from 'tap'
import Fastify from 'fastify'
import sse from '../index.js'
import { get, listen } from './helpers/http.js'

t.test('an earlier charset or casing never reaches the wire', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse)
  app.get('/reply-type', (_req, reply) => reply.type('text/event-stream; charset=windows-1252').sse([{ data: 'x' }]))
  app.get('/upper', (_req, reply) => reply.header('Content-Type', 'TEXT/Event-Stream').sse([{ data: 'x' }]))
  app.get('/raw', (_req, reply) => {
    reply.raw.setHeader('Content-Type', 'text/event-stream; charset=windows-1252')
    return reply.sse([{ data: 'x' }])
  })
  app.addHook('onRequest', async (req, reply) => {
    if (req.url === '/hook') reply.header('content-type', 'text/event-stream;charset="UTF-8"')
  })
  app.get('/hook', (_req, reply) => reply.sse([{ data: 'x' }]))
  const url = await listen(app)
  for (const path of ['/reply-type', '/upper', '/raw', '/hook']) {
    const res = await get(url + path)
    t.equal(res.status, 200, `${path}: status`)
    t.equal(res.headers['content-type'], 'text/event-stream', `${path}: exact value`)
    t.equal(res.body, ': heartbeat=15000\ndata: x\n\n', `${path}: body`)
  }
})

t.test('the raw head carries one Content-Type line, in lowercase value', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse)
  app.get('/', (_req, reply) => {
    reply.raw.setHeader('Content-Type', 'TEXT/EVENT-STREAM; charset=latin1')
    return reply.type('application/json').sse([{ data: 'x' }])
  })
  const url = new URL(await listen(app))
  const { connect } = await import('node:net')
  const socket = connect(Number(url.port), url.hostname)
  let raw = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => { raw += chunk })
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.write(`GET / HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`)
  await new Promise((resolve) => socket.once('close', resolve))
  const head = raw.slice(0, raw.indexOf('\r\n\r\n'))
  const lines = head.split('\r\n').filter((l) => /^content-type:/i.test(l))
  t.same(lines.map((l) => l.replace(/^content-type:\s*/i, '')), ['text/event-stream'], JSON.stringify(head))
})

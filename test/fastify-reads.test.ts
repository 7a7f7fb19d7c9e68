// A stream's head. Whether the app set any header is read from Fastify's own store of a reply's
// headers (noHeaders()), with reply.getHeaders() as the fallback. On the Fastify this package is
// tested with, the store must be found and agree with the public API, so that an upgrade that
// moves it fails here rather than slowing every connect in silence.
import t from 'tap'
import Fastify, { type FastifyReply } from 'fastify'
import sse from '../index.js'
import { fastifyKey, noHeaders } from '../lib/stream.js'
import { listen, open } from './helpers/stream.js'

t.test('noHeaders() sees a header set on the reply or on its raw response, and its removal', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.get('/', (_req, reply) => {
    t.equal(fastifyKey(reply, 'fastify.reply.headers').description, 'fastify.reply.headers', 'this Fastify keeps them where the shortcut looks')
    t.ok(noHeaders(reply), 'none set')
    reply.header('x-one', '1')
    t.notOk(noHeaders(reply), 'one set on the reply')
    reply.removeHeader('x-one')
    t.ok(noHeaders(reply), 'none once it is removed')
    reply.raw.setHeader('x-two', '2')
    t.notOk(noHeaders(reply), 'one set on the raw response')
    reply.raw.removeHeader('x-two')
    t.ok(noHeaders(reply))
    reply.type('text/plain')
    t.notOk(noHeaders(reply), 'reply.type() sets one too')
    return 'ok'
  })
  const res = await app.inject('/')
  t.equal(res.body, 'ok')
})

t.test('a reply with a store of its own (another copy of Fastify), or none', async (t) => {
  // A real reply first: the key is found once, on the first reply it is asked of.
  const app = Fastify()
  t.teardown(() => app.close())
  app.get('/', (_req, reply) => { noHeaders(reply); void reply.send('') })
  await app.inject('/')
  const none = fastifyKey({ [Symbol('other')]: {} }, 'fastify.reply.headers')
  t.equal(none.description, 'none', 'a key that nothing has')
  t.equal(({} as Record<symbol, unknown>)[none], undefined)
  // Another copy of Fastify in the process has symbols of its own: its replies' store is found too.
  const raw = { getHeaderNames: () => [] }
  const other = Symbol('fastify.reply.headers')
  t.equal(noHeaders({ [other]: {}, raw } as unknown as FastifyReply), true, 'none set in the other copy\'s store')
  t.equal(noHeaders({ [other]: { 'x-one': '1' }, raw } as unknown as FastifyReply), false, 'one set there')
  // A reply without the store, as a Fastify that kept its headers elsewhere would give: the answer is
  // no, and streamHeaders() asks reply.getHeaders().
  t.equal(noHeaders({ raw } as unknown as FastifyReply), false)
})

t.test('the head carries what hooks set on the reply and on the raw response, or only its own', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse)
  app.addHook('onRequest', async (req, reply) => {
    if (req.url === '/reply') reply.header('access-control-allow-origin', '*')
    if (req.url === '/raw') reply.raw.setHeader('x-request-id', 'abc')
  })
  const handler = (_req: unknown, reply: FastifyReply): void => { reply.sseSink().end() }
  app.get('/none', handler)
  app.get('/reply', handler)
  app.get('/raw', handler)
  const url = await listen(app)
  const none = await open(url + '/none')
  // Beside those Node adds (date, framing, connection), only the stream's own.
  const nodes = new Set(['date', 'transfer-encoding', 'connection', 'keep-alive'])
  t.same(Object.keys(none.res.headers).filter((name) => !nodes.has(name)).sort(), ['cache-control', 'content-type', 'x-accel-buffering'])
  const reply = await open(url + '/reply')
  t.equal(reply.res.headers['access-control-allow-origin'], '*')
  t.equal(reply.res.headers['content-type'], 'text/event-stream')
  const raw = await open(url + '/raw')
  t.equal(raw.res.headers['x-request-id'], 'abc')
  t.equal(raw.res.headers['content-type'], 'text/event-stream')
  await Promise.all([none.closed, reply.closed, raw.closed])
})

// reply.sseSubscribe()'s `comment` option: comment lines at the start of every stream, before any
// event and before the priming frame, with no blank line (fetch-event-source would dispatch an
// empty message for one). The demo's seed stream advertises its resume URL this way.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import sse from '../index.js'
import { get, listen, openStream } from './helpers/http.js'

async function setup (t: Test, routes: (app: FastifyInstance) => void) {
  const app = Fastify()
  await app.register(sse)
  routes(app)
  const url = await listen(app)
  t.teardown(() => app.close())
  return { app, url }
}

t.test('the comment goes first, then the priming frame, then the events', async (t) => {
  const { app, url } = await setup(t, (app) => {
    app.get('/c', (_request, reply) => reply.sseSubscribe('c', { comment: 'resume=/c/1', retry: 1000 }))
  })
  const client = openStream(`${url}/c`)
  await client.waitFor('id: 0-0\n\n')
  t.equal(client.body, 'retry: 1000\n: heartbeat=15000\n: resume=/c/1\nid: 0-0\n\n', 'retry line, comment line, priming frame')
  const id = await app.sse.publish('c', { data: 'x' })
  await client.waitFor('data: x\n')
  t.equal(client.body.slice('retry: 1000\n: heartbeat=15000\n: resume=/c/1\nid: 0-0\n\n'.length), `data: x\nid: ${id}\n\n`)
  client.destroy()
})

t.test('each line of a multi-line comment is a comment line; a resumed stream gets it too', async (t) => {
  const { app, url } = await setup(t, (app) => {
    app.get('/m', (_request, reply) => reply.sseSubscribe('m', { comment: 'a\r\nb\rc\nd', prime: false, from: 'oldest' }))
  })
  const first = await app.sse.publish('m', { data: '1' })
  await app.sse.publish('m', { data: '2' })
  const client = openStream(`${url}/m`, { headers: { 'last-event-id': first } })
  await client.waitFor('data: 2\n')
  t.match(client.body, /^: heartbeat=15000\n: a\n: b\n: c\n: d\ndata: 2\nid: \S+\n\n$/, 'only the event after the cursor, behind the comment')
  client.destroy()
})

t.test('a stream that is over (204) sends no comment', async (t) => {
  const { app, url } = await setup(t, (app) => {
    app.get('/p', (_request, reply) => reply.sseSubscribe('p', { comment: 'resume=/p', from: 'oldest' }))
  })
  await app.sse.pipe('p', [{ data: 'only' }])
  const whole = await get(`${url}/p`)
  t.equal(whole.status, 200)
  t.match(whole.body, /^: heartbeat=15000\n: resume=\/p\nid: \d+-0\n\ndata: only\nid: (\S+)\n\n$/)
  const last = /id: (\S+)\n\n$/.exec(whole.body)![1]!
  const over = await get(`${url}/p`, { headers: { 'last-event-id': last } })
  t.equal(over.status, 204)
  t.equal(over.body, '')
})

t.test('a comment that is not a string is refused before the reply is taken', async (t) => {
  const { url } = await setup(t, (app) => {
    app.get('/bad', (_request, reply) => reply.sseSubscribe('bad', { comment: 42 as unknown as string }))
  })
  const res = await get(`${url}/bad`)
  t.equal(res.status, 500)
  const body = JSON.parse(res.body)
  t.equal(body.code, 'FST_ERR_SSE_INVALID_OPTION')
  t.match(body.message, /comment/)
})

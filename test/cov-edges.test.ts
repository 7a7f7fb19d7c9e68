// Edges of the hub and the stream that the other files do not reach: a comment-only publish, an
// async pipe source, a pipe stopped by the app's close, a stream from a not-found handler, a
// promised value that settles after its client left, and subscriptions on refused replies.
import t from 'tap'
import Fastify from 'fastify'
import sse from '../index.js'
import { build, deferred, isEnd, listen, open } from './helpers/stream.js'

t.test('a comment-only event published is stored with its id: an id-only dispatch with a comment', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  app.get('/', (_req, reply) => reply.sseSubscribe('c', { prime: false }))
  const client = await open(await listen(app) + '/')
  await client.waitFor('')
  await new Promise((resolve) => setImmediate(resolve))
  const id = await app.sse.publish('c', { comment: 'note' })
  await client.waitFor(`id: ${id}\n\n`)
  t.equal(client.text, `: note\nid: ${id}\n\n`)
  client.destroy()
})

t.test('a pipe whose source function is async, and one stopped by the app closing', async (t) => {
  const app = Fastify()
  await app.register(sse)
  await app.sse.pipe('async', async () => [{ data: 'a' }])
  app.get('/', (_req, reply) => reply.sseSubscribe('async', { from: 'oldest', prime: false, heartbeat: false }))
  const client = await open(await listen(app) + '/')
  await client.closed
  t.match(client.text, /^data: a\nid: \d+-1\n\n$/)
  // A source that ignores its signal: the pipe stops at its next event once the app closes.
  const next = deferred()
  let yielded = 0
  const piped = app.sse.pipe('slow', async function * () {
    yield { data: '1' }
    yielded++
    await next.promise
    yield { data: '2' }
    yielded++
    yield { data: '3' }
    yielded++
  })
  await new Promise((resolve) => setImmediate(resolve))
  await app.close()
  next.resolve()
  await piped
  t.equal(yielded, 1, 'the next publish was refused: the pipe stopped, its source returned')
})

t.test('a stream from a not-found handler is counted under an empty route', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false })
  app.setNotFoundHandler((_req, reply) => reply.sse([{ data: 'nowhere' }]))
  const client = await open(await listen(app) + '/nothing-here')
  await client.closed
  t.equal(client.text, 'data: nowhere\n\n')
  t.equal((await logs.waitFor(isEnd)).sse.reason, 'done')
})

t.test('a promised value that settles after its client left is not written', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false })
  const late = deferred<{ data: string }>()
  const left = deferred()
  app.get('/', (_req, reply) => {
    reply.raw.once('close', () => left.resolve())
    return reply.sse([{ data: 'first' }, late.promise] as never)
  })
  const client = await open(await listen(app) + '/')
  await client.waitFor('data: first\n\n')
  client.destroy()
  await left.promise
  late.resolve({ data: 'too late' })
  const end = await logs.waitFor(isEnd)
  t.equal(end.sse.reason, 'client-closed')
  t.equal(end.sse.events, 1)
})

t.test('sseSubscribe on an sse: true route whose reply shutdown refused', async (t) => {
  const app = Fastify()
  await app.register(sse)
  const returned = deferred()
  const late = deferred()
  const settled = deferred<unknown>()
  app.get('/', { sse: true }, async (_req, reply) => {
    // Returns first; subscribes only once shutdown has answered this reply with its 503.
    void late.promise.then(() => reply.sseSubscribe('t')).then(settled.resolve)
    returned.resolve()
  })
  const url = await listen(app)
  const response = fetch(url + '/')
  await returned.promise
  await new Promise((resolve) => setImmediate(resolve))
  const closing = app.close()
  const res = await response
  t.equal(res.status, 503)
  late.resolve()
  t.equal(await settled.promise, undefined, 'the late sseSubscribe() settles at once, sending nothing')
  await closing
})

t.test('a subscription with the query fallback turned off reads no query', async (t) => {
  const { app } = await build(t, { heartbeat: false, lastEventIdQuery: false })
  app.get('/', (_req, reply) => reply.sseSubscribe('q'))
  const client = await open(await listen(app) + '/?lastEventId=x')
  await client.waitFor('\n\n')
  t.match(client.text, /^id: \d+-\d+\n\n$/, 'primed, with no reset: the query is not read')
  client.destroy()
  await client.closed
})

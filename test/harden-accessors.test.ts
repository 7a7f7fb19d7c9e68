// Any object a user passes must be safe: iterators, results and values whose getters throw end the
// stream as `error`, never the process, and the server serves on.
import t from 'tap'
import { build, deferred, isEnd, listen, open } from './helpers/stream.js'

type Route = (url: string) => Promise<void>

const boom = (): never => { throw new Error('bad getter') }

t.test('throwing getters on iterator objects end that stream as error, and the server serves on', async (t) => {
  const cases: Record<string, () => unknown> = {
    'an async result whose done getter throws': () => ({
      [Symbol.asyncIterator] () { return this },
      async next () { return { get done () { return boom() }, value: { data: 'x' } } }
    }),
    'an async result whose value getter throws': () => ({
      [Symbol.asyncIterator] () { return this },
      async next () { return { done: false, get value () { return boom() } } }
    }),
    'a sync result whose done getter throws': () => ({
      [Symbol.iterator] () { return this },
      next () { return { get done () { return boom() }, value: { data: 'x' } } }
    }),
    'a next() result whose then getter throws': () => ({
      [Symbol.asyncIterator] () { return this },
      next () { return { get then () { return boom() } } }
    }),
    'a sync value whose then getter throws': () => [{ get then () { return boom() } }]
  }
  for (const [name, source] of Object.entries(cases)) {
    t.test(name, async (t) => {
      const { app, logs } = await build(t)
      const settled = deferred<unknown>()
      app.get('/', (_req, reply) => { reply.sse(source() as Iterable<never>).then(settled.resolve, settled.resolve) })
      app.get('/ok', async () => 'still serving')
      const url = await listen(app)
      const client = await open(url + '/')
      await client.closed
      t.equal(await settled.promise, undefined, 'reply.sse() settles with undefined')
      const end = await logs.waitFor(isEnd)
      t.equal(end.sse.reason, 'error')
      t.ok(logs.lines.some((l) => l.level === 50 && l.err?.message === 'bad getter'), 'the failure is logged')
      t.equal(await (await fetch(url + '/ok')).text(), 'still serving')
    })
  }
})

t.test('an iterator whose return getter throws, on disconnect: logged, the stream ends and settles', async (t) => {
  const { app, logs } = await build(t)
  const settled = deferred<unknown>()
  const pulledOnce = deferred()
  app.get('/', (_req, reply) => {
    const it = {
      [Symbol.asyncIterator] () { return it },
      next () {
        pulledOnce.resolve()
        return Promise.resolve({ done: false, value: { data: 'x' } }).then((r) => new Promise((resolve) => setTimeout(() => resolve(r), 5)))
      },
      get return () { return boom() }
    }
    reply.sse(it as AsyncIterable<never>).then(settled.resolve, settled.resolve)
  })
  app.get('/ok', async () => 'still serving')
  const url = await listen(app)
  const client = await open(url + '/')
  await client.waitFor('data: x\n\n')
  await pulledOnce.promise
  client.destroy()
  t.equal(await settled.promise, undefined, 'reply.sse() settles')
  const end = await logs.waitFor(isEnd)
  t.equal(end.sse.reason, 'client-closed', 'the end line is logged')
  await logs.waitFor((l) => l.level === 50 && l.err?.message === 'bad getter' && /while stopping/.test(l.msg))
  t.equal(await (await fetch(url + '/ok')).text(), 'still serving')
})

t.test('a source promise whose then getter throws is dropped without a crash at shutdown', async (t) => {
  const { app } = await build(t)
  const refused = deferred()
  let calls = 0
  app.get('/', (_req, reply) => {
    calls++
    // Handed over while the server closes: the source is dropped, never iterated.
    return reply.sse({ get then () { return boom() }, [Symbol.iterator]: boom } as unknown as Iterable<never>).then(() => refused.resolve())
  })
  const url = await listen(app)
  const closing = app.close()
  const res = await fetch(url + '/').catch(() => undefined)
  if (res !== undefined) t.equal(res.status, 503)
  await closing
  if (calls > 0) await refused.promise
  t.pass('no crash')
})

const routeUnused: Route | undefined = undefined
void routeUnused

t.test('dropSource: a source whose then getter throws is logged, never thrown', async (t) => {
  const { dropSource } = await import('../lib/source.js')
  const logged: unknown[] = []
  const log = { error: (obj: unknown) => { logged.push(obj) }, debug: () => {} } as unknown as import('fastify').FastifyBaseLogger
  t.doesNotThrow(() => dropSource({ get then () { return boom() } }, log))
  t.equal((logged[0] as { err: Error }).err.message, 'bad getter')
})

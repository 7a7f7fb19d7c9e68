// Regression: Shutdown refuses a stream with reply.send(503 error) and then, in the same tick, lets the
// handler's promise resolve with undefined (the waiting `sse: true` handler is woken; a plain
// handler's `return reply.sse()` resolves). Fastify sends that error through the onError hooks,
// then the error handler, then the onSend hooks: when one of those hooks is async and slower than
// a few microtasks (an error reporter, a compressor), the reply is not sent yet when the handler
// resolves. Fastify then calls reply.send(undefined) itself: inside a running onError hook it
// throws FST_ERR_SEND_INSIDE_ONERR twice, out of a promise callback: an unhandled rejection,
// which ends a Node 20 process (--unhandled-rejections=throw is the default) in the middle of
// its graceful shutdown.
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { build, deferred, listen } from './helpers/stream.js'
import { get, within } from './helpers/http.js'

let lastHook: Promise<unknown> = Promise.resolve()
const slowHook = async (): Promise<void> => {
  const done = new Promise((resolve) => setTimeout(resolve, 20))
  lastHook = done
  await done
}

// Every unhandled rejection in this file, by scenario (tap would pin it on whatever test runs).
const rejections: unknown[] = []
process.on('unhandledRejection', (reason) => { rejections.push(reason) })

async function scenario (t: Test, hook: 'onError' | 'onSend', route: (app: FastifyInstance) => Promise<void>): Promise<void> {
  const { app } = await build(t, { heartbeat: false })
  if (hook === 'onError') app.addHook('onError', slowHook)
  else app.addHook('onSend', slowHook)
  await route(app)
  const url = await listen(app)
  const response = get(url + '/')
  await entered.get(app)!.promise
  const before = rejections.length
  await within(app.close(), 2000, 'app.close()')
  const res = await within(response, 1000, 'the response')
  // Let the slow hook end, and what Fastify does after it, before counting.
  await lastHook
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(res.status, 503)
  t.equal(res.headers['retry-after'], '5')
  t.match(res.body, /FST_ERR_SSE_SERVER_CLOSING/)
  t.same(rejections.slice(before).map((r) => (r as Error).message), [], 'no unhandled rejection')
}

const entered = new Map<FastifyInstance, ReturnType<typeof deferred<void>>>()

// preClose refuses a handler that already waits.
t.test('waiting handler refused by preClose, async onError hook', (t) => scenario(t, 'onError', async (app) => {
  const d = deferred(); entered.set(app, d)
  app.get('/', { sse: true }, async () => { d.resolve() })
}))

t.test('waiting handler refused by preClose, async onSend hook', (t) => scenario(t, 'onSend', async (app) => {
  const d = deferred(); entered.set(app, d)
  app.get('/', { sse: true }, async () => { d.resolve() })
}))

// A handler that returns undefined once closing began.
t.test('handler returns while closing, async onError hook', (t) => scenario(t, 'onError', async (app) => {
  const d = deferred(); entered.set(app, d)
  const gate = deferred()
  app.get('/', { sse: true }, async () => { d.resolve(); await gate.promise })
  app.addHook('preClose', (done) => { gate.resolve(); done() })
}))

// Pre-existing (refuse()): reply.sse() called while closing, sse: true route and plain route.
t.test('sse: true handler calls reply.sse() while closing, async onError hook', (t) => scenario(t, 'onError', async (app) => {
  const d = deferred(); entered.set(app, d)
  const gate = deferred()
  app.get('/', { sse: true }, async (_req, reply) => { d.resolve(); await gate.promise; void reply.sse([{ data: 'x' }]) })
  app.addHook('preClose', (done) => { gate.resolve(); done() })
}))

t.test('plain handler returns reply.sse() while closing, async onError hook', (t) => scenario(t, 'onError', async (app) => {
  const d = deferred(); entered.set(app, d)
  const gate = deferred()
  app.get('/', async (_req, reply) => { d.resolve(); await gate.promise; return reply.sse([{ data: 'x' }]) })
  app.addHook('preClose', (done) => { gate.resolve(); done() })
}))

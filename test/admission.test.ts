// Admission control over real sockets: the global limit (503) and the per-key limit (429), both
// with Retry-After and answered by Fastify before the reply is taken; hub subscriptions count; a
// key function that throws refuses with 500, logged; 1,000 refusals leave every counter at zero;
// fastify-sse-stream/client retries a 429 after its Retry-After; bad limits fail at registration.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import http from 'node:http'
import { once } from 'node:events'
import { subscribe as subscribeChannel, unsubscribe as unsubscribeChannel } from 'node:diagnostics_channel'
import sse, { type SsePluginOptions } from '../index.js'
import { errors } from '../index.js'
import { connect, SseHttpError, type RetryInfo } from '../lib/client/index.js'
import { fakeClock, take } from './helpers/client.js'
import { type LogCapture, captureLogs, deferred, get, listen } from './helpers/http.js'
import { type Client, open } from './helpers/stream.js'

/** An app with three kinds of stream, each held open until its client leaves. */
async function app (t: Test, options: SsePluginOptions, fastifyOptions: Record<string, unknown> = {}): Promise<{ app: FastifyInstance, url: string, logs: LogCapture, sources: { started: number, released: number } }> {
  const logs = captureLogs()
  const instance = Fastify({ logger: { level: 'info', stream: logs.stream }, ...fastifyOptions })
  await instance.register(sse, { heartbeat: false, ...options })
  const sources = { started: 0, released: 0 }
  // The source function counts its calls and the aborts of its signal: a refused stream's source,
  // called before the reply is taken, has its signal aborted at once.
  instance.get('/source', (_req, reply) => reply.sse(({ signal }) => {
    sources.started++
    signal.addEventListener('abort', () => { sources.released++ })
    return (async function * () {
      yield { data: 'hello' }
      await once(signal, 'abort').catch(() => {})
    })()
  }))
  instance.get('/sink', (_req, reply) => {
    const sink = reply.sseSink()
    void sink.send({ data: 'hello' })
  })
  instance.get('/topic', (_req, reply) => reply.sseSubscribe('room'))
  // An `sse: true` route whose handler returns before it calls reply.sse().
  instance.get('/late', { sse: true }, async (_req, reply) => {
    // A refusal throws here, before the reply is taken; the waiting handler rejects with it and
    // Fastify answers.
    setImmediate(() => {
      try {
        void reply.sse([{ data: 'hello' }])
      } catch {}
    })
  })
  const url = await listen(instance)
  t.teardown(async () => {
    instance.server.closeAllConnections()
    await instance.close()
  })
  return { app: instance, url, logs, sources }
}

/** Resolves once `n` streams have ended, with their diagnostics close messages. */
function closes (n: number): Promise<Array<{ reason: string }>> {
  const seen = deferred<Array<{ reason: string }>>()
  const messages: Array<{ reason: string }> = []
  const onClose = (message: unknown): void => {
    messages.push(message as { reason: string })
    if (messages.length < n) return
    unsubscribeChannel('fastify-sse-stream:stream:close', onClose)
    seen.resolve(messages)
  }
  subscribeChannel('fastify-sse-stream:stream:close', onClose)
  return seen.promise
}
const nextClose = async (): Promise<{ reason: string }> => (await closes(1))[0]!

async function opened (url: string, headers: http.OutgoingHttpHeaders = {}): Promise<Client> {
  const client = await open(url, { headers })
  // A subscription to a topic with no event yet opens with its priming id.
  await client.waitFor(url.endsWith('/topic') ? 'id: ' : 'data: ')
  return client
}

t.test('the global limit: 503 with Retry-After, hub subscriptions counted, room again once one ends', async (t) => {
  const { app: instance, url } = await app(t, { maxStreams: 3, retryAfter: 7 })
  await instance.sse.publish('room', { data: 'x' })
  const held = [await opened(url + '/source'), await opened(url + '/sink'), await opened(url + '/topic')]
  t.equal(instance.sse.stats().streams.open, 3)
  for (const path of ['/source', '/sink', '/topic', '/late']) {
    const res = await get(url + path)
    t.equal(res.status, 503, `${path}: 503`)
    t.equal(res.headers['retry-after'], '7', `${path}: Retry-After`)
    t.match(res.headers['content-type'], /^application\/json/, `${path}: Fastify's JSON error`)
    t.match(JSON.parse(res.body), { code: 'FST_ERR_SSE_TOO_MANY_STREAMS', statusCode: 503, message: 'The server holds its limit of 3 open streams; reconnect later' })
  }
  t.same(instance.sse.stats().refused, { global: 4, 'per-key': 0, 'key-error': 0 })
  // A hub subscription that leaves frees its place like any stream.
  const ended = nextClose()
  held[2]!.destroy()
  t.equal((await ended).reason, 'client-closed')
  const again = await open(url + '/topic')
  t.equal(again.res.statusCode, 200, 'a stream opens once one has ended')
  again.destroy()
  for (const client of held) client.destroy()
})

t.test('the per-key limit: 429 with Retry-After, by request.ip by default (trustProxy applies)', async (t) => {
  const { app: instance, url } = await app(t, { maxStreamsPerKey: 1 }, { trustProxy: true })
  const a = await opened(url + '/source', { 'x-forwarded-for': '10.0.0.1' })
  const refused = await get(url + '/sink', { headers: { 'x-forwarded-for': '10.0.0.1' } })
  t.equal(refused.status, 429)
  t.equal(refused.headers['retry-after'], '5', 'the retryAfter default')
  t.match(JSON.parse(refused.body), { code: 'FST_ERR_SSE_TOO_MANY_STREAMS_PER_KEY', statusCode: 429 })
  const b = await opened(url + '/sink', { 'x-forwarded-for': '10.0.0.2' })
  t.equal(instance.sse.stats().keys, 2, 'two keys hold streams')
  a.destroy()
  b.destroy()
  await Promise.all([a.closed, b.closed])
})

t.test('a key function: the limit follows it; one that throws or returns no string is a logged 500', async (t) => {
  let mode = 'user'
  const { app: instance, url, logs, sources } = await app(t, {
    maxStreamsPerKey: 2,
    admissionKey: (request) => {
      if (mode === 'throw') throw new Error('no session store')
      if (mode === 'number') return 42 as unknown as string
      return String(request.headers['x-user'])
    }
  })
  const held = [await opened(url + '/source', { 'x-user': 'ann' }), await opened(url + '/topic', { 'x-user': 'ann' })]
  t.equal((await get(url + '/sink', { headers: { 'x-user': 'ann' } })).status, 429, "ann's third stream")
  t.equal((await get(url + '/late', { headers: { 'x-user': 'ann' } })).status, 429, "ann's third stream, on an sse: true route")
  const bob = await opened(url + '/sink', { 'x-user': 'bob' })
  mode = 'throw'
  const thrown = await get(url + '/source')
  t.equal(thrown.status, 500)
  t.match(JSON.parse(thrown.body), { code: 'FST_ERR_SSE_ADMISSION_KEY', message: 'The admissionKey option must return a string, instead it threw' })
  const line = await logs.waitFor((l) => l.msg === 'fastify-sse-stream: the admissionKey option failed; the stream is refused')
  t.equal(line.level, 50, 'logged at error level')
  t.equal(line.err.code, 'FST_ERR_SSE_ADMISSION_KEY')
  t.match(line.err.cause?.message ?? line.err.message, /no session store|threw/, 'with its cause')
  mode = 'number'
  const number = await get(url + '/sink')
  t.equal(number.status, 500)
  t.match(JSON.parse(number.body), { message: 'The admissionKey option must return a string, instead it returned number 42' })
  t.equal(sources.started, 2, "a refused source function ran (it is called before the reply is taken)…")
  t.equal(sources.released, 1, '…and was released at once, like the source of a stream that never opened')
  t.same(instance.sse.stats().refused, { global: 0, 'per-key': 2, 'key-error': 2 })
  mode = 'user'
  for (const client of [...held, bob]) client.destroy()
})

t.test('1,000 refused connections leave the counters exactly at zero', async (t) => {
  let throwFor = ''
  const { app: instance, url, sources } = await app(t, {
    maxStreams: 4,
    maxStreamsPerKey: 2,
    admissionKey: (request) => {
      const user = String(request.headers['x-user'])
      if (user === throwFor) throw new Error('boom')
      return user
    }
  })
  // Two keys at their limit, and the server at its own.
  const held = [
    await opened(url + '/source', { 'x-user': 'a' }), await opened(url + '/sink', { 'x-user': 'a' }),
    await opened(url + '/source', { 'x-user': 'b' })
  ]
  throwFor = 'bad'
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 })
  t.teardown(() => agent.destroy())
  const paths = ['/source', '/sink', '/topic', '/late']
  // 1,000 requests, 32 at a time: per-key refusals, key errors, then (the fourth place taken) global ones.
  const statuses = new Map<number, number>()
  const run = async (from: number, to: number, user: (i: number) => string): Promise<void> => {
    let next = from
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < to) {
        const i = next++
        const res = await get(url + paths[i % paths.length], { agent, headers: { 'x-user': user(i) } })
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
      }
    }))
  }
  await run(0, 400, (i) => i % 2 === 0 ? 'a' : 'bad')
  held.push(await opened(url + '/sink', { 'x-user': 'c' }))
  await run(400, 1000, (i) => ['a', 'b', 'c', 'd', 'bad'][i % 5]!)
  const stats = instance.sse.stats()
  t.equal(stats.refused.global + stats.refused['per-key'] + stats.refused['key-error'], 1000, 'every one was refused')
  t.same([...statuses.keys()].sort(), [429, 500, 503], 'with each of the three answers')
  t.equal(stats.streams.open, 4)
  const closed = closes(held.length)
  for (const client of held) client.destroy()
  await closed
  const after = instance.sse.stats()
  t.equal(after.streams.open, 0, 'no stream counted')
  t.equal(after.keys, 0, 'no key counted')
  t.equal(sources.started, sources.released, 'every source function that ran was released')
  // The counters are back at zero: a full set of streams opens again.
  const again = [
    await opened(url + '/source', { 'x-user': 'a' }), await opened(url + '/sink', { 'x-user': 'a' }),
    await opened(url + '/source', { 'x-user': 'b' }), await opened(url + '/sink', { 'x-user': 'b' })
  ]
  t.equal((await get(url + '/sink', { headers: { 'x-user': 'c' } })).status, 503, 'and the fifth is refused')
  for (const client of again) client.destroy()
})

t.test('fastify-sse-stream/client retries a 429 after its Retry-After', async (t) => {
  const { url } = await app(t, { maxStreamsPerKey: 1, retryAfter: 2 })
  const blocker = await opened(url + '/source')
  const clock = fakeClock()
  const retries: RetryInfo[] = []
  const stream = connect(url + '/source', { timers: clock.timers, idleTimeout: 0, onRetry: (info) => retries.push(info) })
  t.equal(await clock.nextTimer(), 2000, 'it waits the 2 s the server asked for')
  t.ok(retries[0]!.error instanceof SseHttpError && retries[0]!.error.status === 429, 'after a 429')
  const ended = nextClose()
  blocker.destroy()
  await ended
  await clock.fire()
  t.same((await take(stream, 1)).map((e) => e.data), ['hello'], 'and gets in once there is room')
  stream.close()
})

t.test('limits are checked at registration, and only there', async (t) => {
  const bad: Array<[SsePluginOptions, string]> = [
    [{ maxStreams: -1 }, 'maxStreams'],
    [{ maxStreams: 1.5 }, 'maxStreams'],
    [{ maxStreams: '10' as unknown as number }, 'maxStreams'],
    [{ maxStreams: true as unknown as number }, 'maxStreams'],
    [{ maxStreamsPerKey: Infinity }, 'maxStreamsPerKey'],
    [{ maxStreamsPerKey: null as unknown as number }, 'maxStreamsPerKey'],
    [{ admissionKey: 'ip' as unknown as () => string }, 'admissionKey']
  ]
  for (const [options, name] of bad) {
    const instance = Fastify()
    await t.rejects(async () => { await instance.register(sse, options) }, { code: 'FST_ERR_SSE_INVALID_OPTION', message: new RegExp(`^The '${name}' option`) }, JSON.stringify(options) ?? name)
    await instance.close()
  }
  for (const options of [{ maxStreams: false }, { maxStreams: 0, maxStreamsPerKey: false }] as SsePluginOptions[]) {
    const instance = Fastify()
    await instance.register(sse, options)
    await instance.close()
  }
  // Per call they are refused: one stream could not honour a plugin-wide limit.
  const instance = Fastify()
  await instance.register(sse)
  instance.get('/', (_req, reply) => reply.sse([], { maxStreams: 1 } as never))
  const res = await instance.inject('/')
  t.equal(res.statusCode, 500)
  t.match(res.json(), { code: 'FST_ERR_SSE_INVALID_OPTION', message: /'maxStreams' option should be given at registration/ })
  await instance.close()
  t.ok(new errors.FST_ERR_SSE_TOO_MANY_STREAMS_PER_KEY(1) instanceof errors.FST_ERR_SSE_TOO_MANY_STREAMS_PER_KEY)
})

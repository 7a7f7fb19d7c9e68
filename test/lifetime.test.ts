// Connection lifetime over real sockets: maxAge (plugin-wide or per call) ends a stream as
// `max-age` after 80 to 100 % of its value, between whole frames, with a `retry:` from
// expiryRetry; expiresAt ends one as `expired`; the client resumes by id; the shared scheduler
// arms no timer per stream; a shutdown wins over a lifetime; bad values fail where they are given.
// Also the end line's logLevel.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { once } from 'node:events'
import { createHook } from 'node:async_hooks'
import { subscribe as subscribeChannel, unsubscribe as unsubscribeChannel } from 'node:diagnostics_channel'
import sse, { type SsePluginOptions, type SseStreamOptions } from '../index.js'
import { connect } from '../lib/client/index.js'
import { type LogCapture, captureLogs, deferred, get, listen } from './helpers/http.js'
import { open, silentClient } from './helpers/stream.js'

interface CloseMessage { reason: string, durationMs: number, events: number, bytes: number, route: string, reqId: string }

/** Resolves once `n` streams have ended, with their diagnostics close messages. */
function closes (n: number): Promise<CloseMessage[]> {
  const seen = deferred<CloseMessage[]>()
  const messages: CloseMessage[] = []
  const onClose = (message: unknown): void => {
    messages.push(message as CloseMessage)
    if (messages.length < n) return
    unsubscribeChannel('fastify-sse-stream:stream:close', onClose)
    seen.resolve(messages)
  }
  subscribeChannel('fastify-sse-stream:stream:close', onClose)
  return seen.promise
}

/** An app whose `/` streams one event, then waits for its signal; the signal's reason is kept. */
async function app (t: Test, options: SsePluginOptions, call?: (query: Record<string, string>) => SseStreamOptions | undefined): Promise<{ app: FastifyInstance, url: string, logs: LogCapture, reasons: string[] }> {
  const logs = captureLogs()
  const instance = Fastify({ logger: { level: 'trace', stream: logs.stream } })
  await instance.register(sse, { heartbeat: false, ...options })
  const reasons: string[] = []
  instance.get('/', (request, reply) => reply.sse(async function * ({ signal }) {
    yield { id: '1', data: 'hello' }
    await once(signal, 'abort').catch(() => {})
    reasons.push((signal.reason as Error).message)
  }, call?.(request.query as Record<string, string>)))
  const url = await listen(instance)
  t.teardown(async () => {
    instance.server.closeAllConnections()
    await instance.close()
  })
  return { app: instance, url, logs, reasons }
}

t.test('maxAge ends streams as max-age, spread over 80 to 100 % of it, with a retry: line', async (t) => {
  const { url, logs, reasons } = await app(t, { maxAge: 600, expiryRetry: [700, 900] })
  const N = 12
  const ended = closes(N)
  const clients = await Promise.all(Array.from({ length: N }, () => open(url + '/')))
  const messages = await ended
  t.same(new Set(messages.map((m) => m.reason)), new Set(['max-age']))
  const durations = messages.map((m) => m.durationMs)
  // The scheduler looks every quarter of the age at most: up to 150 ms late, and never early.
  t.ok(durations.every((d) => d >= 480 && d <= 600 + 150 + 100), `durations ${durations.join(', ')} ms within [480, 850]`)
  t.ok(new Set(durations).size > 1, 'not all at the same moment')
  for (const client of clients) {
    await client.closed
    const m = /^: heartbeat|^id: 1\ndata: hello\n\nretry: (\d+)\n$/.exec(client.text)
    t.ok(m !== null && Number(m[1]) >= 700 && Number(m[1]) <= 900, `ends after its frame with a retry: from expiryRetry: ${JSON.stringify(client.text)}`)
  }
  t.same(new Set(reasons), new Set(['The SSE stream ended: max-age']), "the source's signal says why")
  t.equal(logs.lines.filter((l) => l.sse?.reason === 'max-age').length, N, 'each end is logged')
})

t.test('per call: maxAge over the plugin-wide value, expiresAt as a Date or ms, the earlier one wins', async (t) => {
  const { url } = await app(t, { maxAge: 60_000, expiryRetry: false }, (q) => ({
    ...(q.maxAge !== undefined ? { maxAge: Number(q.maxAge) } : {}),
    ...(q.at !== undefined ? { expiresAt: Date.now() + Number(q.at) } : {}),
    ...(q.date !== undefined ? { expiresAt: new Date(Date.now() + Number(q.date)) } : {})
  }))
  const cases: Array<[string, string]> = [
    ['/?maxAge=200', 'max-age'],
    ['/?at=200', 'expired'],
    ['/?date=200', 'expired'],
    ['/?maxAge=150&at=5000', 'max-age'],
    ['/?maxAge=5000&at=200', 'expired']
  ]
  for (const [path, reason] of cases) {
    const ended = closes(1)
    const client = await open(url + path)
    const [message] = await ended
    t.equal(message!.reason, reason, path)
    await client.closed
    t.equal(client.text, 'id: 1\ndata: hello\n\n', `${path}: its frame whole, and no retry: with expiryRetry: false`)
  }
})

t.test('an expiresAt already past ends the stream right after its head', async (t) => {
  const { url, reasons } = await app(t, {}, () => ({ expiresAt: Date.now() - 1000 }))
  const res = await get(url + '/')
  t.equal(res.status, 200)
  t.match(res.body, /^retry: \d+\n$/, 'only the retry: line (the default expiryRetry)')
  const retry = Number(/\d+/.exec(res.body)![0])
  t.ok(retry >= 500 && retry <= 3000, `retry ${retry} in [500, 3000]`)
  t.same(reasons, [], 'the source never ran: the stream had ended before it was pulled')
})

t.test('never in the middle of a frame: a full socket waits for its drain', async (t) => {
  const big = 'x'.repeat(256 * 1024)
  const logs = captureLogs()
  const instance = Fastify({ logger: { level: 'info', stream: logs.stream } })
  // An age long enough for the socket to fill first, even on a loaded machine.
  await instance.register(sse, { heartbeat: false, writeTimeout: false, maxAge: 1000, expiryRetry: [1000, 1000] })
  let server: import('node:net').Socket | undefined
  instance.get('/', (req, reply) => {
    server = req.raw.socket
    return reply.sse(async function * () {
      while (true) yield { data: big }
    })
  })
  const url = await listen(instance)
  t.teardown(async () => {
    instance.server.closeAllConnections()
    await instance.close()
  })
  const socket = await silentClient(url + '/')
  // The socket fills (the client reads nothing), and the age passes while it is full: the stream waits.
  for (let i = 0; i < 5000 && server?.writableNeedDrain !== true; i++) await new Promise((resolve) => setImmediate(resolve))
  t.ok(server!.writableNeedDrain, 'the socket is full')
  const ended = closes(1)
  let seen = false
  void ended.then(() => { seen = true })
  await new Promise((resolve) => setTimeout(resolve, 1100)) // the age is over; the socket is still full
  t.notOk(seen, 'not ended while the socket is full')
  let text = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => { text += chunk })
  socket.resume()
  const [message] = await ended
  t.equal(message!.reason, 'max-age')
  // The response ends (its last chunk); the keep-alive connection may stay.
  while (!text.includes('\r\n0\r\n\r\n')) await once(socket, 'data')
  socket.destroy()
  const body = text.slice(text.indexOf('\r\n\r\n') + 4)
  // Chunked: undo the framing, then every event is whole and the last line is the retry.
  let decoded = ''
  for (let at = 0; ;) {
    const eol = body.indexOf('\r\n', at)
    const size = parseInt(body.slice(at, eol), 16)
    if (size === 0) break
    decoded += body.slice(eol + 2, eol + 2 + size)
    at = eol + 2 + size + 2
  }
  t.ok(decoded.endsWith('\n\nretry: 1000\n'), 'the retry: line follows a whole frame')
  const frames = decoded.slice(0, -'retry: 1000\n'.length).split('\n\n').slice(0, -1)
  t.ok(frames.length >= 3, `${frames.length} frames`)
  t.ok(frames.every((f) => f === 'data: ' + big), 'every frame whole')
})

t.test('a client of this package resumes by id after each max-age end: no gap, no duplicate', async (t) => {
  const instance = Fastify()
  await instance.register(sse, { heartbeat: false, maxAge: 150, expiryRetry: [0, 20] })
  instance.get('/feed', (_req, reply) => reply.sseSubscribe('feed'))
  const url = await listen(instance)
  t.teardown(async () => {
    instance.server.closeAllConnections()
    await instance.close()
  })
  let ends = 0
  const onClose = (m: unknown): void => { if ((m as CloseMessage).reason === 'max-age') ends++ }
  subscribeChannel('fastify-sse-stream:stream:close', onClose)
  t.teardown(() => unsubscribeChannel('fastify-sse-stream:stream:close', onClose))
  const stream = connect(url + '/feed', { idleTimeout: 0 })
  const got: string[] = []
  const reading = (async () => {
    for await (const event of stream) {
      got.push(String(event.data))
      if (got.length === 40) break
    }
  })()
  let n = 0
  while (got.length < 40 && n < 400) {
    await instance.sse.publish('feed', { data: String(++n) })
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  await reading
  stream.close()
  t.ok(ends >= 2, `${ends} streams ended as max-age meanwhile`)
  const first = Number(got[0])
  t.same(got, Array.from({ length: 40 }, (_, i) => String(first + i)), 'consecutive across the reconnects')
})

t.test('one shared timer: streams with a lifetime arm no Timeout each', async (t) => {
  const { url } = await app(t, { maxAge: 60_000 })
  await get(url + '/nothing') // warm up
  let timeouts = 0
  const hook = createHook({ init (_id, type) { if (type === 'Timeout') timeouts++ } })
  hook.enable()
  // Until every head is in: each stream has opened, its lifetime set (the client's own waits,
  // which use timers, come after).
  const clients = await Promise.all(Array.from({ length: 20 }, () => open(url + '/')))
  hook.disable()
  await Promise.all(clients.map((c) => c.waitFor('data: hello')))
  // One for the shared scheduler at most; Node's own HTTP timers may add one or two. Not 20.
  t.ok(timeouts <= 3, `${timeouts} Timeout made for 20 streams`)
  for (const client of clients) client.destroy()
})

t.test('a shutdown wins over a lifetime that passes during its grace period', async (t) => {
  const instance = Fastify()
  await instance.register(sse, { heartbeat: false, maxAge: 50, shutdownGrace: 300, shutdownRetry: false })
  const reasons: string[] = []
  instance.get('/', (_req, reply) => reply.sse(async function * ({ signal }) {
    yield { data: 'hello' }
    await once(signal, 'abort').catch(() => {})
    reasons.push((signal.reason as Error).message)
    // Ignores its signal: the stream lives on through the grace period, past its age.
    await new Promise((resolve) => setTimeout(resolve, 1000))
  }, { maxAge: 200 }))
  const url = await listen(instance)
  const client = await open(url + '/')
  await client.waitFor('data: hello')
  const ended = closes(1)
  const closed = instance.close()
  const [message] = await ended
  await closed
  t.equal(message!.reason, 'shutdown')
  t.same(reasons, ['The SSE stream ended: shutdown'])
})

t.test('bad values fail where they are given', async (t) => {
  const bad: Array<[SsePluginOptions, string]> = [
    [{ maxAge: -1 }, 'maxAge'],
    [{ maxAge: 1.5 }, 'maxAge'],
    [{ maxAge: 2 ** 31 }, 'maxAge'],
    [{ maxAge: '1h' as unknown as number }, 'maxAge'],
    [{ expiryRetry: [3000, 500] }, 'expiryRetry'],
    [{ expiryRetry: true as unknown as false }, 'expiryRetry'],
    [{ expiresAt: Date.now() + 1000 }, 'expiresAt'],
    [{ logLevel: 'verbose' as 'info' }, 'logLevel']
  ]
  for (const [options, name] of bad) {
    const instance = Fastify()
    await t.rejects(async () => { await instance.register(sse, options) }, { code: 'FST_ERR_SSE_INVALID_OPTION', message: new RegExp(`^The '${name}' option`) }, name)
    await instance.close()
  }
  const instance = Fastify()
  await instance.register(sse)
  const perCall: unknown[] = [NaN, 'tomorrow', new Date('nope'), Infinity, null]
  instance.get('/', (request, reply) => reply.sse([], { expiresAt: perCall[Number((request.query as { i: string }).i)] as number }))
  for (let i = 0; i < perCall.length; i++) {
    const res = await instance.inject(`/?i=${i}`)
    t.equal(res.statusCode, 500, String(perCall[i]))
    t.match(res.json(), { code: 'FST_ERR_SSE_INVALID_OPTION', message: /^The 'expiresAt' option should be a valid Date or a number of ms since the epoch/ })
  }
  await instance.close()
})

t.test('logLevel: the end line at the level asked, or none', async (t) => {
  const { url, logs } = await app(t, { logLevel: 'debug', maxAge: 100 }, (q) => q.level === undefined ? undefined : { logLevel: q.level as 'warn' })
  for (const [query, level] of [['', 20], ['?level=warn', 40], ['?level=silent', undefined]] as const) {
    const ended = closes(1)
    const client = await open(url + '/' + query)
    const [message] = await ended
    await client.closed
    const lines = logs.lines.filter((l) => l.sse !== undefined && l.reqId === message!.reqId)
    t.same(lines.map((l) => l.level), level === undefined ? [] : [level], `${query || 'plugin-wide'}: ${level ?? 'no line'}`)
  }
})

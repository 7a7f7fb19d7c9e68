// Safe resume: a non-idempotent request is never re-sent blindly. It resumes with an
// idempotency key and a Last-Event-ID the server issued, or by GET to the resume URL the server
// advertised in-band; otherwise it fails with SseInterruptedError. Routes that replay from an
// array after request.lastEventId stand in for the hub. Also: 204 for a stream that is over,
// the hub's sse-reset event, and random server drops with exactly-once delivery.
import t from 'tap'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { connect, defineStream, json, SseInterruptedError, SseNetworkError, type SseResetData } from '../../lib/client/index.js'
import { startApp, take } from '../helpers/client.js'
import { seededRandom } from '../helpers/random.js'

const quick = { retryDelay: 1, jitter: false } as const
const HISTORY = Array.from({ length: 6 }, (_, i) => ({ id: String(i + 1), event: i === 5 ? 'end' : 'token', data: `t${i + 1}` }))

/** Events after `lastEventId` in `history`. */
function after<E extends { id: string }> (history: readonly E[], lastEventId: string | undefined): E[] {
  return history.slice(lastEventId === undefined ? 0 : history.findIndex((e) => e.id === lastEventId) + 1)
}

/**
 * Sends `events`, then drops the connection when `dropAfter` of them are out: the socket ends
 * once what was written has left, with no end of the chunked body, as a dying server would.
 */
function sendThenDrop (reply: FastifyReply, events: readonly object[], dropAfter = Infinity, first?: object) {
  return reply.sse(async function * () {
    if (first) yield first
    let sent = 0
    for (const event of events) {
      if (sent++ === dropAfter) {
        // The plugin writes a tick's frames together at the end of the tick: let them go first.
        await new Promise((resolve) => setImmediate(resolve))
        reply.raw.socket!.end()
        return
      }
      yield event
    }
  })
}

t.test('a POST that is interrupted, with no key and no resume URL, fails and is never re-sent', async (t) => {
  let posts = 0
  const { url } = await startApp(t, (app) => {
    app.post('/chat', (_req, reply) => { posts++; return sendThenDrop(reply, HISTORY, 2) })
  })
  const stream = connect(`${url}/chat`, { ...quick, method: 'POST', body: { prompt: 'hi' } })
  const got: string[] = []
  const error = await (async () => { for await (const e of stream) got.push(e.data) })().catch((e: unknown) => e)
  t.same(got, ['t1', 't2'])
  t.ok(error instanceof SseInterruptedError, 'a typed error')
  t.equal((error as Error).name, 'SseInterruptedError')
  t.match((error as Error).message, /POST stream was interrupted/)
  t.ok((error as Error).cause instanceof SseNetworkError, 'its cause is the drop')
  t.equal(posts, 1)
  t.match(await stream.closed, { reason: 'fatal' })
})

t.test('an idempotency key without an event ID is not enough', async (t) => {
  let posts = 0
  const { url } = await startApp(t, (app) => {
    app.post('/chat', (_req, reply) => { posts++; return sendThenDrop(reply, [{ data: 'no id' }, { data: 'no id' }], 1) })
  })
  const stream = connect(`${url}/chat`, { ...quick, method: 'POST', idempotencyKey: true })
  await take(stream).catch(() => {})
  t.match(await stream.closed, { reason: 'fatal', error: { name: 'SseInterruptedError' } })
  t.equal(posts, 1)
})

t.test('with an idempotency key and an issued event ID, the same POST is re-sent with Last-Event-ID', async (t) => {
  const requests: Array<{ key: unknown, last: unknown, body: unknown }> = []
  const { url } = await startApp(t, (app) => {
    app.post('/chat', (req, reply) => {
      requests.push({ key: req.headers['idempotency-key'], last: req.lastEventId, body: req.body })
      // The server dedupes by key: a repeat continues the same answer after the cursor.
      return sendThenDrop(reply, after(HISTORY, req.lastEventId), requests.length === 1 ? 3 : Infinity)
    })
  })
  const stream = connect(`${url}/chat`, { ...quick, method: 'POST', body: { prompt: 'hi' }, idempotencyKey: true, terminalEvent: 'end' })
  const got = await take(stream)
  t.same(got.map((e) => e.data), HISTORY.map((e) => e.data), 'each event once, in order')
  t.equal(requests.length, 2)
  t.match(requests[0]!.key, /^[0-9a-f-]{36}$/, 'a random UUID')
  t.equal(requests[1]!.key, requests[0]!.key, 'fixed for the logical stream')
  t.same(requests.map((r) => r.last), [undefined, '3'])
  t.same(requests.map((r) => r.body), [{ prompt: 'hi' }, { prompt: 'hi' }])
})

t.test('a resume URL advertised in-band: the reconnect is a GET to it, and 204 ends a stream that is over', async (t) => {
  const log: string[] = []
  const jobs = new Map<string, typeof HISTORY>()
  const { url } = await startApp(t, (app) => {
    app.post('/jobs', (req, reply) => {
      log.push(`POST ${req.url} ${req.lastEventId}`)
      const job = `job${jobs.size + 1}`
      jobs.set(job, HISTORY)
      return sendThenDrop(reply, HISTORY, 2, { comment: `resume=jobs/${job}` })
    })
    app.get('/jobs/:job', (req: FastifyRequest<{ Params: { job: string } }>, reply) => {
      log.push(`GET ${req.url} ${req.lastEventId}`)
      const rest = after(jobs.get(req.params.job)!, req.lastEventId)
      if (rest.length === 0) return reply.code(204).send()
      return sendThenDrop(reply, rest, log.length === 2 ? 1 : Infinity)
    })
  })
  const stream = connect(`${url}/jobs`, { ...quick, method: 'POST', body: 'x' })
  const got = await take(stream)
  t.same(got.map((e) => e.id), ['1', '2', '3', '4', '5', '6'])
  t.same(log, ['POST /jobs undefined', 'GET /jobs/job1 2', 'GET /jobs/job1 3', 'GET /jobs/job1 6'])
  t.same(await stream.closed, { reason: 'end' })
})

t.test('a resume URL on another origin, or one that is not a URL, is ignored', async (t) => {
  let posts = 0
  const { url } = await startApp(t, (app) => {
    app.post('/a', (_req, reply) => { posts++; return sendThenDrop(reply, HISTORY, 1, { comment: 'resume=http://198.51.100.7/steal' }) })
    app.post('/b', (_req, reply) => { posts++; return sendThenDrop(reply, HISTORY, 1, { comment: 'resume=http://[' }) })
  })
  for (const path of ['/a', '/b']) {
    const stream = connect(`${url}${path}`, { ...quick, method: 'POST' })
    await take(stream).catch(() => {})
    t.match(await stream.closed, { reason: 'fatal', error: { name: 'SseInterruptedError' } }, path)
  }
  t.equal(posts, 2)
})

t.test("the hub's sse-reset passes through as an event, and onReset hears it", async (t) => {
  const reset = { event: 'sse-reset', id: '10', data: JSON.stringify({ topic: 'prices', reason: 'trimmed', from: '3', head: '10' }) }
  const { url } = await startApp(t, (app) => {
    app.get('/topic', (_req, reply) => reply.sse([{ ...reset, data: reset.data }, { id: '11', event: 'tick', data: '{"n":11}' }, { event: 'end', data: '{}' }]))
  })
  const resets: Array<[SseResetData, string]> = []
  const untyped = connect(`${url}/topic`, { terminalEvent: 'end', onReset: (data, id) => resets.push([data, id]) })
  const raw = await take(untyped)
  t.same(raw[0], { event: 'sse-reset', data: reset.data, id: '10' }, 'without a contract, data stays text')
  t.same(resets, [[{ topic: 'prices', reason: 'trimmed', from: '3', head: '10' }, '10']])

  const contract = defineStream({ path: '/topic', events: { tick: json<{ n: number }>(), end: json<object>() } })
  const typed = connect(contract, { baseUrl: url, terminalEvent: 'end' })
  const events = await take(typed)
  t.same(events, [
    { event: 'sse-reset', data: { topic: 'prices', reason: 'trimmed', from: '3', head: '10' }, id: '10' },
    { event: 'tick', data: { n: 11 }, id: '11' },
    { event: 'end', data: {}, id: '11' }
  ])
})

// Random drops during a hub-like stream: every event arrives exactly once, in order, over GET,
// over POST with an idempotency key, and over POST with a resume URL.
t.test('random server drops: exactly once and in order', async (t) => {
  const seed = Number(process.env.SSE_SEED ?? Date.now() % 2 ** 31)
  t.comment(`seed ${seed} (repeat with SSE_SEED=${seed})`)
  const next = seededRandom(seed)
  const history = Array.from({ length: 300 }, (_, i) => ({ id: `e${i + 1}`, event: i === 299 ? 'end' : 'n', data: String(i + 1) }))
  let connections = 0
  const route = (reply: FastifyReply, lastEventId: string | undefined, first?: object) => {
    connections++
    // Drop after 0 to 19 events (1 to 20 on the first connection, so that a POST has an event ID).
    return sendThenDrop(reply, after(history, lastEventId), Math.floor(next() * 20) + (lastEventId === undefined ? 1 : 0), first)
  }
  const { url } = await startApp(t, (app) => {
    app.get('/topic', (req, reply) => route(reply, req.lastEventId))
    app.post('/keyed', (req, reply) => route(reply, req.lastEventId))
    app.post('/job', (req, reply) => route(reply, req.lastEventId, { comment: 'resume=/topic' }))
  })
  for (const [path, method, extra] of [['/topic', 'GET', {}], ['/keyed', 'POST', { idempotencyKey: 'k' }], ['/job', 'POST', {}]] as const) {
    connections = 0
    const stream = connect(`${url}${path}`, { ...quick, method, ...extra, terminalEvent: 'end', maxRetries: 50 })
    const got = await take(stream)
    t.same(got.map((e) => e.data), history.map((e) => e.data), `${method} ${path}: ${connections} connections`)
    t.ok(connections > 10, 'the server dropped it many times')
    t.same(await stream.closed, { reason: 'end' })
  }
})

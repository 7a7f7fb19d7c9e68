// The client against the real hub, over real sockets: resumable request streams (app.sse.pipe()
// read with reply.sseSubscribe()), resumed by repeating the POST with its Idempotency-Key and
// Last-Event-ID, or by GET to the resume URL the route advertises in-band; the 204 a finished
// stream answers; the hub's sse-reset; the idle timeout taken from the plugin's own heartbeat
// advertisement; and random server drops during a hub stream. The server drops a connection by
// destroying its socket, as a network failure would.
import type { Socket } from 'node:net'
import { randomUUID } from 'node:crypto'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import type { SsePluginOptions } from '../../index.js'
import { connect, defineStream, json, SseTimeoutError, type RetryInfo, type SseResetData } from '../../lib/client/index.js'
import { deferred, within, type Deferred } from '../helpers/http.js'
import { startApp, take } from '../helpers/client.js'
import { seededRandom } from '../helpers/random.js'

/** A request as the server saw it, and how its response ended. */
interface Seen {
  method: string
  url: string
  lastEventId: string | undefined
  key: string | undefined
  status?: number
  socket: Socket
}

/** An app with the plugin and `routes`, recording every request; `drop()` destroys the socket of the last one still open. */
async function hubApp (t: Test, routes: (app: FastifyInstance) => void, options: SsePluginOptions = {}) {
  const seen: Seen[] = []
  const { app, url } = await startApp(t, (app) => {
    app.addHook('onRequest', async (request, reply) => {
      const entry: Seen = {
        method: request.method,
        url: request.url,
        lastEventId: request.headers['last-event-id'] as string | undefined,
        key: request.headers['idempotency-key'] as string | undefined,
        socket: request.raw.socket
      }
      seen.push(entry)
      reply.raw.once('close', () => { entry.status = reply.raw.statusCode })
    })
    routes(app)
  }, options)
  const drop = (): boolean => {
    const open = seen.findLast((s) => s.status === undefined && !s.socket.destroyed)
    open?.socket.destroy()
    return open !== undefined
  }
  return { app, url, seen, drop }
}

/** The offset of a one-topic hub id, `<t>-<o>`. */
const offset = (id: string): number => Number(/^\d+-(\d+)$/.exec(id)?.[1])

/** A producer of `n` events (`t1`, `t2`...), which waits for `gate` before event `gateAt`. */
function tokens (n: number, gate?: { at: number, open: Deferred }) {
  return async function * () {
    for (let i = 1; i <= n; i++) {
      if (i === gate?.at) await gate.open.promise
      yield { event: 'token', data: `t${i}` }
    }
  }
}

const quick = { retryDelay: 1, jitter: false } as const

t.test('a POST with an Idempotency-Key, dropped mid-stream, is repeated with Last-Event-ID: the work runs once, no gap, no duplicate, and the 204 at the end stops the client', async (t) => {
  const starts: string[] = []
  const gate = { at: 4, open: deferred() }
  let piped: Promise<void> | undefined
  const { url, seen, drop } = await hubApp(t, (app) => {
    app.post('/chat', (request, reply) => {
      const key = request.headers['idempotency-key'] as string
      const topic = 'chat:' + key
      piped = app.sse.pipe(topic, () => {
        starts.push(key)
        return tokens(6, gate)()
      })
      return reply.sseSubscribe(topic, { from: 'oldest', prime: false })
    })
  })
  const retries: RetryInfo[] = []
  const stream = connect(`${url}/chat`, {
    ...quick,
    method: 'POST',
    body: { prompt: 'hi' },
    idempotencyKey: true,
    onRetry: (info) => retries.push(info),
    // The client comes back only once the work is over: the rest comes from the hub's history.
    shouldRetry: () => piped!.then(() => {})
  })
  const got: Array<{ data: string, id: string }> = []
  for await (const event of stream) {
    got.push(event)
    if (got.length === 3) {
      drop()
      gate.open.resolve()
    }
  }
  t.same(got.map((e) => e.data), ['t1', 't2', 't3', 't4', 't5', 't6'], 'each event once, in order')
  t.same(got.map((e) => offset(e.id)), [1, 2, 3, 4, 5, 6], "the hub's positions")
  t.same(starts.length, 1, 'the work ran once')
  t.same(seen.map((s) => [s.method, s.url, s.lastEventId, s.status]), [
    ['POST', '/chat', undefined, 200],
    ['POST', '/chat', got[2]!.id, 200], // after the drop: replayed from the history
    ['POST', '/chat', got[5]!.id, 204] // after the end of the stream: nothing left
  ])
  t.match(starts[0], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'idempotencyKey: true made a version 4 UUID')
  t.ok(seen.every((s) => s.key === starts[0]), 'the same key on every attempt')
  t.same(await stream.closed, { reason: 'end' }, 'the 204 ends it, with no reconnect')
  t.equal(stream.state, 'closed')
  t.equal(stream.attempt, 3)
  t.equal(retries.length, 2, 'two retries: the drop, and the end of the body')
})

t.test('with priming (the default), a keyed POST dropped before its first event resumes from the primed position', async (t) => {
  const starts: string[] = []
  const gate = { at: 1, open: deferred() }
  const { url, seen, drop } = await hubApp(t, (app) => {
    app.post('/chat', (request, reply) => {
      const topic = 'chat:' + String(request.headers['idempotency-key'])
      void app.sse.pipe(topic, () => {
        starts.push(topic)
        return tokens(3, gate)()
      })
      return reply.sseSubscribe(topic, { from: 'oldest' })
    })
  })
  const stream = connect(`${url}/chat`, { ...quick, method: 'POST', idempotencyKey: 'k2' })
  const iterator = stream[Symbol.asyncIterator]()
  const first = iterator.next()
  // The id-only first frame is committed as soon as it is read: the client has an event ID.
  await within((async () => { while (stream.lastEventId === undefined) await new Promise((resolve) => setImmediate(resolve)) })(), 5000, 'the primed id')
  const primed = stream.lastEventId
  drop()
  gate.open.resolve()
  const got = [(await first).value!]
  for (let r = await iterator.next(); !r.done; r = await iterator.next()) got.push(r.value)
  t.same(got.map((e) => e.data), ['t1', 't2', 't3'])
  t.same(seen.map((s) => [s.method, s.lastEventId, s.status]), [
    ['POST', undefined, 200],
    ['POST', primed, 200],
    ['POST', got[2]!.id, 204]
  ], 'resumed with the primed id')
  t.equal(offset(primed!), 0, 'the position before the first event')
  t.same(starts, ['chat:k2'], 'the work ran once')
  t.same(await stream.closed, { reason: 'end' })
})

t.test('a POST whose route advertises a resume URL resumes by GET to it, without a key', async (t) => {
  const starts: string[] = []
  const gate = { at: 4, open: deferred() }
  let piped: Promise<void> | undefined
  const { url, seen, drop } = await hubApp(t, (app) => {
    const subscribe = (key: string) => ({ from: 'oldest' as const, prime: false, comment: `resume=/jobs/${key}` })
    app.post('/jobs', (_request, reply) => {
      const key = randomUUID()
      piped = app.sse.pipe('job:' + key, () => {
        starts.push(key)
        return tokens(6, gate)()
      })
      return reply.sseSubscribe('job:' + key, subscribe(key))
    })
    app.get<{ Params: { key: string } }>('/jobs/:key', (request, reply) =>
      reply.sseSubscribe('job:' + request.params.key, subscribe(request.params.key)))
  })
  const bodies: Array<string | null> = []
  const stream = connect(`${url}/jobs`, {
    ...quick,
    method: 'POST',
    body: { prompt: 'hi' },
    fetch: async (request) => {
      bodies.push(request.body === null ? null : await request.clone().text())
      return fetch(request)
    },
    shouldRetry: () => piped!.then(() => {})
  })
  const got: Array<{ data: string, id: string }> = []
  for await (const event of stream) {
    got.push(event)
    if (got.length === 3) {
      drop()
      gate.open.resolve()
    }
  }
  t.same(got.map((e) => e.data), ['t1', 't2', 't3', 't4', 't5', 't6'], 'each event once, in order')
  const path = `/jobs/${starts[0]}`
  t.same(seen.map((s) => [s.method, s.url, s.lastEventId, s.status]), [
    ['POST', '/jobs', undefined, 200],
    ['GET', path, got[2]!.id, 200],
    ['GET', path, got[5]!.id, 204]
  ])
  t.same(bodies, ['{"prompt":"hi"}', null, null], 'the body went once')
  t.equal(starts.length, 1, 'the work ran once')
  t.same(await stream.closed, { reason: 'end' })
})

t.test('a client that saved the id of the last event gets 204 and stops: no event, no work started', async (t) => {
  const starts: string[] = []
  const { app, url, seen } = await hubApp(t, (app) => {
    app.post('/chat', (request, reply) => {
      const topic = 'chat:' + String(request.headers['idempotency-key'])
      void app.sse.pipe(topic, () => {
        starts.push(topic)
        return tokens(2)()
      })
      return reply.sseSubscribe(topic, { from: 'oldest', prime: false })
    })
  })
  const first = connect(`${url}/chat`, { ...quick, method: 'POST', idempotencyKey: 'k1' })
  const events = await take(first, 2)
  first.close()
  t.same(events.map((e) => e.data), ['t1', 't2'])
  await app.sse.pipe('chat:k1', tokens(0)) // settles with the work, which has ended
  const opened: unknown[] = []
  const again = connect(`${url}/chat`, { ...quick, method: 'POST', idempotencyKey: 'k1', lastEventId: events[1]!.id, onOpen: (r) => opened.push(r) })
  t.same(await take(again), [])
  t.same(await again.closed, { reason: 'end' })
  t.same(opened, [], 'no stream opened')
  t.same(seen.map((s) => s.status), [200, 204])
  t.equal(again.attempt, 1)
  t.same(starts, ['chat:k1'])
})

t.test("the hub's sse-reset reaches onReset typed, and the stream goes on live", async (t) => {
  const { app, url } = await hubApp(t, (app) => {
    app.get('/prices', (_request, reply) => reply.sseSubscribe('prices'))
  }, { hub: { history: { size: 3 } } })
  const ids: string[] = []
  for (let n = 1; n <= 6; n++) ids.push(await app.sse.publish('prices', { event: 'tick', data: { n } }))
  const prices = defineStream({ path: '/prices', events: { tick: json<{ n: number }>() } })

  for (const [lastEventId, reason] of [[ids[0]!, 'trimmed'], ['not-an-id', 'unknown']] as const) {
    const head = ids.at(-1)!
    const resets: Array<[SseResetData, string]> = []
    const stream = connect(prices, { baseUrl: url, lastEventId, onReset: (data, id) => resets.push([data, id]) })
    const iterator = stream[Symbol.asyncIterator]()
    const first = await iterator.next()
    t.same(resets, [[{ topic: 'prices', reason, from: lastEventId, head }, head]], `${reason}: onReset`)
    t.same(first.value, { event: 'sse-reset', data: resets[0]![0], id: head }, `${reason}: delivered as a typed event`)
    if (first.value?.event === 'sse-reset') {
      const data: SseResetData = first.value.data
      t.equal(data.reason, reason)
    }
    const id = await app.sse.publish('prices', { event: 'tick', data: { n: ids.length + 1 } })
    ids.push(id)
    t.same((await iterator.next()).value, { event: 'tick', data: { n: ids.length }, id }, `${reason}: then live from the head`)
    stream.close()
  }
})

t.test('the idle timeout comes from the real advertisement: heartbeats keep a quiet stream open; a stream whose server stops writing is dropped and resumed', async (t) => {
  const { app, url, seen } = await hubApp(t, (app) => {
    app.get('/feed', (_request, reply) => reply.sseSubscribe('feed'))
  }, { heartbeat: 200 })
  const retries: RetryInfo[] = []
  const opened = deferred()
  const stream = connect(`${url}/feed`, { ...quick, onRetry: (info) => retries.push(info), onOpen: () => opened.resolve() })
  const iterator = stream[Symbol.asyncIterator]()
  await within(opened.promise, 5000, 'open')
  const pending = iterator.next()
  // The primed position came with the head; the first event is published once the client waits.
  t.equal(stream.lastEventId, undefined, 'not yet read')
  const id1 = await app.sse.publish('feed', { data: 'one' })
  t.same((await pending).value, { event: 'message', data: 'one', id: id1 })
  // Quiet for 5 heartbeat intervals, twice the idle timeout (2.5 × 200 ms): the heartbeats keep
  // the connection alive. (A span of time with nothing in it cannot be awaited.)
  const quiet = iterator.next()
  await new Promise((resolve) => setTimeout(resolve, 1000))
  t.same(retries, [], 'no timeout while heartbeats arrive')
  t.equal(stream.attempt, 1)
  const id2 = await app.sse.publish('feed', { data: 'two' })
  t.same((await quiet).value, { event: 'message', data: 'two', id: id2 })

  // The server stops writing: its socket holds everything from now on (a stalled path).
  seen[0]!.socket.cork()
  const id3 = await app.sse.publish('feed', { data: 'three' })
  const next = await within(iterator.next(), 5000, 'the resumed event')
  t.same(next.value, { event: 'message', data: 'three', id: id3 }, 'resumed after the timeout')
  t.equal(retries.length, 1)
  t.ok(retries[0]!.error instanceof SseTimeoutError, 'the idle timeout fired')
  t.equal((retries[0]!.error as SseTimeoutError).timeout, 500, '2.5 × the advertised 200 ms')
  t.same(seen.map((s) => s.lastEventId), [undefined, id2], 'resumed with the last id delivered')
  stream.close()
})

// A hub stream under random server drops, three ways: GET of a topic published at full speed;
// a piped POST resumed by its Idempotency-Key; a piped POST resumed by its resume URL. The
// client's sequence must be exactly once and in order. (The first drop comes after the first
// event: a keyed POST resumes only once it holds an event ID.)
t.test('random server drops during a hub stream: exactly once, in order', async (t) => {
  const seed = Number(process.env.SSE_SEED ?? Date.now() % 2 ** 31)
  t.comment(`seed ${seed} (repeat with SSE_SEED=${seed})`)
  const random = seededRandom(seed)
  // 2,000 events of 1 KB: more than the socket buffers hold, so that a drop loses bytes in flight.
  const N = 2000
  const pad = ' ' + 'x'.repeat(1000)
  async function * produce () {
    for (let i = 1; i <= N; i++) yield { event: i === N ? 'end' : 'n', data: i + pad }
  }
  const { app, url, seen, drop } = await hubApp(t, (app) => {
    app.get('/topic', (_request, reply) => reply.sseSubscribe('live'))
    app.post('/keyed', (request, reply) => {
      const topic = 'keyed:' + String(request.headers['idempotency-key'])
      void app.sse.pipe(topic, produce)
      return reply.sseSubscribe(topic, { from: 'oldest', prime: false })
    })
    app.post('/job', (_request, reply) => {
      const key = randomUUID()
      void app.sse.pipe('job:' + key, produce)
      return reply.sseSubscribe('job:' + key, { from: 'oldest', prime: false, comment: `resume=/job/${key}` })
    })
    app.get<{ Params: { key: string } }>('/job/:key', (request, reply) =>
      reply.sseSubscribe('job:' + request.params.key, { from: 'oldest', prime: false }))
  }, { hub: { history: { size: N + 10, bytes: 8 * 1048576 } } })

  for (const [path, method, extra] of [['/topic', 'GET', {}], ['/keyed', 'POST', { idempotencyKey: 'k' }], ['/job', 'POST', {}]] as const) {
    seen.length = 0
    let drops = 0
    // The server drops the stream after 1 to 50 events more, again and again: events it wrote
    // after the one the client reads are lost with the connection, or are still in flight.
    let dropAt = 1
    const opened = deferred()
    const stream = connect(`${url}${path}`, { ...quick, method, ...extra, terminalEvent: 'end', maxRetries: 100, maxRetryDelay: 20, onOpen: () => opened.resolve() })
    const got: string[] = []
    if (path === '/topic') {
      // The subscriber starts at the live edge: publish once it is there, as fast as the hub stores.
      await within(opened.promise, 5000, 'open')
      void (async () => { for await (const event of produce()) await app.sse.publish('live', event) })()
    }
    for await (const event of stream) {
      got.push(event.data.slice(0, event.data.indexOf(' ')))
      if (got.length === dropAt) {
        if (drop()) drops++
        dropAt += 1 + Math.floor(random() * 50)
      }
    }
    t.equal(got.length, N, `${method} ${path}: ${N} events`)
    t.ok(got.every((data, i) => data === String(i + 1)), `${method} ${path}: each once, in order (${seen.length} requests, ${drops} random drops)`)
    t.ok(drops > 20, `the server dropped it ${drops} times`)
    t.same(await stream.closed, { reason: 'end' })
  }
})

// Stale connections (an idle timeout derived from the heartbeat the server advertises in-band,
// reset by any byte) and the opt-in page lifecycle, with fake window and document event targets.
import t from 'tap'
import type { FastifyReply } from 'fastify'
import { connect, SseTimeoutError, type RetryInfo } from '../../lib/client/index.js'
import { deferred, within } from '../helpers/http.js'
import { startApp, fakeClock, take } from '../helpers/client.js'

/** A route that sends `events`, then holds the stream open until the client leaves. */
function sendAndHold (reply: FastifyReply, events: object[], left?: () => void) {
  return reply.sse(async function * ({ signal }) {
    yield * events
    await new Promise((resolve) => signal.addEventListener('abort', resolve))
    left?.()
  })
}

t.test('idle timeout', async (t) => {
  t.test("2.5 × the advertised heartbeat; on expiry the client aborts and resumes with Last-Event-ID", async (t) => {
    const ids: Array<string | undefined> = []
    const { url } = await startApp(t, (app) => {
      app.get('/quiet', (req, reply) => {
        ids.push(req.lastEventId)
        if (ids.length > 1) return reply.sse([{ id: '2', event: 'end', data: '' }])
        // What the plugin will send when heartbeats are on: `: heartbeat=<ms>` first.
        return sendAndHold(reply, [{ comment: 'heartbeat=200' }, { id: '1', data: 'a' }])
      })
    })
    const clock = fakeClock()
    const retries: RetryInfo[] = []
    const stream = connect(`${url}/quiet`, { timers: clock.timers, retryDelay: 5, jitter: false, terminalEvent: 'end', onRetry: (r) => retries.push(r) })
    const iterator = stream[Symbol.asyncIterator]()
    t.match(await iterator.next(), { value: { data: 'a' } })
    const next = iterator.next()
    t.equal(await clock.nextTimer(), 500, 'the read waits at most 2.5 × 200 ms')
    t.equal(await clock.fire(), 500)
    t.equal(await clock.fire(), 5, 'then the backoff')
    t.match(await next, { value: { event: 'end', id: '2' } })
    t.ok(retries[0]!.error instanceof SseTimeoutError)
    t.equal((retries[0]!.error as SseTimeoutError).timeout, 500)
    t.same(ids, [undefined, '1'])
  })

  t.test("the plugin's own advertisement: 2.5 × its default 15 s heartbeat", async (t) => {
    const { url } = await startApp(t, (app) => {
      app.get('/hold', (_req, reply) => sendAndHold(reply, [{ data: 'a' }]))
    })
    const clock = fakeClock()
    const stream = connect(`${url}/hold`, { timers: clock.timers })
    const iterator = stream[Symbol.asyncIterator]()
    await iterator.next()
    const next = iterator.next()
    await new Promise((resolve) => setImmediate(resolve))
    t.same(clock.pending(), [37500])
    stream.close()
    t.same(await next, { value: undefined, done: true })
  })

  t.test('45 s when nothing is advertised; a number sets it; 0 turns it off', async (t) => {
    // Heartbeats off: the plugin advertises nothing.
    const { url } = await startApp(t, (app) => {
      app.get('/hold', (_req, reply) => sendAndHold(reply, [{ data: 'a' }]))
    }, { heartbeat: false })
    for (const [idleTimeout, expected] of [[undefined, [45000]], [1234, [1234]], [0, []]] as const) {
      const clock = fakeClock()
      const stream = connect(`${url}/hold`, { timers: clock.timers, ...(idleTimeout === undefined ? {} : { idleTimeout }) })
      const iterator = stream[Symbol.asyncIterator]()
      await iterator.next()
      const next = iterator.next()
      // The read is pending once the fetch's head came in; a tick lets it start.
      await new Promise((resolve) => setImmediate(resolve))
      t.same(clock.pending(), expected, `idleTimeout ${idleTimeout}`)
      stream.close()
      t.same(await next, { value: undefined, done: true })
    }
  })

  t.test('the wait for the response head is bounded too', async (t) => {
    const { url } = await startApp(t, (app) => {
      app.get('/slow', () => new Promise(() => {}))
    })
    const clock = fakeClock()
    const stream = connect(`${url}/slow`, { timers: clock.timers, idleTimeout: 300, maxRetries: 0 })
    t.equal(await clock.fire(), 300)
    const { reason, error } = await stream.closed
    t.equal(reason, 'gave-up')
    t.ok(error instanceof SseTimeoutError)
  })

  t.test('any byte resets it: comments alone keep the stream alive', async (t) => {
    const release = deferred()
    let calls = 0
    const { url } = await startApp(t, (app) => {
      app.get('/beats', (_req, reply) => {
        calls++
        return reply.sse(async function * () {
          await release.promise
          yield { event: 'end', data: 'x' }
        }, { heartbeat: 50 })
      })
    })
    let beats = 0
    // Margins for a loaded machine: a heartbeat every 50 ms against an idle timeout of 400 ms.
    const stream = connect(`${url}/beats`, {
      idleTimeout: 400,
      terminalEvent: 'end',
      // Count heartbeats as they arrive, by wrapping the body.
      fetch: async (request) => {
        const response = await fetch(request)
        const body = response.body!.pipeThrough(new TransformStream({
          transform (chunk, controller) {
            if (new TextDecoder().decode(chunk).startsWith(':') && ++beats === 30) release.resolve()
            controller.enqueue(chunk)
          }
        }))
        return new Response(body, response)
      }
    })
    const got = await within(take(stream), 10_000, 'the end event')
    t.same(got.map((e) => e.data), ['x'])
    t.ok(beats >= 30, `${beats} heartbeats over ≥ 1.5 s, more than three idle timeouts`)
    t.equal(calls, 1, 'no reconnect')
  })
})

t.test('page lifecycle', async (t) => {
  type FakeDocument = EventTarget & { visibilityState: string }
  const page = () => {
    const window = new EventTarget()
    const document = Object.assign(new EventTarget(), { visibilityState: 'visible' }) as FakeDocument
    const show = (state: string) => { document.visibilityState = state; document.dispatchEvent(new Event('visibilitychange')) }
    return { window, document, show }
  }

  for (const [what, trigger] of [
    ['online', (p: ReturnType<typeof page>) => p.window.dispatchEvent(new Event('online'))],
    ['pageshow', (p: ReturnType<typeof page>) => p.window.dispatchEvent(new Event('pageshow'))],
    ['visible', (p: ReturnType<typeof page>) => p.show('visible')],
    ['resume', (p: ReturnType<typeof page>) => p.document.dispatchEvent(new Event('resume'))]
  ] as const) {
    t.test(`${what} skips a pending backoff`, async (t) => {
      let calls = 0
      const { url } = await startApp(t, (app) => {
        app.get('/s', (_req, reply) => (++calls === 1 ? reply.code(503).send() : reply.sse([{ event: 'end', data: 'back' }])))
      })
      const clock = fakeClock()
      const p = page()
      const stream = connect(`${url}/s`, { timers: clock.timers, idleTimeout: 0, jitter: false, retryDelay: 20_000, terminalEvent: 'end', lifecycle: p })
      t.equal(await clock.nextTimer(), 20_000)
      trigger(p)
      t.same((await take(stream)).map((e) => e.data), ['back'])
      t.same(clock.pending(), [], 'the backoff timer was cleared')
    })
  }

  t.test('offline parks retries until online, without counting failures', async (t) => {
    let calls = 0
    const { url } = await startApp(t, (app) => {
      app.get('/s', (_req, reply) => (++calls < 3 ? reply.code(503).send() : reply.sse([{ event: 'end', data: 'back' }])))
    })
    const clock = fakeClock()
    const p = page()
    const retries: RetryInfo[] = []
    const stream = connect(`${url}/s`, { timers: clock.timers, idleTimeout: 0, jitter: false, terminalEvent: 'end', lifecycle: p, onRetry: (r) => retries.push(r) })
    await clock.nextTimer()
    p.window.dispatchEvent(new Event('offline'))
    t.equal(await clock.fire(), 1000, 'the timer fires, but offline: no request')
    p.show('visible')
    t.equal(calls, 1, 'visible does not reconnect while offline')
    p.window.dispatchEvent(new Event('online'))
    t.equal(await clock.fire(), 2000, 'online: the parked retry went out, and failed')
    p.window.dispatchEvent(new Event('offline'))
    // A failure while offline parks at once, with no timer and no count.
    const taken = take(stream)
    p.window.dispatchEvent(new Event('online'))
    t.same((await taken).map((e) => e.data), ['back'])
    t.same(retries.map((r) => r.attempt), [1, 2])
  })

  t.test('hidden: the stream stays open by default', async (t) => {
    const left = deferred()
    const { url } = await startApp(t, (app) => {
      app.get('/s', (_req, reply) => sendAndHold(reply, [{ id: '1', data: 'a' }], left.resolve))
    })
    const clock = fakeClock()
    const p = page()
    const stream = connect(`${url}/s`, { timers: clock.timers, idleTimeout: 0, lifecycle: p })
    await take(stream, 1)
    p.show('hidden')
    t.same(clock.pending(), [])
    t.equal(stream.state, 'open')
    stream.close()
    await within(left.promise, 5000, 'the route to see its client leave')
  })

  t.test('hiddenTimeout: paused while hidden, resumed with Last-Event-ID when shown', async (t) => {
    const ids: Array<string | undefined> = []
    const left = deferred()
    const { url } = await startApp(t, (app) => {
      app.get('/s', (req, reply) => {
        ids.push(req.lastEventId)
        if (ids.length === 1) return sendAndHold(reply, [{ id: '1', data: 'a' }], left.resolve)
        return reply.sse([{ id: '2', event: 'end', data: 'b' }])
      })
    })
    const clock = fakeClock()
    const p = page()
    const stream = connect(`${url}/s`, { timers: clock.timers, idleTimeout: 0, terminalEvent: 'end', lifecycle: { ...p, hiddenTimeout: 5000 } })
    const iterator = stream[Symbol.asyncIterator]()
    t.match(await iterator.next(), { value: { data: 'a' } })
    const next = iterator.next()
    p.show('hidden')
    p.show('hidden')
    t.same(clock.pending(), [5000], 'one grace timer')
    await clock.fire()
    await within(left.promise, 5000, 'the connection to close')
    t.equal(ids.length, 1, 'no reconnect while hidden')
    p.show('visible')
    t.match(await next, { value: { data: 'b', id: '2' } })
    t.same(ids, [undefined, '1'])
  })

  t.test('hiddenTimeout never pauses a stream that could not be resumed', async (t) => {
    const { url } = await startApp(t, (app) => {
      app.post('/s', (_req, reply) => sendAndHold(reply, [{ data: 'a' }]))
    })
    const clock = fakeClock()
    const p = page()
    const stream = connect(`${url}/s`, { method: 'POST', timers: clock.timers, idleTimeout: 0, lifecycle: { ...p, hiddenTimeout: 0 } })
    await take(stream, 1)
    p.show('hidden')
    await clock.fire()
    t.equal(stream.state, 'open')
    stream.close()
  })

  t.test('lifecycle: true uses the global window and document, and close() removes the listeners', async (t) => {
    const p = page()
    const g = globalThis as { window?: EventTarget, document?: EventTarget }
    g.window = p.window
    g.document = p.document
    t.teardown(() => { delete g.window; delete g.document })
    let calls = 0
    const { url } = await startApp(t, (app) => {
      app.get('/s', (_req, reply) => (++calls === 1 ? reply.code(503).send() : reply.sse([{ event: 'end', data: 'back' }])))
    })
    const clock = fakeClock()
    const stream = connect(`${url}/s`, { timers: clock.timers, idleTimeout: 0, terminalEvent: 'end', lifecycle: true })
    await clock.nextTimer()
    p.window.dispatchEvent(new Event('online'))
    t.same((await take(stream)).map((e) => e.data), ['back'])
    p.show('hidden')
    p.window.dispatchEvent(new Event('offline'))
    t.same(clock.pending(), [], 'nothing listens any more')
  })
})

// Reconnect policy, stepped with an injected clock and random source: exponential backoff from
// the server's `retry:`, full jitter, a cap, maxRetries, a total timeout, and a failure counter
// that only a delivered event resets. The network I/O is real; only time is faked.
import t from 'tap'
import { connect, SseHttpError, type RetryInfo } from '../../lib/client/index.js'
import { startApp, fakeClock, take } from '../helpers/client.js'

t.test('full jitter, the cap and maxRetries', async (t) => {
  let calls = 0
  const { url } = await startApp(t, (app) => {
    app.get('/down', (_req, reply) => { calls++; return reply.code(503).send() })
  })
  for (const jitter of [true, false]) {
    calls = 0
    const clock = fakeClock()
    const retries: RetryInfo[] = []
    const stream = connect(`${url}/down`, {
      timers: clock.timers,
      random: () => 0.5,
      jitter,
      idleTimeout: 0,
      maxRetryDelay: 5000,
      maxRetries: 5,
      onRetry: (info) => retries.push(info)
    })
    const delays: number[] = []
    for (let i = 0; i < 5; i++) delays.push(await clock.fire())
    const { reason, error } = await stream.closed
    t.equal(reason, 'gave-up')
    t.ok(error instanceof SseHttpError && error.status === 503)
    t.same(delays, jitter ? [500, 1000, 2000, 2500, 2500] : [1000, 2000, 4000, 5000, 5000], `jitter ${jitter}`)
    t.same(retries.map((r) => r.attempt), [1, 2, 3, 4, 5])
    t.same(retries.map((r) => r.delay), delays)
    t.equal(calls, 6, 'the first request and five retries')
    t.same(clock.pending(), [])
  }
})

t.test("the server's retry: is the base, and only a delivered event resets the counter", async (t) => {
  // Empty streams (200 then the end) do not reset the counter; a stream with an event does.
  const script = ['empty', 'empty', 'event', 'empty', 'over']
  let calls = 0
  const { url } = await startApp(t, (app) => {
    app.get('/flaky', (_req, reply) => {
      const step = script[calls++]
      if (step === 'over') return reply.code(204).send()
      if (step === 'event') return reply.sse([{ retry: 300, data: 'hello' }])
      return reply.sse([])
    })
  })
  const clock = fakeClock()
  const stream = connect(`${url}/flaky`, { timers: clock.timers, jitter: false, idleTimeout: 0 })
  const got = take(stream)
  const delays = [await clock.fire(), await clock.fire(), await clock.fire(), await clock.fire()]
  t.same((await got).map((e) => e.data), ['hello'])
  t.same(delays, [1000, 2000, 300, 600], 'doubling on empty streams; back to retry: after the event')
  t.same(await stream.closed, { reason: 'end' })
})

t.test('totalTimeout gives up before a wait that would pass it', async (t) => {
  const { url } = await startApp(t, (app) => {
    app.get('/down', (_req, reply) => reply.code(500).send())
  })
  const clock = fakeClock()
  const stream = connect(`${url}/down`, { timers: clock.timers, jitter: false, idleTimeout: 0, totalTimeout: 2500 })
  t.equal(await clock.fire(), 1000)
  const { reason, error } = await stream.closed
  t.equal(reason, 'gave-up', 'a second wait of 2000 ms would end at 3000 ms')
  t.match(error, { status: 500 })
  t.same(clock.pending(), [])
})

t.test('shouldRetry: a number replaces the delay, false stops, a throw stops with its error', async (t) => {
  const { url } = await startApp(t, (app) => {
    app.get('/down', (_req, reply) => reply.code(502).send())
  })
  const clock = fakeClock()
  const seen: Array<{ attempt: number, delay: number }> = []
  const stream = connect(`${url}/down`, {
    timers: clock.timers,
    random: () => 0,
    idleTimeout: 0,
    shouldRetry: async (_error, info) => { seen.push(info); return info.attempt === 1 ? 1234 : false }
  })
  t.equal(await clock.fire(), 1234)
  const { reason, error } = await stream.closed
  t.equal(reason, 'fatal')
  t.match(error, { status: 502 })
  t.same(seen, [{ attempt: 1, delay: 0 }, { attempt: 2, delay: 0 }])

  const boom = new Error('stop here')
  const thrown = connect(`${url}/down`, { idleTimeout: 0, shouldRetry: () => { throw boom } })
  t.same(await thrown.closed, { reason: 'fatal', error: boom })
})

t.test('close() during a backoff wait ends it at once and clears the timer', async (t) => {
  const { url } = await startApp(t, (app) => {
    app.get('/down', (_req, reply) => reply.code(503).send())
  })
  const clock = fakeClock()
  const stream = connect(`${url}/down`, { timers: clock.timers, idleTimeout: 0 })
  await clock.nextTimer()
  t.equal(stream.state, 'reconnecting')
  stream.close()
  t.same(await stream.closed, { reason: 'abort' })
  t.same(clock.pending(), [])
})

t.test('close() while shouldRetry decides: no retry follows', async (t) => {
  let calls = 0
  const { url } = await startApp(t, (app) => {
    app.get('/down', (_req, reply) => { calls++; return reply.code(503).send() })
  })
  const clock = fakeClock()
  const stream = connect(`${url}/down`, {
    timers: clock.timers,
    idleTimeout: 0,
    shouldRetry: () => { stream.close(); return true }
  })
  t.same(await stream.closed, { reason: 'abort' })
  t.same(clock.pending(), [])
  t.equal(calls, 1)
})

t.test("a callback's error is reported as an unhandled rejection and changes nothing", async (t) => {
  const { url } = await startApp(t, (app) => {
    app.get('/x', (_req, reply) => reply.sse([{ data: 'x' }]))
  })
  const boom = new Error('callback bug')
  const reported = new Promise<unknown>((resolve) => {
    const listeners = process.listeners('unhandledRejection')
    process.removeAllListeners('unhandledRejection')
    process.once('unhandledRejection', (reason) => {
      for (const listener of listeners) process.on('unhandledRejection', listener)
      resolve(reason)
    })
  })
  const stream = connect(`${url}/x`, { onEnd: 'stop', onOpen: () => { throw boom } })
  t.same((await take(stream)).map((e) => e.data), ['x'])
  t.equal(await reported, boom)
})

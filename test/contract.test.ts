// Points of the issue-3 contract that no other file proves: the named export, setNoDelay, the
// drain wait racing the response's error, shutdown corner cases (a client leaving in the grace
// period, a sink's farewell, a stalled client, HTTP/2), the promise of reply.sse() for every
// reason, sink ordering against heartbeats, heartbeat backpressure and unref, the default write
// deadline, and the reqId on error logs. Real servers on 127.0.0.1:0, real clients, no mocks.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import http2 from 'node:http2'
import { createHook } from 'node:async_hooks'
import { once } from 'node:events'
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import sse, { fastifySSE, type SseSink } from '../index.js'
import { DEFAULTS } from '../lib/options.js'
import { build, deferred, isEnd, listen, logCollector, inDefaultShutdownWindow, open, silentClient, splitShutdownRetry } from './helpers/stream.js'
import { listen as listenAny, within } from './helpers/http.js'

const KiB64 = 'x'.repeat(64 * 1024)

/** Starts reading a raw socket (a silent client that wakes up); waits for its text to match. */
function readAll (socket: Socket): { waitFor: (pred: (text: string) => boolean, ms?: number) => Promise<string> } {
  let text = ''
  const waiters = new Set<() => void>()
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => { text += chunk; for (const w of waiters) w() })
  socket.resume()
  return {
    waitFor (pred, ms = 3000) {
      return within(new Promise<string>((resolve) => {
        const check = (): void => { if (pred(text)) { waiters.delete(check); resolve(text) } }
        waiters.add(check)
        check()
      }), ms, 'the silent client to read what it expects')
    }
  }
}

/**
 * Resolves once the response is backpressured and the source has not been pulled for three polls
 * in a row: the kernel's buffers are full and the source waits on 'drain'. A bounded poll, since
 * "no drain comes any more" is not an event.
 */
/** Whether the stream waits for a drain: frames go to the socket itself on HTTP/1.1. */
function full (res: ServerResponse): boolean {
  return res.writableNeedDrain || res.socket?.writableNeedDrain === true
}

async function stuck (res: ServerResponse, pulled: () => number): Promise<void> {
  let last = -1
  let steady = 0
  for (let i = 0; i < 250; i++) {
    // A short write deadline may have cut it already: what a caller waiting for a stall wants.
    if (res.destroyed) return
    const now = pulled()
    steady = full(res) && now === last ? steady + 1 : 0
    if (steady >= 3) return
    last = now
    await delay(20)
  }
  throw new Error(`the socket never filled (pulled ${pulled()}, needDrain ${String(full(res))})`)
}

/** An app (not built by the helper) whose teardown first runs `before`, then closes the app. */
function appWithTeardown (t: Test, app: FastifyInstance, before: () => void): void {
  t.teardown(async () => {
    before()
    await app.close()
  })
}

t.test('1. the named export fastifySSE is the default export and works when registered', async (t) => {
  t.equal(fastifySSE, sse, 'the very same plugin function')
  t.equal((fastifySSE as unknown as Record<symbol, unknown>)[Symbol.for('skip-override')], true, 'a fastify-plugin plugin')
  t.equal((fastifySSE as unknown as Record<symbol, unknown>)[Symbol.for('fastify.display-name')], 'fastify-sse-stream')
  const logs = logCollector()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  t.teardown(() => app.close())
  await app.register(fastifySSE, { heartbeat: false })
  t.ok(app.hasReplyDecorator('sse') && app.hasReplyDecorator('sseSink'), 'reply decorators added')
  app.get('/', (_req, reply) => reply.sse([{ id: 1, data: 'named' }]))
  const client = await open(await listen(app) + '/')
  await client.closed
  t.equal(client.text, 'id: 1\ndata: named\n\n')
  t.equal((await logs.waitFor(isEnd)).sse.reason, 'done')
})

t.test('2. reply.sse() disables Nagle on the socket (setNoDelay(true))', async (t) => {
  // A socket does not expose its Nagle state publicly. Node keeps the last setNoDelay() value under
  // the internal symbol kSetNoDelay (seen with Object.getOwnPropertySymbols), which this reads.
  // The server is made with http.noDelay false (Node's default is true since v16.5, which would
  // make the check unable to fail), so the flag is false when the request arrives.
  const logs = logCollector()
  const app = Fastify({ http: { noDelay: false }, logger: { level: 'info', stream: logs.stream } })
  t.teardown(() => app.close())
  await app.register(sse, { heartbeat: false })
  const seen: Record<string, { before: unknown, after: unknown, found: boolean }> = {}
  const flag = (socket: Socket): { found: boolean, value: unknown } => {
    const k = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'kSetNoDelay')
    return { found: k !== undefined, value: k === undefined ? undefined : (socket as unknown as Record<symbol, unknown>)[k] }
  }
  app.get('/sse', (req, reply) => {
    const before = flag(req.raw.socket).value
    const done = reply.sse([{ data: 'x' }])
    const after = flag(req.raw.socket)
    seen.sse = { before, after: after.value, found: after.found }
    return done
  })
  app.get('/plain', (req, reply) => {
    const before = flag(req.raw.socket).value
    reply.send('plain')
    const after = flag(req.raw.socket)
    seen.plain = { before, after: after.value, found: after.found }
  })
  const base = await listen(app)
  const a = await open(base + '/sse')
  await a.closed
  const b = await open(base + '/plain')
  await b.closed
  t.ok(seen.sse.found, 'the kSetNoDelay symbol is there to read')
  t.equal(seen.sse.before, false, 'Nagle on when the request arrives')
  t.equal(seen.sse.after, true, 'Nagle off once reply.sse() opened the stream')
  t.same(seen.plain, { before: false, after: false, found: true }, 'control: an ordinary reply leaves it alone')
})

t.test('3. a source blocked on a full socket is released when the response errors', async (t) => {
  for (const how of ['destroy', 'error'] as const) {
    t.test(how === 'destroy' ? 'reply.raw.destroy(err)' : "an 'error' event on the response alone", async (t) => {
      const logs = logCollector()
      const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
      await app.register(sse, { heartbeat: false, writeTimeout: false })
      const finished = deferred()
      const outcome = deferred<{ ok: boolean, value: unknown }>()
      const opened = deferred<ServerResponse>()
      let pulled = 0
      app.get('/', (_req, reply) => {
        opened.resolve(reply.raw)
        reply.sse(function * () {
          try {
            while (true) { pulled++; yield { data: KiB64 } }
          } finally { finished.resolve() }
        }).then((value) => outcome.resolve({ ok: true, value }), (value) => outcome.resolve({ ok: false, value }))
      })
      const client = await silentClient(await listen(app) + '/')
      appWithTeardown(t, app, () => client.destroy())
      const res = await opened.promise
      await stuck(res, () => pulled)
      const at = pulled
      if (how === 'destroy') {
        // Node 20 emits 'error' on the socket and 'close' on the response for this.
        res.destroy(new Error('x'))
      } else {
        // A ServerResponse emits 'error' on its own only for a write after end, which a stream
        // never does while it waits on 'drain'. The event is emitted by hand to prove that the
        // 'error' listener alone ends the wait: the socket is still up, no 'close' has come.
        t.notOk(res.destroyed, 'the response is still open')
        res.emit('error', new Error('x'))
      }
      t.same(await within(outcome.promise, 2000, 'reply.sse() to settle'), { ok: true, value: undefined }, 'settles, never rejects')
      await within(finished.promise, 2000, "the source's finally")
      t.equal(pulled, at, 'not pulled after the error')
      t.equal((await logs.waitFor(isEnd)).sse.reason, 'client-closed')
    })
  }
})

t.test('4. a client leaving in the shutdown grace period: reason shutdown, source released, close prompt', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, shutdownGrace: 5000 })
  const aborted = deferred<string>()
  const finished = deferred()
  const outcome = deferred<unknown>()
  app.get('/', (_req, reply) => {
    reply.sse(async function * ({ signal }) {
      try {
        yield { data: 'hello' }
        await once(signal, 'abort').catch(() => {})
        aborted.resolve((signal.reason as Error).message)
        // It ignores the signal and carries on, slowly: only the client leaving stops it now.
        for (let i = 0; i < 1000; i++) {
          yield { data: `more ${i}` }
          await delay(10)
        }
      } finally { finished.resolve() }
    }).then(outcome.resolve, outcome.resolve)
  })
  const client = await open(await listen(app) + '/')
  await client.waitFor('data: hello\n\n')
  const t0 = performance.now()
  const closing = app.close()
  t.equal(await within(aborted.promise, 1000, 'the signal to abort'), 'The SSE stream ended: shutdown')
  await client.waitFor('data: more 0\n\n')
  client.destroy()
  await within(finished.promise, 1000, 'the source to be released')
  t.equal(await within(outcome.promise, 1000, 'reply.sse() to settle'), undefined, 'settles with undefined')
  await within(closing, 2000, 'app.close()')
  const took = performance.now() - t0
  t.ok(took < 2000, `app.close() took ${Math.round(took)} ms of a 5000 ms grace`)
  const ends = logs.lines.filter(isEnd)
  t.equal(ends.length, 1, 'one end line')
  t.equal(ends[0].sse.reason, 'shutdown', 'the reason stays shutdown though the client left')
})

t.test('5. the reply.sse() promise settles, never rejects, for stalled, shutdown, done, error and client-closed', async (t) => {
  t.test('stalled', async (t) => {
    const logs = logCollector()
    const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
    await app.register(sse, { heartbeat: false, writeTimeout: 100 })
    const outcome = deferred<{ ok: boolean, value: unknown }>()
    app.get('/', (_req, reply) => {
      reply.sse(function * () { while (true) yield { data: KiB64 } })
        .then((value) => outcome.resolve({ ok: true, value }), (value) => outcome.resolve({ ok: false, value }))
    })
    const client = await silentClient(await listen(app) + '/')
    appWithTeardown(t, app, () => client.destroy())
    t.same(await within(outcome.promise, 3000, 'reply.sse() to settle'), { ok: true, value: undefined })
    t.equal((await logs.waitFor(isEnd)).sse.reason, 'stalled')
  })

  t.test('shutdown', async (t) => {
    const { app, logs } = await build(t, { heartbeat: false, shutdownGrace: 50 })
    const outcome = deferred<{ ok: boolean, value: unknown }>()
    app.get('/', (_req, reply) => {
      reply.sse(async function * ({ signal }) {
        yield { data: 'hi' }
        // Rejects with the abort reason: the source fails during shutdown, the promise must not.
        await once(signal, 'abort')
      }).then((value) => outcome.resolve({ ok: true, value }), (value) => outcome.resolve({ ok: false, value }))
    })
    const client = await open(await listen(app) + '/')
    await client.waitFor('data: hi\n\n')
    await within(app.close(), 2000, 'app.close()')
    t.same(await within(outcome.promise, 1000, 'reply.sse() to settle'), { ok: true, value: undefined })
    t.equal((await logs.waitFor(isEnd)).sse.reason, 'shutdown')
  })

  t.test('done, error (a generator that throws mid-stream) and client-closed', async (t) => {
    const { app, logs } = await build(t, { heartbeat: false })
    const outcomes = new Map<string, ReturnType<typeof deferred<{ ok: boolean, value: unknown }>>>()
    const sources: Record<string, () => AsyncGenerator<{ data: string }>> = {
      done: async function * () { yield { data: 'hi' } },
      error: async function * () { yield { data: 'hi' }; throw new Error('mid-stream') },
      'client-closed': async function * () { yield { data: 'hi' }; await new Promise(() => {}) }
    }
    for (const [reason, source] of Object.entries(sources)) {
      const outcome = deferred<{ ok: boolean, value: unknown }>()
      outcomes.set(reason, outcome)
      app.get('/' + reason, (_req, reply) => {
        reply.sse(source()).then((value) => outcome.resolve({ ok: true, value }), (value) => outcome.resolve({ ok: false, value }))
      })
    }
    const url = await listen(app)
    for (const reason of Object.keys(sources)) {
      const client = await open(url + '/' + reason)
      await client.waitFor('data: hi\n\n')
      if (reason === 'client-closed') client.destroy()
      t.same(await within(outcomes.get(reason)!.promise, 2000, `reply.sse() to settle (${reason})`), { ok: true, value: undefined }, reason)
      // The end line is logged before the promise settles.
      t.equal(logs.lines.filter(isEnd).at(-1)?.sse.reason, reason)
      await client.closed
    }
  })
})

t.test('6. sink events sent without awaiting arrive whole and in order; heartbeats only between frames', async (t) => {
  const { app, logs } = await build(t, { heartbeat: 5, writeTimeout: false })
  const ready = deferred<SseSink>()
  app.get('/', (_req, reply) => {
    ready.resolve(reply.sseSink())
    return reply
  })
  const client = await open(await listen(app) + '/')
  const sink = await ready.promise
  const res = client.res
  // A slow reader, while `slow` is on: after every 16th chunk it stops reading for 15 ms (three
  // heartbeat intervals), so the server sits on a full socket with events queued for longer than
  // the heartbeat interval. The frames (64 KiB each, 6.5 MB a burst) outgrow the loopback buffers
  // (about 4 MB here), so the sink holds events through most of each burst.
  let slow = false
  let chunks = 0
  // Looks for a needle in the last 256 KiB received only: the body grows to 20 MB.
  let recent = ''
  const waiters = new Set<() => void>()
  res.on('data', (chunk: string) => {
    recent = (recent + chunk).slice(-256 * 1024)
    for (const w of waiters) w()
    if (!slow || ++chunks % 16 !== 0) return
    res.pause()
    setTimeout(() => res.resume(), 15)
  })
  const arrived = (needle: string): Promise<void> => within(new Promise<void>((resolve) => {
    const check = (): void => {
      if (recent.includes(needle)) { waiters.delete(check); resolve() }
    }
    waiters.add(check)
    check()
  }), 5000, JSON.stringify(needle.slice(0, 20)))
  const N = 300
  const BURSTS = 3
  const PER = N / BURSTS
  const payload = (i: number): string => `${i}:` + 'x'.repeat(64 * 1024)
  const sends: Array<Promise<boolean>> = []
  let queuedMax = 0
  for (let b = 0; b < BURSTS; b++) {
    // The client stops reading while a burst is sent, so the socket fills and the sink queues.
    res.pause()
    slow = true
    for (let i = b * PER; i < (b + 1) * PER; i++) sends.push(sink.send({ id: i, data: payload(i) }))
    queuedMax = Math.max(queuedMax, sink.pending)
    res.resume()
    // The burst arrives whole, then the stream idles: a heartbeat follows before the next burst.
    const lastOfBurst = (b + 1) * PER - 1
    await arrived(`id: ${lastOfBurst}\ndata: ${payload(lastOfBurst)}\n\n: ping\n`)
    slow = false
  }
  t.ok(queuedMax > 0, `the sink queued behind a full socket (up to ${queuedMax} events)`)
  t.same(await Promise.all(sends), Array(N).fill(true), 'every send() resolved true')
  sink.end()
  await within(client.closed, 2000, 'the stream to end')
  // Walk the body: the advertised interval first, then only whole frames, in order, and
  // heartbeat lines between them.
  const text = client.text
  t.equal(text.slice(0, 14), ': heartbeat=5\n', 'the stream opens with the advertised interval')
  let pos = 14
  let next = 0
  let pings = 0
  let pingsBetween = 0
  const pingedAt = new Set<number>()
  for (let steps = 0; pos < text.length && steps < 1000 * N; steps++) {
    if (text.startsWith(': ping\n', pos)) {
      pos += 7
      pings++
      pingedAt.add(next)
      if (next > 0 && next < N) pingsBetween++
      continue
    }
    const frame = `id: ${next}\ndata: ${payload(next)}\n\n`
    if (!text.startsWith(frame, pos)) break
    pos += frame.length
    next++
  }
  t.equal(pos, text.length, `the body parses whole (stopped at ${pos}: ${JSON.stringify(text.slice(pos, pos + 40))})`)
  t.equal(next, N, 'every event, in order')
  t.ok(pingsBetween >= BURSTS - 1, `heartbeats went out between frames (${pingsBetween} of ${pings})`)
  // Within a burst every event is queued before the first drain: a heartbeat there would have gone
  // out while the sink still held events. They may only sit where the sink was empty.
  const boundaries = Array.from({ length: BURSTS + 1 }, (_v, b) => b * PER)
  t.same([...pingedAt].filter((at) => !boundaries.includes(at)), [], `heartbeats only at burst boundaries (before ids ${JSON.stringify([...pingedAt])})`)
  const end = await logs.waitFor(isEnd)
  t.equal(end.sse.reason, 'ended')
  t.equal(end.sse.events, N)
})

t.test('7. heartbeat', async (t) => {
  t.test('is never written into a backpressured socket', async (t) => {
    // The client reads nothing for 500 ms (5 heartbeat intervals) while the socket is full. Had
    // a heartbeat been written then, it would sit in the byte stream before the frames that were
    // still waiting on 'drain'. Once the client reads, the stream idles and heartbeats resume,
    // which shows they were on all along. (100 ms, not less: while the socket fills, a loaded
    // machine can leave that long between two frames, and a heartbeat there is legitimate.)
    const logs = logCollector()
    const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
    await app.register(sse, { heartbeat: 100, writeTimeout: false })
    const opened = deferred<ServerResponse>()
    let pulled = 0
    let stop = false
    app.get('/', (_req, reply) => {
      opened.resolve(reply.raw)
      return reply.sse(async function * ({ signal }) {
        while (!stop) { pulled++; yield { data: KiB64 } }
        yield { event: 'last' }
        await once(signal, 'abort').catch(() => {})
      })
    })
    const client = await silentClient(await listen(app) + '/')
    appWithTeardown(t, app, () => client.destroy())
    const res = await opened.promise
    await stuck(res, () => pulled)
    const t0 = performance.now()
    await delay(500) // the property is an absence over time: this window is what is measured
    t.ok(full(res), `still backpressured after ${Math.round(performance.now() - t0)} ms`)
    stop = true
    const reader = readAll(client)
    const text = await reader.waitFor((s) => /event: last\ndata: \n\n[\s\S]*: ping\n/.test(s))
    const last = text.indexOf('event: last\n')
    t.equal(text.slice(0, last).indexOf(': ping'), -1, 'no heartbeat before the last frame')
    t.ok(pulled > 4, `the socket took ${pulled} frames of 64 KiB first`)
  })

  t.test('its timer is unref\'d: an idle stream adds no ref\'d Timeout', async (t) => {
    // Verified first in a scratch script: process.getActiveResourcesInfo() lists a ref'd Timeout
    // and omits an unref'd one, also after refresh().
    const timeouts = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    const { app } = await build(t, { heartbeat: 30, writeTimeout: false })
    app.get('/', (_req, reply) => reply.sse(async function * ({ signal }) {
      yield { data: 'a' }
      await once(signal, 'abort').catch(() => {})
    }))
    const base = await listen(app)
    const before = timeouts()
    const control = setTimeout(() => {}, 60_000)
    t.equal(timeouts(), before + 1, 'control: a ref\'d timer is counted')
    clearTimeout(control)
    const client = await open(base + '/')
    // Two heartbeats: the timer was armed, fired, and was re-armed (refresh()) at least once.
    await client.waitFor('data: a\n\n: ping\n: ping\n')
    t.equal(timeouts(), before, 'the heartbeat timer does not count as a ref\'d Timeout')
    client.destroy()
    await client.closed
  })
})

t.test('8. the default writeTimeout is 30 s', async (t) => {
  t.equal(DEFAULTS.writeTimeout, 30_000, 'DEFAULTS.writeTimeout')

  /**
   * Fills the socket of a silent client and records the delay of every timer created meanwhile
   * (async_hooks sees each Timeout as it is made; `_idleTimeout` is its delay, a Node internal).
   */
  async function fill (t: Test, options: { writeTimeout?: number | false }): Promise<{ delays: number[], ends: () => Array<Record<string, any>> }> {
    const logs = logCollector()
    const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
    await app.register(sse, { heartbeat: false, ...options })
    const opened = deferred<ServerResponse>()
    let pulled = 0
    app.get('/', (_req, reply) => {
      opened.resolve(reply.raw)
      return reply.sse(function * () { while (true) { pulled++; yield { data: KiB64 } } })
    })
    const delays: number[] = []
    const hook = createHook({
      init (_id, type, _trigger, resource) {
        if (type === 'Timeout') delays.push((resource as { _idleTimeout: number })._idleTimeout)
      }
    })
    const client = await silentClient(await listen(app) + '/')
    appWithTeardown(t, app, () => { hook.disable(); client.destroy() })
    hook.enable()
    const res = await opened.promise
    await stuck(res, () => pulled)
    hook.disable()
    return { delays, ends: () => logs.lines.filter(isEnd) }
  }

  t.test('without the option: a 30 s deadline is armed, and the stream outlives 300 ms full', async (t) => {
    const { delays, ends } = await fill(t, {})
    t.ok(delays.includes(30_000), `a 30000 ms timer was armed when the socket filled (${JSON.stringify([...new Set(delays)])})`)
    await delay(300) // an absence over time: no 'stalled' end within this window
    t.same(ends(), [], 'still open, not stalled')
  })

  t.test('control: writeTimeout: false arms no such timer', async (t) => {
    const { delays } = await fill(t, { writeTimeout: false })
    t.notOk(delays.includes(30_000), `no 30000 ms timer (${JSON.stringify([...new Set(delays)])})`)
  })

  t.test('a shorter writeTimeout cuts the stalled stream', async (t) => {
    const { ends } = await fill(t, { writeTimeout: 100 })
    for (let i = 0; i < 100 && ends().length === 0; i++) await delay(10)
    t.equal(ends()[0]?.sse.reason, 'stalled')
  })
})

t.test('9. a sink sends its farewell during shutdown and ends; the client gets it last', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, shutdownGrace: 5000 })
  const reason = deferred<string>()
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    void sink.send({ id: 1, data: 'hello' })
    sink.signal.addEventListener('abort', () => {
      reason.resolve((sink.signal.reason as Error).message)
      // The farewell takes a moment to build (not sent from within the abort event itself): only
      // the grace period lets it out.
      setTimeout(() => {
        void sink.send({ event: 'bye', data: 'server restarting' }).then(() => sink.end())
      }, 20)
    }, { once: true })
    return reply
  })
  const client = await open(await listen(app) + '/')
  await client.waitFor('data: hello\n\n')
  const t0 = performance.now()
  await within(app.close(), 2000, 'app.close()')
  const took = performance.now() - t0
  t.equal(await reason.promise, 'The SSE stream ended: shutdown')
  await within(client.closed, 1000, 'the response to end')
  const { frames, retry } = splitShutdownRetry(client.text)
  t.equal(frames, 'id: 1\ndata: hello\n\nevent: bye\ndata: server restarting\n\n', 'the farewell is the last frame')
  t.ok(inDefaultShutdownWindow(retry), `then the shutdown's retry line (${retry} ms)`)
  t.ok(client.res.complete, 'the response ended cleanly')
  t.ok(took < 1000, `end() closed it within the grace (${Math.round(took)} ms of 5000)`)
  t.equal((await logs.waitFor(isEnd)).sse.reason, 'shutdown')
})

t.test('10. app.close() resolves promptly with a stalled (silent) client', async (t) => {
  const logs = logCollector()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await app.register(sse, { heartbeat: false, writeTimeout: false, shutdownGrace: 100 })
  const opened = deferred<ServerResponse>()
  const finished = deferred()
  let serverSocket: Socket | undefined
  let pulled = 0
  app.get('/', (req, reply) => {
    serverSocket = req.raw.socket
    opened.resolve(reply.raw)
    return reply.sse(function * () {
      try {
        while (true) { pulled++; yield { data: KiB64 } }
      } finally { finished.resolve() }
    })
  })
  const client = await silentClient(await listen(app) + '/')
  let closed = false
  t.teardown(async () => {
    client.destroy()
    if (!closed) await app.close()
  })
  const res = await opened.promise
  await stuck(res, () => pulled)
  const t0 = performance.now()
  const closing = app.close().then(() => { closed = true })
  await t.resolves(within(closing, 2000, 'app.close()'), 'app.close() resolves')
  const took = performance.now() - t0
  t.ok(took < 2000, `closed in ${Math.round(took)} ms with a 100 ms grace`)
  await within(finished.promise, 1000, 'the source to be released')
  t.equal(logs.lines.filter(isEnd)[0]?.sse.reason, 'shutdown')
  t.ok(serverSocket?.destroyed, 'the connection held by the full socket was dropped, not left open')
})

t.test('11. HTTP/2: a stream open during app.close() gets its farewell and ends', async (t) => {
  const logs = logCollector()
  const app = Fastify({ http2: true, logger: { level: 'info', stream: logs.stream } })
  await app.register(sse, { heartbeat: false, shutdownGrace: 2000 })
  app.get('/', (_req, reply) => reply.sse(async function * ({ signal }) {
    yield { id: 1, data: 'hello' }
    await once(signal, 'abort').catch(() => {})
    yield { event: 'bye', data: (signal.reason as Error).message }
  }))
  const session = http2.connect(await listenAny(app))
  session.on('error', () => {})
  t.teardown(async () => {
    session.destroy()
    await app.close()
  })
  const req = session.request({ ':path': '/' })
  req.setEncoding('utf8')
  let body = ''
  const hello = deferred()
  req.on('data', (chunk: string) => { body += chunk; if (body.includes('data: hello\n\n')) hello.resolve() })
  const ended = new Promise<string>((resolve, reject) => {
    req.on('end', () => resolve(body))
    req.on('error', reject)
  })
  await within(hello.promise, 2000, 'the first event')
  const t0 = performance.now()
  const closing = app.close()
  const { frames, retry } = splitShutdownRetry(await within(ended, 1500, 'the h2 stream to end'))
  t.equal(frames, 'id: 1\ndata: hello\n\nevent: bye\ndata: The SSE stream ended: shutdown\n\n', 'farewell, then a clean end')
  t.ok(inDefaultShutdownWindow(retry), `then the shutdown's retry line (${retry} ms)`)
  // Fastify on Node 20 waits for open HTTP/2 sessions: the client closes its own once done.
  session.close()
  await within(closing, 2000, 'app.close()')
  t.ok(performance.now() - t0 < 1500, 'closed well within the grace')
  t.equal(logs.lines.filter(isEnd)[0]?.sse.reason, 'shutdown')
})

t.test('12. a failing source is logged with the request\'s reqId', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false })
  const id = deferred<string>()
  app.get('/', (req, reply) => {
    id.resolve(req.id)
    return reply.sse(async function * () {
      yield { data: 'a' }
      throw new Error('source broke')
    })
  })
  const base = await listen(app)
  const client = await open(base + '/')
  await client.closed
  const reqId = await id.promise
  const failure = await logs.waitFor((l) => l.level === 50 && l.err?.message === 'source broke')
  t.equal(failure.reqId, reqId, 'the error line carries the reqId')
  const end = await logs.waitFor(isEnd)
  t.equal(end.reqId, reqId, 'so does the end line')
  t.equal(end.sse.reason, 'error')
  // Two requests: the ids differ, so the check could fail.
  const other = await open(base + '/')
  await other.closed
  const failures = logs.lines.filter((l) => l.level === 50 && l.err?.message === 'source broke')
  t.equal(failures.length, 2)
  t.not(failures[1].reqId, failures[0].reqId, 'each line carries its own request\'s id')
})

import t from 'tap'
import { once } from 'node:events'
import { setTimeout as delay } from 'node:timers/promises'
import { build, deferred, frames, holdUntilClosing, isEnd, listen, inDefaultShutdownWindow, logCollector, open, silentClient, splitShutdownRetry } from './helpers/stream.js'

const KiB64 = 'x'.repeat(64 * 1024)

t.test('disconnects', async (t) => {
  t.test('an idle source waiting on the signal ends within 100 ms of the client going', async (t) => {
    const { app } = await build(t)
    const started = deferred()
    const ended = deferred<number>()
    let settled = false
    app.get('/', (_req, reply) => {
      reply.sse(async function * ({ signal }) {
        try {
          yield { data: 'hello' }
          started.resolve()
          await once(signal, 'abort')
        } finally {
          ended.resolve(performance.now())
        }
      }).then(() => { settled = true })
    })
    const client = await open(await listen(app) + '/')
    await client.waitFor('data: hello\n\n')
    await started.promise
    const gone = performance.now()
    client.destroy()
    const at = await ended.promise
    t.ok(at - gone < 100, `source ended ${Math.round(at - gone)} ms after the client went`)
    await delay(0)
    t.ok(settled, 'the reply.sse() promise settled')
  })

  t.test('a busy source stops being pulled at once and its finally runs', async (t) => {
    const { app, logs } = await build(t)
    let pulled = 0
    const finished = deferred()
    const done = deferred<unknown>()
    app.get('/', (_req, reply) => {
      reply.sse(async function * () {
        try {
          while (true) {
            pulled++
            yield { data: 'x'.repeat(1000) }
          }
        } finally {
          finished.resolve()
        }
      }).then(done.resolve, done.resolve)
    })
    const client = await open(await listen(app) + '/')
    await client.waitFor((text) => text.length > 100_000)
    client.destroy()
    await finished.promise
    t.equal(await done.promise, undefined, 'settles with undefined, never rejects')
    const atEnd = pulled
    await delay(20)
    t.equal(pulled, atEnd, 'not pulled after the stream ended')
    const end = await logs.waitFor(isEnd)
    t.equal(end.sse.reason, 'client-closed')
  })

  t.test('a source blocked on a full socket is released when the client goes (no hang on drain)', async (t) => {
    const { app } = await build(t, { heartbeat: false })
    const finished = deferred()
    const done = deferred()
    let pulled = 0
    app.get('/', (_req, reply) => {
      reply.sse(function * () {
        try {
          while (true) { pulled++; yield { data: KiB64 } }
        } finally { finished.resolve() }
      }).then(() => done.resolve())
    })
    const client = await open(await listen(app) + '/', { read: false })
    client.res.pause()
    // The source is pulled until the socket and the kernel's buffers are full (the pump gives the
    // event loop a turn after each batch, so that takes a few turns), then waits for drain.
    let stuckAt = -1
    while (pulled < 4 || stuckAt !== pulled) { stuckAt = pulled; await delay(20) }
    await delay(50)
    t.equal(pulled, stuckAt, 'the source is held while the socket is full')
    client.destroy()
    await finished.promise
    await done.promise
    t.pass('released and settled')
  })

  t.test('every listener and timer is released', async (t) => {
    const { app } = await build(t, { heartbeat: 50, writeTimeout: 1000 })
    const done = deferred()
    let res: import('node:http').ServerResponse | undefined
    let socket: import('node:net').Socket | undefined
    const before = { close: 0, drain: 0, socketClose: 0 }
    app.get('/', (req, reply) => {
      res = reply.raw
      socket = req.raw.socket
      before.close = res.listenerCount('close')
      before.drain = res.listenerCount('drain') + socket.listenerCount('drain')
      before.socketClose = socket.listenerCount('close')
      reply.sse(async function * ({ signal }) {
        yield { data: 'a' }
        await once(signal, 'abort')
      }).then(() => done.resolve())
    })
    const client = await open(await listen(app) + '/')
    await client.waitFor(': ping\n')
    t.equal(res!.listenerCount('drain') + socket!.listenerCount('drain'), before.drain, 'no drain listener while the socket takes data')
    const timersOpen = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    client.destroy()
    await done.promise
    // The response's close listener stays: the response ends with the stream, and the listener
    // does nothing once the stream has closed. Nothing else is left on the response.
    t.equal(res!.listenerCount('close'), before.close + 1, 'one close listener of the stream on the response, no more')
    t.equal(res!.listenerCount('drain') + socket!.listenerCount('drain'), before.drain, 'no drain listener')
    t.equal(socket!.listenerCount('close'), before.socketClose, 'socket close listeners back to before')
    const timersAfter = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    t.ok(timersAfter <= timersOpen, 'no timer left behind')
  })

  t.test('the drain listener comes with the first full socket, and goes with the stream', async (t) => {
    const { app } = await build(t, { writeTimeout: 5000 })
    const full = deferred()
    const done = deferred()
    let socket: import('node:net').Socket | undefined
    let before = 0
    app.get('/', (req, reply) => {
      socket = req.raw.socket
      before = socket.listenerCount('drain')
      const sink = reply.sseSink()
      sink.done.then(() => done.resolve())
      // Until the socket is full (the client reads nothing): a turn at a time, as the kernel takes some.
      const fill = (): void => {
        for (let i = 0; i < 64 && !socket!.writableNeedDrain; i++) void sink.send({ data: KiB64 })
        if (socket!.writableNeedDrain) full.resolve()
        else setImmediate(fill)
      }
      fill()
    })
    const client = await silentClient(await listen(app) + '/')
    await full.promise
    t.equal(socket!.listenerCount('drain'), before + 1, 'one drain listener once the socket is full')
    client.destroy()
    await done.promise
    t.equal(socket!.listenerCount('drain'), before, 'none once the stream has ended')
  })
})

t.test('source errors', async (t) => {
  t.test('a throwing source ends its stream cleanly, is logged, and the server carries on', async (t) => {
    const { app, logs } = await build(t)
    const unhandled: unknown[] = []
    const onUnhandled = (err: unknown): void => { unhandled.push(err) }
    process.on('unhandledRejection', onUnhandled)
    t.teardown(() => { process.off('unhandledRejection', onUnhandled) })
    app.get('/boom', (_req, reply) => reply.sse(async function * () {
      yield { id: 1, data: 'one' }
      throw new Error('secret internals')
    }))
    app.get('/ok', (_req, reply) => reply.sse([{ data: 'fine' }]))
    const base = await listen(app)
    const client = await open(base + '/boom')
    await client.closed
    t.equal(client.text, ': heartbeat=15000\nid: 1\ndata: one\n\n', 'only whole frames, no error details')
    const logged = await logs.waitFor((l) => l.level === 50 && l.err?.message === 'secret internals')
    t.match(logged.msg, /source failed/)
    t.equal((await logs.waitFor(isEnd)).sse.reason, 'error')
    const ok = await open(base + '/ok')
    await ok.closed
    t.equal(ok.text, ': heartbeat=15000\ndata: fine\n\n')
    await delay(10)
    t.same(unhandled, [], 'no unhandled rejection')
  })

  t.test('a synchronous iterator that throws ends the stream the same way', async (t) => {
    const { app, logs } = await build(t)
    app.get('/', (_req, reply) => reply.sse({
      [Symbol.iterator] () {
        return { next () { throw new Error('sync boom') } }
      }
    }))
    const client = await open(await listen(app) + '/')
    await client.closed
    t.equal(client.text, ': heartbeat=15000\n')
    t.equal((await logs.waitFor(isEnd)).sse.reason, 'error')
  })

  t.test('an invalid event ends the stream with a typed error and releases the source', async (t) => {
    const { app, logs } = await build(t)
    const finished = deferred()
    app.get('/', (_req, reply) => reply.sse(async function * () {
      try {
        yield { data: 'ok' }
        yield { id: 'forged\nevent: admin', data: 'x' }
        yield { data: 'never' }
      } finally { finished.resolve() }
    }))
    const client = await open(await listen(app) + '/')
    await client.closed
    await finished.promise
    t.equal(client.text, ': heartbeat=15000\ndata: ok\n\n', 'nothing forged reaches the client')
    const logged = await logs.waitFor((l) => l.level === 50)
    t.equal(logged.err.code, 'FST_ERR_SSE_INVALID_ID')
  })

  t.test('errorEvent: true sends a safe final error event', async (t) => {
    const { app } = await build(t, { errorEvent: true })
    app.get('/500', (_req, reply) => reply.sse(async function * () {
      yield { data: 'a' }
      throw new Error('db password is hunter2')
    }))
    app.get('/400', (_req, reply) => reply.sse(async function * () {
      throw Object.assign(new Error('Unknown topic'), { statusCode: 404 })
    }))
    const base = await listen(app)
    const a = await open(base + '/500')
    await a.closed
    t.equal(a.text, ': heartbeat=15000\ndata: a\n\nevent: error\ndata: Internal Server Error\n\n')
    const b = await open(base + '/400')
    await b.closed
    t.equal(b.text, ': heartbeat=15000\nevent: error\ndata: Unknown topic\n\n', 'a 4xx message is meant for the client')
  })

  t.test('errorEvent as a function builds the event; if it throws, that is logged too', async (t) => {
    const { app, logs } = await build(t)
    app.get('/fn', (_req, reply) => reply.sse(async function * () {
      throw new Error('x')
    }, { errorEvent: () => ({ event: 'failed', data: { retry: true } }) }))
    app.get('/bad', (_req, reply) => reply.sse(async function * () {
      throw new Error('y')
    }, { errorEvent: () => { throw new Error('handler broke') } }))
    const base = await listen(app)
    const a = await open(base + '/fn')
    await a.closed
    t.equal(a.text, ': heartbeat=15000\nevent: failed\ndata: {"retry":true}\n\n')
    const b = await open(base + '/bad')
    await b.closed
    t.equal(b.text, ': heartbeat=15000\n')
    await logs.waitFor((l) => l.err?.message === 'handler broke')
  })

  t.test('a source whose return() fails while stopping is logged, not thrown', async (t) => {
    const { app, logs } = await build(t)
    const pending = deferred<IteratorResult<{ data: string }>>()
    app.get('/async', (_req, reply) => reply.sse({
      [Symbol.asyncIterator] () {
        let first = true
        return {
          next: () => {
            if (first) { first = false; return Promise.resolve({ done: false, value: { data: 'a' } }) }
            return pending.promise
          },
          return: () => Promise.reject(new Error('async return failed'))
        }
      }
    }))
    app.get('/sync', (_req, reply) => reply.sse({
      [Symbol.iterator] () {
        return {
          next: () => ({ done: false, value: { data: KiB64 } }),
          return: () => { throw new Error('sync return failed') }
        }
      }
    }))
    const base = await listen(app)
    const a = await open(base + '/async')
    await a.waitFor('data: a\n\n')
    a.destroy()
    await logs.waitFor((l) => l.err?.message === 'async return failed')
    const b = await open(base + '/sync', { read: false })
    b.res.pause()
    await delay(20)
    b.destroy()
    await logs.waitFor((l) => l.err?.message === 'sync return failed')
    pending.resolve({ done: true, value: undefined })
    t.pass()
  })

  t.test('a source that fails after the client went is not logged as a failure', async (t) => {
    const { app, logs } = await build(t)
    const done = deferred()
    app.get('/', (_req, reply) => {
      reply.sse(async function * ({ signal }) {
        yield { data: 'a' }
        await once(signal, 'abort')
        throw new Error('the producer noticed too late')
      }).then(() => done.resolve())
    })
    const client = await open(await listen(app) + '/')
    await client.waitFor('data: a')
    client.destroy()
    await done.promise
    await delay(10)
    t.equal(logs.lines.filter((l) => l.level >= 50).length, 0)
  })
})

t.test('heartbeat', async (t) => {
  t.test('a comment line after an interval of silence, never a blank line', async (t) => {
    const { app } = await build(t, { heartbeat: 60 })
    app.get('/', (_req, reply) => reply.sse(async function * ({ signal }) {
      yield { data: 'a' }
      await once(signal, 'abort')
    }))
    const client = await open(await listen(app) + '/')
    const t0 = performance.now()
    await client.waitFor('data: a\n\n: ping\n: ping\n')
    t.ok(performance.now() - t0 >= 100, 'two heartbeats take at least two intervals')
    t.notMatch(client.text, /: ping\n\n/, 'a heartbeat dispatches no event')
    client.destroy()
  })

  t.test('no heartbeat while events flow faster than the interval', async (t) => {
    const { app } = await build(t, { heartbeat: 80 })
    app.get('/', (_req, reply) => reply.sse(async function * () {
      for (let i = 0; i < 12; i++) {
        yield { data: String(i) }
        await delay(20)
      }
    }))
    const client = await open(await listen(app) + '/')
    await client.closed
    t.equal(frames(client.text).length, 12)
    t.notOk(client.text.includes(': ping'), 'no heartbeat between frequent events')
  })

  t.test('heartbeat: false sends none', async (t) => {
    const { app } = await build(t, { heartbeat: 20 })
    app.get('/', (_req, reply) => reply.sse(async function * () {
      yield { data: 'a' }
      await delay(100)
      yield { data: 'b' }
    }, { heartbeat: false }))
    const client = await open(await listen(app) + '/')
    await client.closed
    t.equal(client.text, 'data: a\n\ndata: b\n\n')
  })
})

t.test('write deadline: a client that reads nothing is dropped as stalled', async (t) => {
  const { app, logs } = await build(t, { writeTimeout: 150, heartbeat: false })
  const finished = deferred()
  app.get('/', (_req, reply) => reply.sse(function * () {
    try {
      while (true) yield { data: KiB64 }
    } finally { finished.resolve() }
  }))
  const client = await open(await listen(app) + '/', { read: false })
  client.res.pause()
  const t0 = performance.now()
  const end = await logs.waitFor(isEnd)
  const elapsed = performance.now() - t0
  await finished.promise
  t.equal(end.sse.reason, 'stalled')
  t.ok(elapsed >= 140, `not before the deadline (${Math.round(elapsed)} ms)`)
  // A paused client notices nothing until it reads again: then it finds the connection gone.
  client.res.resume()
  await client.closed
  t.notOk(client.res.complete, 'the response was cut, not ended')
  await logs.waitFor((l) => l.level === 40 && /made no progress for \d+ ms/.test(l.msg))
})

t.test('graceful shutdown', async (t) => {
  t.test('sources get their signal, send a farewell, and the streams end on a frame boundary', async (t) => {
    const { app, logs } = await build(t, { heartbeat: false })
    const reasons: string[] = []
    app.get('/', (_req, reply) => reply.sse(async function * ({ signal }) {
      yield { id: 1, data: 'hello' }
      await once(signal, 'abort').catch(() => {})
      reasons.push((signal.reason as Error).message)
      yield { event: 'bye', data: 'server restarting' }
    }))
    const base = await listen(app)
    const clients = await Promise.all([open(base + '/'), open(base + '/'), open(base + '/')])
    await Promise.all(clients.map((c) => c.waitFor('data: hello\n\n')))
    await app.close()
    for (const c of clients) {
      await c.closed
      const { frames, retry } = splitShutdownRetry(c.text)
      t.equal(frames, 'id: 1\ndata: hello\n\nevent: bye\ndata: server restarting\n\n')
      t.ok(inDefaultShutdownWindow(retry), `then the shutdown's retry line (${retry} ms)`)
    }
    t.same(reasons, Array(3).fill('The SSE stream ended: shutdown'))
    t.equal(logs.lines.filter(isEnd).filter((l) => l.sse.reason === 'shutdown').length, 3)
  })

  t.test('a source that ignores the signal is cut after shutdownGrace, between frames', async (t) => {
    const { app } = await build(t, { heartbeat: false, shutdownGrace: 100 })
    const finished = deferred()
    app.get('/', (_req, reply) => reply.sse(async function * () {
      try {
        for (let i = 0; ; i++) {
          yield { data: `line ${i}\nsecond line` }
          await delay(10)
        }
      } finally { finished.resolve() }
    }))
    const client = await open(await listen(app) + '/')
    await client.waitFor('line 2')
    const t0 = performance.now()
    await app.close()
    const took = performance.now() - t0
    await client.closed
    await finished.promise
    t.ok(took >= 90 && took < 2000, `close took ${Math.round(took)} ms with a 100 ms grace`)
    t.ok(splitShutdownRetry(client.text).frames.endsWith('second line\n\n'), 'ends after a whole frame')
  })

  t.test('app.close() resolves promptly with 1,000 streams open', async (t) => {
    const { app } = await build(t, { heartbeat: false, shutdownGrace: 0 })
    app.get('/', (_req, reply) => reply.sse(async function * ({ signal }) {
      yield { data: 'hi' }
      await once(signal, 'abort').catch(() => {})
    }))
    const base = await listen(app)
    const clients = []
    for (let i = 0; i < 1000; i += 100) {
      clients.push(...await Promise.all(Array.from({ length: 100 }, () => open(base + '/'))))
    }
    await Promise.all(clients.map((c) => c.waitFor('data: hi\n\n')))
    const t0 = performance.now()
    await app.close()
    const took = performance.now() - t0
    t.ok(took < 3000, `closed 1,000 streams in ${Math.round(took)} ms`)
    await Promise.all(clients.map((c) => c.closed))
    const ends = clients.map((c) => splitShutdownRetry(c.text))
    t.ok(ends.every((end) => end.frames === 'data: hi\n\n'), 'every stream got its frame')
    // The shutdown's retry line spreads the clients' return over the window, not one second.
    const retries = ends.map((end) => end.retry)
    t.ok(retries.every(inDefaultShutdownWindow), 'every retry is drawn from [2000, 10000] ms')
    t.ok(new Set(retries).size > 500, `${new Set(retries).size} distinct delays among 1,000 clients`)
    const early = retries.filter((r) => r! < 6000).length
    t.ok(early > 350 && early < 650, `${early} of 1,000 come back in the first half of the window`)
  })

  t.test('a stream started while the server closes gets 503 with Retry-After', async (t) => {
    const { app } = await build(t, { retryAfter: 7 })
    const shutdown = holdUntilClosing(app)
    app.get('/', async (_req, reply) => {
      await shutdown.hold()
      return reply.sse([{ data: 'late' }])
    })
    app.get('/sink', async (_req, reply) => {
      await shutdown.hold()
      const sink = reply.sseSink()
      t.equal(sink.closed, true, 'the sink is closed at once')
      t.equal(await sink.send({ data: 'x' }), false)
      return reply
    })
    const base = await listen(app)
    const res = fetch(base + '/', { headers: { connection: 'close' } })
    const res2 = fetch(base + '/sink', { headers: { connection: 'close' } })
    const { closed } = await shutdown.close(2)
    for (const r of [await res, await res2]) {
      t.equal(r.status, 503)
      t.equal(r.headers.get('retry-after'), '7')
      t.match(await r.json(), { code: 'FST_ERR_SSE_SERVER_CLOSING', statusCode: 503 })
    }
    await closed
  })
})

t.test('logging: one line per stream end with duration, events, bytes and reason', async (t) => {
  const { app, logs } = await build(t, { retry: 1000 })
  app.get('/', (_req, reply) => reply.sse([{ data: 'é' }, { event: 'x', data: { a: 1 } }]))
  const client = await open(await listen(app) + '/')
  await client.closed
  const end = await logs.waitFor(isEnd)
  t.equal(end.level, 30, 'info level')
  t.equal(end.sse.reason, 'done')
  t.equal(end.sse.events, 2)
  t.equal(end.sse.bytes, Buffer.byteLength(client.text), 'bytes as written, opening lines (retry, heartbeat) included')
  t.type(end.sse.durationMs, 'number')
  t.equal(logs.lines.filter(isEnd).length, 1)
})

t.test('frames available in the same tick go out in one write', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  app.get('/', (_req, reply) => reply.sse(Array.from({ length: 100 }, (_, i) => ({ id: i, data: `event ${i}` }))))
  const url = new URL(await listen(app))
  const { connect } = await import('node:net')
  const socket = connect(Number(url.port), url.hostname)
  await once(socket, 'connect')
  socket.write(`GET / HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`)
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  await once(socket, 'close')
  const text = Buffer.concat(chunks).toString()
  t.match(text, /id: 99\r?\ndata: event 99/)
  // The head is flushed on its own; the 100 frames (and the end of the body) follow together.
  t.ok(chunks.length <= 3, `received in ${chunks.length} socket reads`)
})

t.test('an array source is dropped cleanly when the client goes mid-way', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false })
  const big = Array.from({ length: 1000 }, () => ({ data: KiB64 }))
  app.get('/', (_req, reply) => reply.sse(big))
  const client = await open(await listen(app) + '/')
  await client.waitFor((text) => text.length > 200_000)
  client.destroy()
  const end = await logs.waitFor(isEnd)
  t.equal(end.sse.reason, 'client-closed')
  t.ok(end.sse.events < 1000, `stopped after ${end.sse.events} of 1000 events`)
})

t.test('a source promise that resolves after the client went is never iterated', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false })
  const gate = deferred()
  let iterated = false
  const settled = deferred()
  app.get('/', (_req, reply) => {
    reply.sse(async () => {
      await gate.promise
      return { [Symbol.iterator]: () => { iterated = true; return [][Symbol.iterator]() } }
    }).then(() => settled.resolve())
  })
  const client = await open(await listen(app) + '/')
  client.destroy()
  await settled.promise
  gate.resolve()
  await delay(10)
  t.notOk(iterated, 'the late iterable was dropped')
  t.equal((await logs.waitFor(isEnd)).sse.reason, 'client-closed')
})

t.test('large frames through inject(), whose writes never push back', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const big = 'b'.repeat(20_000)
  app.get('/', (_req, reply) => reply.sse(Array.from({ length: 5 }, (_, i) => ({ id: i, data: big }))))
  const res = await app.inject('/')
  t.equal(res.body, Array.from({ length: 5 }, (_, i) => `id: ${i}\ndata: ${big}\n\n`).join(''))
})

t.test('a late error on a finished response is absorbed, not thrown', async (t) => {
  const { app, logs } = await build(t)
  const ended = deferred<import('node:http').ServerResponse>()
  app.get('/', (_req, reply) => {
    reply.sse([{ data: 'x' }]).then(() => ended.resolve(reply.raw))
  })
  const client = await open(await listen(app) + '/')
  await client.closed
  const res = await ended.promise
  // A hand-made event on the real response: Node may report a socket fault this way late.
  t.doesNotThrow(() => res.emit('error', new Error('late socket fault')))
  t.equal(logs.lines.filter(isEnd).length, 1, 'the stream ended once')
})

// On HTTP/1.1 a stream writes its frames to the socket as chunks it frames itself (docs/http.md,
// "How frames are written"). A chunk of no bytes would end the body early, so a frame that
// encodes to nothing is never written as one: here an errorEvent that returns an event with no
// fields, after which the response must still end with its own last chunk, parsed whole by a
// real HTTP client and read raw.
import t from 'tap'
import http from 'node:http'
import net from 'node:net'
import { once } from 'node:events'
import { build, listen } from './helpers/stream.js'
import { deferred, within } from './helpers/http.js'
import { subscribe } from './helpers/hub.js'

t.test('a frame that encodes to nothing writes no chunk: the body goes on and ends whole', async (t) => {
  const { app } = await build(t, { heartbeat: false, errorEvent: () => ({}) })
  app.get('/', (_req, reply) => reply.sse(async function * () {
    yield { data: 'before' }
    throw new Error('the source failed')
  }))
  const url = new URL(await listen(app))
  const socket = net.connect(Number(url.port), url.hostname)
  socket.write(`GET / HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`)
  let raw = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => { raw += chunk })
  await once(socket, 'end')
  const body = raw.slice(raw.indexOf('\r\n\r\n') + 4)
  // Undo the chunked framing: every chunk but the last has bytes, and the last ends the body.
  const chunks: string[] = []
  for (let at = 0; ;) {
    const eol = body.indexOf('\r\n', at)
    const size = parseInt(body.slice(at, eol), 16)
    if (size === 0) {
      t.equal(body.slice(eol), '\r\n\r\n', 'the last chunk ends the body, and nothing follows it')
      break
    }
    chunks.push(body.slice(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
  t.ok(chunks.length > 0 && chunks.every((c) => c.length > 0), `${chunks.length} chunks, none empty`)
  t.equal(chunks.join(''), 'data: before\n\n', 'the event, and nothing for the empty error event')
})

t.test('a pipelined response queued behind a stream that writes its own chunks, and ended first: the stream drains, resumes and ends, then the queued one follows', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, writeTimeout: false })
  const big = 'x'.repeat(64 * 1024)
  let sent: Promise<void> | undefined
  app.get('/a', (_req, reply) => {
    const sink = reply.sseSink()
    sent = (async () => {
      for (let i = 0; i < 64; i++) await sink.send({ data: String(i) + big })
      sink.end()
    })()
  })
  app.get('/b', (_req, reply) => reply.sse([{ data: 'b' }]))
  const url = new URL(await listen(app))
  const socket = net.connect(Number(url.port), url.hostname)
  t.teardown(() => socket.destroy())
  // Both requests at once; the client reads nothing yet, so /a fills its socket.
  socket.write(`GET /a HTTP/1.1\r\nHost: ${url.host}\r\n\r\nGET /b HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`)
  // /b runs while queued behind /a, and ends (its frames wait in its response).
  await logs.waitFor((l) => l.sse?.reason === 'done')
  let raw = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => { raw += chunk })
  await within(sent!, 10_000, '/a to send everything')
  while (!/data: b\n\n\r\n0\r\n\r\n$/.test(raw)) await once(socket, 'data')
  const events = [...raw.matchAll(/data: (\d+)x/g)].map((m) => Number(m[1]))
  t.same(events, Array.from({ length: 64 }, (_, i) => i), '/a: every event, in order')
  t.ok(raw.lastIndexOf('data: 63x') < raw.indexOf('data: b\n'), '/b after the whole of /a')
})

t.test('a hub pass due before a stream opened still sends the stream\'s opening lines first', async (t) => {
  const { app } = await build(t, { retry: 3000 })
  app.get('/s', (_req, reply) => reply.sseSubscribe('t'))
  // A publish wakes the first subscriber (its pass is due at the next turn) before this one opens.
  app.get('/late', (_req, reply) => {
    void app.sse.publish('t', { data: 'now' })
    return reply.sseSubscribe('t', { prime: false })
  })
  const base = await listen(app)
  const first = await subscribe(base + '/s')
  t.teardown(() => first.destroy())
  await first.waitFor((f) => f.length >= 1, 5000, 'the priming id')
  const from = first.frames[0]!.id!
  await app.sse.publish('t', { data: 'old' })
  const text = await new Promise<string>((resolve, reject) => {
    http.get(base + '/late', { headers: { 'last-event-id': from }, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
        if (body.includes('data: now')) {
          res.destroy()
          resolve(body)
        }
      })
    }).on('error', reject)
  })
  t.match(text, /^retry: 3000\n: heartbeat=15000\ndata: old\nid: \S+\n\ndata: now\nid: \S+\n\n$/, 'the opening lines, then the replay and the new event')
})

t.test('pipelined streams queued behind another: when the client leaves, every one of them ends', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const opened = new Map(['a', 'b', 'c'].map((name) => [name, deferred<{ done: Promise<void> }>()]))
  for (const name of opened.keys()) {
    app.get('/' + name, (_req, reply) => { opened.get(name)!.resolve({ done: reply.sseSink().done }) })
  }
  const url = new URL(await listen(app))
  const socket = net.connect(Number(url.port), url.hostname)
  // /b and /c open while /a holds the socket: their responses wait for it.
  socket.write([...opened.keys()].map((p) => `GET /${p} HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`).join(''))
  const streams = await Promise.all([...opened.values()].map((d) => d.promise))
  socket.destroy()
  await within(Promise.all(streams.map((s) => s.done)), 2000, 'the three streams to end')
  t.equal(app.sse.stats().ended['client-closed'], 3, 'all three ended as client-closed')
  t.equal(app.sse.stats().streams.open, 0)
})

t.test('a pipelined stream that opens after its client left ends at once', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const first = deferred<{ done: Promise<void> }>()
  const waiting = deferred()
  const held = deferred()
  const second = deferred<{ done: Promise<void> }>()
  app.get('/a', (_req, reply) => { first.resolve({ done: reply.sseSink().done }) })
  app.get('/b', async (_req, reply) => {
    waiting.resolve()
    await held.promise
    second.resolve({ done: reply.sseSink().done })
  })
  const url = new URL(await listen(app))
  const socket = net.connect(Number(url.port), url.hostname)
  socket.write(`GET /a HTTP/1.1\r\nHost: ${url.host}\r\n\r\nGET /b HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`)
  const { done: firstDone } = await first.promise
  await waiting.promise
  socket.destroy()
  // The socket has closed (/a with it) before /b's handler goes on.
  await firstDone
  held.resolve()
  await within((await second.promise).done, 2000, '/b to end')
  t.equal(app.sse.stats().ended['client-closed'], 2, '/b ended as client-closed, as /a did')
})

t.test('chunk heads: the size in hex, for every size a frame or a piece of one can have', async (t) => {
  const { chunkHead } = await import('../lib/stream.js')
  const sizes = [196608, 1048576]
  for (let n = 0; n < 70000; n++) sizes.push(n)
  const wrong = sizes.filter((n) => chunkHead(n) !== n.toString(16) + '\r\n')
  t.same(wrong, [], 'each head is the size in lowercase hex, without leading zeros, then CRLF')
})

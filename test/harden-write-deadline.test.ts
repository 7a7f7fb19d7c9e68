// writeTimeout measures progress: a client that reads steadily but slowly is never cut, however
// large the frame; one that makes no progress is, and a pipelined response waiting for the socket
// is not timed before it has it.
import t from 'tap'
import net from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import { build, isEnd, listen, open } from './helpers/stream.js'

t.test('one 16 MB event to a client reading slowly but steadily is delivered whole', async (t) => {
  const { app, logs } = await build(t, { writeTimeout: 1000, heartbeat: false })
  const big = 'é'.repeat(4 * 1024 * 1024) + '😀'.repeat(2 * 1024 * 1024) // 16 MiB of UTF-8, pairs across pieces
  app.get('/', (_req, reply) => reply.sse([{ data: big }, { data: 'after' }]))
  const client = await open(await listen(app) + '/', { read: false })
  // A steady 4 MB/s: the kernel takes the first few MB at once, and one write of the whole frame
  // would drain only after the rest (about 3 s), past the deadline. Each piece drains on its own.
  let bytes = 0
  client.res.on('data', (chunk: string) => {
    client.text += chunk
    const size = Buffer.byteLength(chunk)
    bytes += size
    client.res.pause()
    setTimeout(() => client.res.resume(), size / 4000)
  })
  await client.closed
  const end = await logs.waitFor(isEnd)
  t.equal(end.sse.reason, 'done', `ended as done after ${bytes} bytes`)
  t.equal(client.text, 'data: ' + big + '\n\ndata: after\n\n', 'every byte arrived, and no character was split')
  t.notOk(logs.lines.some((l) => /no progress/.test(l.msg ?? '')), 'no stall was logged')
})

t.test('a client that reads nothing is still cut, the log saying how long it made no progress', async (t) => {
  const { app, logs } = await build(t, { writeTimeout: 200, heartbeat: false })
  app.get('/', (_req, reply) => reply.sse([{ data: 'x'.repeat(16 * 1024 * 1024) }]))
  const client = await open(await listen(app) + '/', { read: false })
  client.res.pause()
  const end = await logs.waitFor(isEnd)
  t.equal(end.sse.reason, 'stalled')
  t.ok(logs.lines.some((l) => l.level === 40 && l.msg === 'fastify-sse-stream: the client made no progress for 200 ms; closing the stream'))
  client.destroy()
})

t.test('a pipelined request queued behind an open stream is not cut before it has the socket', async (t) => {
  const { app, logs } = await build(t, { writeTimeout: 100, heartbeat: false })
  let endFirst: () => void = () => {}
  app.get('/first', (_req, reply) => {
    const sink = reply.sseSink()
    void sink.send({ data: 'first' })
    endFirst = () => sink.end()
  })
  // Its writes are buffered by Node until /first ends: past 16 KiB, write() says the buffer is full.
  app.get('/second', (_req, reply) => reply.sse(Array.from({ length: 4 }, (_, i) => ({ data: String(i).repeat(20_000) }))))
  const url = new URL(await listen(app))
  const socket = net.connect(Number(url.port), '127.0.0.1')
  let text = ''
  socket.setEncoding('utf8').on('data', (chunk: string) => { text += chunk })
  socket.write('GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n')
  while (!text.includes('data: first')) await delay(5)
  // Several write deadlines pass while /second waits behind /first.
  await delay(400)
  t.notOk(logs.lines.some(isEnd), 'no stream has ended yet')
  endFirst()
  const second = await logs.waitFor((l) => isEnd(l) && l.sse.events === 4)
  t.equal(second.sse.reason, 'done', 'the queued stream ran to its end once it had the socket')
  while (!text.includes('3'.repeat(20_000))) await delay(5)
  t.pass('its events arrived')
  socket.destroy()
})

t.test('a frame cut into pieces is never cut between the halves of a surrogate pair', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  // 'data: ' is 6 units: the high surrogate is the last unit of the first 64 Ki piece.
  const data = 'x'.repeat(65536 - 7) + '😀' + 'y'.repeat(70_000) + '😀'
  app.get('/', (_req, reply) => reply.sse([{ data }]))
  const client = await open(await listen(app) + '/')
  await client.closed
  t.equal(client.text, 'data: ' + data + '\n\n')
})

t.test('a source that awaits between events is held once a tick\'s flush finds the socket full', async (t) => {
  const { app } = await build(t, { heartbeat: false, writeTimeout: false })
  let pulled = 0
  const chunk = 'z'.repeat(4000)
  app.get('/', (_req, reply) => reply.sse(async function * () {
    while (true) {
      pulled++
      yield { data: chunk }
      await new Promise((resolve) => setImmediate(resolve))
    }
  }))
  const client = await open(await listen(app) + '/', { read: false })
  client.res.pause()
  let stuckAt = -1
  for (let i = 0; i < 250 && stuckAt !== pulled; i++) { stuckAt = pulled; await delay(20) }
  await delay(50)
  t.equal(pulled, stuckAt, `held after ${pulled} events`)
  client.destroy()
})

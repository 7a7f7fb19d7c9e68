// On HTTP/1.1 a stream writes its frames to the socket as chunks it frames itself (docs/http.md,
// "How frames are written"). A chunk of no bytes would end the body early, so a frame that
// encodes to nothing is never written as one: here an errorEvent that returns an event with no
// fields, after which the response must still end with its own last chunk, parsed whole by a
// real HTTP client and read raw.
import t from 'tap'
import net from 'node:net'
import { once } from 'node:events'
import { build, listen } from './helpers/stream.js'

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

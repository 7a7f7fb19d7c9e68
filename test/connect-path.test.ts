// The connect path (issue 13): the opening lines travel in the chunk of the first frame written
// in the turn a stream opens, and still go out at once, alone, when no frame comes in that turn.
import t from 'tap'
import net from 'node:net'
import { build, deferred, listen } from './helpers/stream.js'

/** A raw HTTP/1.1 client: the response's bytes as they come, and a wait for a pattern in them. */
async function rawClient (url: string): Promise<{ text: () => string, waitFor: (re: RegExp) => Promise<void>, destroy: () => void }> {
  const u = new URL(url)
  const socket = net.connect(Number(u.port), u.hostname)
  socket.setEncoding('latin1')
  let text = ''
  const waiters: Array<() => void> = []
  socket.on('data', (chunk: string) => { text += chunk; for (const w of waiters.splice(0)) w() })
  socket.on('error', () => {})
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nAccept: text/event-stream\r\n\r\n`)
  return {
    text: () => text,
    waitFor: (re) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not seen: ${re}; got ${JSON.stringify(text)}`)), 5000)
      const check = (): void => {
        if (re.test(text)) { clearTimeout(timer); resolve() } else waiters.push(check)
      }
      check()
    }),
    destroy: () => socket.destroy()
  }
}

t.test('a sink\'s first event carries the opening lines in its chunk', async (t) => {
  const { app } = await build(t, { retry: 3000 })
  app.get('/', (_req, reply) => { void reply.sseSink().send({ data: 'hello' }) })
  const client = await rawClient(await listen(app) + '/')
  t.teardown(client.destroy)
  const body = 'retry: 3000\n: heartbeat=15000\ndata: hello\n\n'
  await client.waitFor(/data: hello\n\n\r\n/)
  const chunked = '\r\n\r\n' + body.length.toString(16) + '\r\n' + body + '\r\n'
  t.ok(client.text().endsWith(chunked), `one chunk for the opening lines and the event (got ${JSON.stringify(client.text().split('\r\n\r\n')[1])})`)
})

t.test('with no frame in the turn a stream opens, its opening lines go out at once, alone', async (t) => {
  const { app } = await build(t)
  const gate = deferred()
  app.get('/', (_req, reply) => reply.sse(async function * () {
    await gate.promise
    yield { data: 'later' }
  }()))
  const client = await rawClient(await listen(app) + '/')
  t.teardown(client.destroy)
  await client.waitFor(/\r\n\r\n12\r\n: heartbeat=15000\n\r\n$/)
  t.pass('the opening lines arrived before any event, in a chunk of their own')
  gate.resolve()
  await client.waitFor(/\r\n12\r\n: heartbeat=15000\n\r\nd\r\ndata: later\n\n\r\n/)
  t.pass('then the event, in its own chunk')
})

t.test('a stream that ends in the turn it opens still sends its opening lines first', async (t) => {
  const { app } = await build(t, { retry: 3000 })
  app.get('/', (_req, reply) => { reply.sseSink().end() })
  const client = await rawClient(await listen(app) + '/')
  t.teardown(client.destroy)
  await client.waitFor(/\r\n0\r\n\r\n$/)
  t.match(client.text(), /\r\n\r\n[0-9a-f]+\r\nretry: 3000\n: heartbeat=15000\n\r\n0\r\n\r\n$/, 'the opening lines, then the end of the body')
})

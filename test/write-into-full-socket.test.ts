// A write into a socket that is full already: the stream waits for one drain, with one write
// deadline. Made to happen every time: a pipelined response has no socket until the one before it
// ends, so Node buffers what it writes, and past its high water mark every write says the buffer
// is full. A subscription's long comment fills it, and its priming id is written into the full buffer.
import t from 'tap'
import net from 'node:net'
import { build, deferred, listen } from './helpers/stream.js'

t.test('a subscription whose comment fills the buffer of a pipelined response waits for the socket once', async (t) => {
  const { app } = await build(t, { writeTimeout: 1000, heartbeat: false })
  let endFirst: () => void = () => {}
  app.get('/first', (_req, reply) => {
    const sink = reply.sseSink()
    void sink.send({ data: 'first' })
    endFirst = () => sink.end()
  })
  // One piece (64 Ki units with ': ' and the newline), past the buffer's size on every Node (64 KiB
  // from Node 22 on, 16 KiB before).
  const comment = 'c'.repeat(65_536 - 3)
  let added = -1
  const subscribed = deferred()
  app.get('/second', (_req, reply) => {
    const socketListeners = reply.raw.listenerCount('socket')
    const done = reply.sseSubscribe('full', { comment })
    // The comment filled the buffer, and the priming id was written after it: the deadline waits
    // for the socket through one listener, not one per write that found the buffer full.
    added = reply.raw.listenerCount('socket') - socketListeners
    subscribed.resolve()
    return done
  })
  const url = new URL(await listen(app))
  const socket = net.connect(Number(url.port), '127.0.0.1')
  t.teardown(() => socket.destroy())
  let text = ''
  const waiters: Array<() => void> = []
  socket.setEncoding('utf8').on('data', (chunk: string) => {
    text += chunk
    for (const waiter of waiters.splice(0)) waiter()
  })
  async function until (test: () => boolean): Promise<void> {
    while (!test()) await new Promise<void>((resolve) => waiters.push(resolve))
  }
  socket.write('GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n')
  await until(() => text.includes('data: first'))
  // /second's stream is open, its writes wait in Node's buffer for the socket.
  await subscribed.promise
  t.equal(added, 1, 'one socket listener')
  endFirst()
  // (The body is chunked: its frames are looked for in order, not as one text.)
  await until(() => /\nid: 0-0\n\n/.test(text.slice(text.indexOf(': ' + comment + '\n'))))
  await app.sse.publish('full', { data: 'after' })
  await until(() => text.includes('data: after'))
  const at = [': ' + comment + '\n', 'id: 0-0\n\n', 'data: after\n'].map((part) => text.indexOf(part, text.indexOf('HTTP/1.1 200', text.indexOf('data: first'))))
  t.ok(at[0]! > 0 && at[0]! < at[1]! && at[1]! < at[2]!, 'the comment, the priming id, then the event')
})

// Regression: a heartbeat can be the write that fills the socket. beat() only skips a socket that
// is ALREADY backpressured; when its 7-byte frame is the one that makes write() return false,
// stream.backpressured becomes true with no onDrained callback registered. With a sink:
// - the next send() sees backpressured and is queued;
// - 'drain' comes, onDrain() finds no callback: the queue is never flushed;
// - the send after the drain is written at once, AHEAD of the queued one (reordered), the queued
//   one never resolves (an awaiting producer hangs), and end() never ends the stream.
// Here the socket is brought to a few bytes under its high-water mark with a silent client,
// so that the heartbeat is the write that crosses it.
import t from 'tap'
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { once } from 'node:events'
import type { SseSink } from '../index.js'
import { build, deferred, listen, silentClient } from './helpers/stream.js'

function within<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([p, new Promise<never>((_r, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })]).finally(() => clearTimeout(timer))
}

t.test('a heartbeat that fills the socket does not strand or reorder sink events', async (t) => {
  const { app } = await build(t, { heartbeat: 100, writeTimeout: false })
  const ready = deferred<{ sink: SseSink, res: ServerResponse, sock: Socket }>()
  app.get('/', (_req, reply) => {
    const sink = reply.sseSink()
    ready.resolve({ sink, res: reply.raw, sock: reply.raw.socket! })
    return reply
  })
  const client = await silentClient(await listen(app) + '/')
  t.teardown(() => client.destroy())
  const { sink, sock } = await ready.promise
  // Let the kernel buffers fill and settle under a large high-water mark (every write accepted),
  // then put the mark 6 bytes above what is queued: any heartbeat chunk (12 bytes) crosses it.
  // (This only reproduces, deterministically, a level the buffer passes through in real use.)
  const state = (sock as unknown as { _writableState: { highWaterMark: number } })._writableState
  state.highWaterMark = 64 * 1024 * 1024
  for (let i = 0; i < 200; i++) await sink.send({ data: 'k'.repeat(64 * 1024) })
  let last = -1
  for (let i = 0; i < 100 && sock.writableLength !== last; i++) {
    last = sock.writableLength
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.ok(sock.writableLength > 0, `kernel full, ${sock.writableLength} B queued in userland`)
  state.highWaterMark = sock.writableLength + 6
  t.notOk(sock.writableNeedDrain, 'not backpressured yet')
  // Wait for the heartbeat to be written (and to fill the socket).
  for (let i = 0; i < 100 && !sock.writableNeedDrain; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.ok(sock.writableNeedDrain, 'the heartbeat filled the socket')
  const a = sink.send({ data: 'A' })
  t.equal(sink.pending, 1, 'A is queued behind the full socket')
  // The client starts reading.
  let text = ''
  client.setEncoding('utf8')
  client.on('data', (chunk: string) => { text += chunk })
  client.resume()
  await once(sock, 'drain')
  const b = sink.send({ data: 'B' })
  sink.end()
  await t.resolves(within(a, 1000, 'send(A) to settle'), 'send(A) settles')
  await within(b, 1000, 'send(B)').catch(() => {})
  await t.resolves(within(sink.done, 1000, 'the stream to end after end()'), 'end() ends the stream')
  // The response's last chunk (keep-alive: the socket stays open).
  for (let i = 0; i < 100 && !text.endsWith('0\r\n\r\n'); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  const iA = text.indexOf('data: A\n'); const iB = text.indexOf('data: B\n')
  t.ok(iA !== -1 && iB !== -1 && iA < iB, `A is written before B (A at ${iA}, B at ${iB})`)
})

// Bad input and backpressure. The plugin never sends a malformed frame, so the bad streams here
// are written by hand on a hijacked reply; backpressure is checked against the real plugin.
import t from 'tap'
import type { FastifyReply } from 'fastify'
import { connect, SseProtocolError } from '../../lib/client/index.js'
import { deferred, within } from '../helpers/http.js'
import { startApp, take } from '../helpers/client.js'

/** Writes `chunks` (each flushed before the next) on a hijacked reply, then ends the body. */
function raw (reply: FastifyReply, chunks: Array<string | Buffer>): void {
  reply.hijack()
  reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
  const next = (i: number): void => {
    if (i === chunks.length) reply.raw.end()
    else reply.raw.write(chunks[i], () => next(i + 1))
  }
  next(0)
}

t.test('malformed frames are handled as the spec says, and comments never dispatch', async (t) => {
  const { url } = await startApp(t, (app) => {
    app.get('/messy', (_req, reply) => raw(reply, [
      '\uFEFFdata: after a BOM\n\n',
      ': a comment\n\n:\n\n',
      'retry: soon\nbogus: field\nno colon line\ndata\n\n',
      'id: with\0nul\ndata: NUL ids are ignored\n\n',
      'data: crlf\r\n\r\ndata: cr\r\rdata: split across\n',
      'data:  two chunks\n\n',
      'event: end\ndata:\n\n'
    ]))
  })
  const stream = connect(`${url}/messy`, { terminalEvent: 'end' })
  t.same((await take(stream)).map((e) => e.data), ['after a BOM', '', 'NUL ids are ignored', 'crlf', 'cr', 'split across\n two chunks', ''])
  t.equal(stream.lastEventId, undefined)
})

t.test('invalid UTF-8 becomes U+FFFD; a character split across chunks survives', async (t) => {
  const { url } = await startApp(t, (app) => {
    app.get('/bytes', (_req, reply) => raw(reply, [
      Buffer.from([0x64, 0x61, 0x74, 0x61, 0x3a, 0x20, 0xff, 0xfe, 0x41, 0x0a, 0x0a]), // data: \xff\xfeA
      Buffer.from('data: caf'), Buffer.from([0xc3]), Buffer.from([0xa9, 0x0a, 0x0a]), // é split in two
      'event: end\ndata: x\n\n'
    ]))
  })
  const stream = connect(`${url}/bytes`, { terminalEvent: 'end' })
  t.same((await take(stream)).map((e) => e.data), ['\uFFFD\uFFFDA', 'café', 'x'])
})

t.test('an oversized event is a fatal protocol error, with the buffer bounded', async (t) => {
  let calls = 0
  const { url } = await startApp(t, (app) => {
    // A line with no end: the client must not buffer it forever.
    app.get('/huge', (_req, reply) => { calls++; raw(reply, ['data: ok\n\n', 'data: ' + 'x'.repeat(5000), 'y'.repeat(5000)]) })
  })
  const stream = connect(`${url}/huge`, { maxEventSize: 4096 })
  const got: string[] = []
  const error = await (async () => { for await (const e of stream) got.push(e.data) })().catch((e: unknown) => e)
  t.same(got, ['ok'])
  t.ok(error instanceof SseProtocolError)
  t.match((error as Error).message, 'exceeded 4096 characters')
  t.equal(calls, 1, 'not retried')
})

t.test('a body that ends inside an event drops that event', async (t) => {
  const { url } = await startApp(t, (app) => {
    app.get('/partial', (_req, reply) => raw(reply, ['data: whole\n\n', 'id: 9\ndata: never finished\n']))
  })
  const stream = connect(`${url}/partial`, { onEnd: 'stop' })
  t.same((await take(stream)).map((e) => e.data), ['whole'])
  t.equal(stream.lastEventId, undefined)
})

t.test('backpressure: the body is read only as the consumer pulls', async (t) => {
  let produced = 0
  const { url } = await startApp(t, (app) => {
    app.get('/fast', (_req, reply) => reply.sse(async function * ({ signal }) {
      for (let i = 1; i <= 100_000 && !signal.aborted; i++) {
        produced = i
        yield { id: i, data: 'x'.repeat(1000) }
      }
    }))
  })
  let reads = 0
  let bytes = 0
  const stream = connect(`${url}/fast`, {
    // Count the reads the client makes, through a pull-only stream (no read-ahead).
    fetch: async (request) => {
      const response = await fetch(request)
      const reader = response.body!.getReader()
      const body = new ReadableStream<Uint8Array>({
        async pull (controller) {
          reads++
          const { done, value } = await reader.read()
          if (done) controller.close()
          else { bytes += value.byteLength; controller.enqueue(value) }
        },
        cancel: (reason) => reader.cancel(reason)
      }, { highWaterMark: 0 })
      return new Response(body, response)
    }
  })
  const first = await take(stream, 3)
  t.same(first.map((e) => e.id), ['1', '2', '3'])
  const readsAfterThree = reads
  // Give the event loop many turns: no read may happen without a pull.
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve))
  t.equal(reads, readsAfterThree, 'no read while the consumer holds')
  t.ok(bytes < 1_000_000, `the client took ${bytes} bytes, not the whole stream`)
  t.ok(produced < 100_000, `the server is held back too (${produced} produced)`)
  stream.close()
  await within(stream.closed, 5000, 'close')
})

t.test('with onEvent, a returned promise holds the next read', async (t) => {
  const { url } = await startApp(t, (app) => {
    app.get('/three', (_req, reply) => reply.sse([{ data: '1' }, { data: '2' }, { event: 'end', data: '3' }]))
  })
  const log: string[] = []
  const handled = deferred()
  const stream = connect(`${url}/three`, {
    terminalEvent: 'end',
    onEvent: async (event) => {
      log.push(`start ${event.data}`)
      await new Promise((resolve) => setImmediate(resolve))
      log.push(`done ${event.data}`)
      if (event.data === '3') handled.resolve()
    }
  })
  t.same(await stream.closed, { reason: 'end' })
  // The terminal event closes the stream as it is handed over; its handler still runs.
  await within(handled.promise, 5000, 'the last handler')
  t.same(log, ['start 1', 'done 1', 'start 2', 'done 2', 'start 3', 'done 3'])
})

t.test("an onEvent that throws closes the stream as fatal, with its error, and sends no new request", async (t) => {
  let calls = 0
  const { url } = await startApp(t, (app) => {
    app.get('/x', (_req, reply) => { calls++; return reply.sse([{ data: '1' }, { data: '2' }]) })
  })
  const bug = new Error('consumer bug')
  const stream = connect(`${url}/x`, { onEvent: () => { throw bug } })
  t.same(await stream.closed, { reason: 'fatal', error: bug })
  t.equal(calls, 1)
})

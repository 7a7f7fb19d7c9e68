// The advertised heartbeat: a stream whose heartbeat is on opens with the comment line
// `: heartbeat=<ms>` (after `retry: <ms>` when a retry is set, no blank line), so that a client
// can derive its idle timeout from it. It carries the stream's own interval, is absent when the
// heartbeat is off, and real clients (the npm `eventsource` client, Chromium's EventSource and
// fetch-event-source) dispatch nothing for it.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { EventSource } from 'eventsource'
import sse, { type SsePluginOptions, type SseSink } from '../index.js'
import { vendorRoutes } from '../examples/demo.js'
import { openPage, useChromium } from './helpers/browser.js'
import { deferred, get, listen, openStream, within } from './helpers/http.js'
import { build, isEnd } from './helpers/stream.js'

// The functions passed to page.evaluate() run in the page, where this global exists.
declare const window: any

const chromium = useChromium()

async function app (t: Test, options?: SsePluginOptions): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse, options ?? {})
  return app
}

t.test('the line is the first thing on the wire, sent with the head before any event', async (t) => {
  const server = await app(t)
  const release = deferred()
  server.get('/', (_req, reply) => reply.sse(async function * () {
    await release.promise
    yield { id: 1, data: 'x' }
  }))
  const client = openStream(await listen(server) + '/')
  t.equal(await client.waitFor('\n'), ': heartbeat=15000\n', 'the default interval, alone, while the source waits')
  release.resolve()
  t.equal(await client.ended, ': heartbeat=15000\nid: 1\ndata: x\n\n', 'no blank line of its own')
})

t.test('it follows the retry line when a retry is set', async (t) => {
  const server = await app(t, { retry: 3000, heartbeat: 2000 })
  server.get('/plugin', (_req, reply) => reply.sse([{ data: 'x' }]))
  server.get('/call', (_req, reply) => reply.sse([{ data: 'x' }], { retry: 4000 }))
  server.get('/sink', (_req, reply) => {
    const sink = reply.sseSink({ retry: 5000, heartbeat: 6000 })
    void sink.send({ data: 'y' })
    sink.end()
  })
  const url = await listen(server)
  t.equal((await get(url + '/plugin')).body, 'retry: 3000\n: heartbeat=2000\ndata: x\n\n')
  t.equal((await get(url + '/call')).body, 'retry: 4000\n: heartbeat=2000\ndata: x\n\n')
  t.equal((await get(url + '/sink')).body, 'retry: 5000\n: heartbeat=6000\ndata: y\n\n')
  const injected = await server.inject('/plugin')
  t.equal(injected.body, 'retry: 3000\n: heartbeat=2000\ndata: x\n\n', 'through inject() alike')
})

t.test('it carries the stream\'s own interval, given per call', async (t) => {
  const server = await app(t, { heartbeat: 20_000 })
  server.get('/plugin', (_req, reply) => reply.sse([{ data: 'x' }]))
  server.get('/source', (_req, reply) => reply.sse([{ data: 'x' }], { heartbeat: 2500 }))
  server.get('/sink', (_req, reply) => {
    const sink: SseSink = reply.sseSink({ heartbeat: 7 })
    void sink.send({ data: 'y' })
    sink.end()
  })
  // The interval advertised is the one the stream keeps: a ping follows after 30 ms of silence.
  server.get('/kept', (_req, reply) => reply.sse(async function * ({ signal }) {
    yield { data: 'z' }
    await new Promise((resolve) => signal.addEventListener('abort', resolve))
  }, { heartbeat: 30 }))
  const url = await listen(server)
  t.equal((await get(url + '/plugin')).body, ': heartbeat=20000\ndata: x\n\n')
  t.equal((await get(url + '/source')).body, ': heartbeat=2500\ndata: x\n\n')
  t.equal((await get(url + '/sink')).body, ': heartbeat=7\ndata: y\n\n')
  const kept = openStream(url + '/kept')
  t.equal(await kept.waitFor(': ping\n'), ': heartbeat=30\ndata: z\n\n: ping\n')
  kept.destroy()

  const off = await app(t, { heartbeat: false })
  off.get('/', (_req, reply) => reply.sse([{ data: 'x' }], { heartbeat: 1000 }))
  t.equal((await get(await listen(off) + '/')).body, ': heartbeat=1000\ndata: x\n\n', 'on per call, off plugin-wide')
})

t.test('none when the heartbeat is off', async (t) => {
  for (const heartbeat of [false, 0] as const) {
    const off = await app(t, { heartbeat })
    off.get('/', (_req, reply) => reply.sse([{ data: 'x' }]))
    off.get('/retry', (_req, reply) => reply.sse([{ data: 'x' }], { retry: 1000 }))
    const url = await listen(off)
    t.equal((await get(url + '/')).body, 'data: x\n\n', `plugin-wide ${heartbeat}`)
    t.equal((await get(url + '/retry')).body, 'retry: 1000\ndata: x\n\n', `plugin-wide ${heartbeat}, with a retry`)
  }
  const on = await app(t)
  on.get('/false', (_req, reply) => reply.sse([{ data: 'x' }], { heartbeat: false }))
  on.get('/zero', (_req, reply) => {
    const sink = reply.sseSink({ heartbeat: 0 })
    void sink.send({ data: 'x' })
    sink.end()
  })
  const url = await listen(on)
  t.equal((await get(url + '/false')).body, 'data: x\n\n', 'false per call')
  t.equal((await get(url + '/zero')).body, 'data: x\n\n', '0 per call, on a sink')
})

t.test('a response with no body (HEAD, 204, 304) is not counted as having sent it', async (t) => {
  // Node drops every write to such a response: the stream-end log line must say 0 bytes.
  const { app: server, logs } = await build(t, { retry: 1000 })
  server.get('/', (req, reply) => {
    const status = Number((req.query as { status?: string }).status ?? 200)
    return reply.code(status).sse([{ data: 'x' }])
  })
  const url = await listen(server)
  for (const [method, status] of [['HEAD', 200], ['GET', 204], ['GET', 304]] as const) {
    const res = await get(`${url}/?status=${status}`, { method })
    t.equal(res.status, status, `${method} ${status}`)
    t.equal(res.body, '', `${method} ${status}: no body`)
  }
  await logs.waitFor(() => logs.lines.filter(isEnd).length === 3)
  t.same(logs.lines.filter(isEnd).map((l) => [l.sse.reason, l.sse.events, l.sse.bytes]), [['done', 0, 0], ['done', 0, 0], ['done', 0, 0]])
})

t.test('the npm eventsource client dispatches nothing for it', async (t) => {
  const server = await app(t)
  server.get('/', (_req, reply) => reply.sse([{ data: 'first' }, { event: 'end', data: 'bye' }]))
  const url = await listen(server)
  t.equal((await get(url + '/')).body, ': heartbeat=15000\ndata: first\n\nevent: end\ndata: bye\n\n', 'the line is on the wire')
  const es = new EventSource(url + '/')
  t.teardown(() => es.close())
  // Every event the client dispatches, whatever its type, goes through dispatchEvent().
  const dispatched: Array<{ type: string, data?: string, lastEventId?: string }> = []
  const dispatch = es.dispatchEvent.bind(es)
  es.dispatchEvent = (event: Event): boolean => {
    const e = event as unknown as { type: string, data?: string, lastEventId?: string }
    dispatched.push(e.type === 'open' ? { type: 'open' } : { type: e.type, data: e.data, lastEventId: e.lastEventId })
    return dispatch(event)
  }
  const ended = deferred()
  es.addEventListener('end', () => { es.close(); ended.resolve() })
  await within(ended.promise, 5000, 'the end event')
  t.same(dispatched, [
    { type: 'open' },
    { type: 'message', data: 'first', lastEventId: '' },
    { type: 'end', data: 'bye', lastEventId: '' }
  ])
})

t.test('in Chromium', { skip: chromium.skip, timeout: 30_000 }, async (t) => {
  async function page (t: Test): Promise<import('playwright-core').Page> {
    const server = await app(t)
    await server.register(vendorRoutes)
    server.get('/blank', (_req, reply) => reply.type('text/html; charset=utf-8').send('<!doctype html><title>blank</title>'))
    server.get('/stream', (_req, reply) => reply.sse([{ data: 'first' }, { id: '7', data: 'second' }, { event: 'end', data: 'bye' }]))
    // A control written by hand: the same comment followed by a blank line.
    server.get('/blank-line', (_req, reply) => {
      reply.hijack()
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
      reply.raw.end(': heartbeat=15000\n\ndata: first\n\nevent: end\ndata: bye\n\n')
    })
    const url = await listen(server)
    const { context, page } = await openPage(chromium.browser(), url + '/blank')
    t.teardown(() => context.close())
    return page
  }

  t.test('native EventSource dispatches nothing for it', async (t) => {
    const p = await page(t)
    t.equal(await p.evaluate(async () => (await window.fetch('/stream')).text()),
      ': heartbeat=15000\ndata: first\n\nid: 7\ndata: second\n\nevent: end\ndata: bye\n\n', 'the line is on the wire')
    const got = await p.evaluate(() => new Promise<{ events: Array<{ type: string, data?: string, id?: string }>, state: number }>((resolve) => {
      const es = new window.EventSource('/stream')
      const events: Array<{ type: string, data?: string, id?: string }> = []
      es.onopen = () => events.push({ type: 'open' })
      es.onmessage = (e: any) => events.push({ type: e.type, data: e.data, id: e.lastEventId })
      es.onerror = () => events.push({ type: 'error' })
      es.addEventListener('end', (e: any) => {
        events.push({ type: e.type, data: e.data, id: e.lastEventId })
        const state = es.readyState
        es.close()
        resolve({ events, state })
      })
    }))
    t.same(got, {
      events: [
        { type: 'open' },
        { type: 'message', data: 'first', id: '' },
        { type: 'message', data: 'second', id: '7' },
        { type: 'end', data: 'bye', id: '7' }
      ],
      state: 1
    }, 'open, then the events alone, and the connection still OPEN')
  })

  t.test('fetch-event-source fires no message for it', async (t) => {
    const p = await page(t)
    const run = (path: string): Promise<Array<{ event: string, id: string, data: string }>> => p.evaluate(async (path) => {
      const module = '/vendor/fetch-event-source/index.js'
      const { fetchEventSource } = await import(module)
      const messages: Array<{ event: string, id: string, data: string }> = []
      const ctrl = new AbortController()
      await fetchEventSource(path, {
        signal: ctrl.signal,
        onmessage (msg: { event: string, id: string, data: string }) {
          messages.push({ event: msg.event, id: msg.id, data: msg.data })
          if (msg.event === 'end') ctrl.abort()
        },
        onclose () { throw new Error('closed before the end event') },
        onerror (err: unknown) { throw err }
      })
      return messages
    }, path)
    t.same(await run('/stream'), [
      { event: '', id: '', data: 'first' },
      { event: '', id: '7', data: 'second' },
      { event: 'end', id: '', data: 'bye' }
    ], 'the events alone')
    // The check can fail: with a blank line after it, the same comment fires an empty message.
    t.same(await run('/blank-line'), [
      { event: '', id: '', data: '' },
      { event: '', id: '', data: 'first' },
      { event: 'end', id: '', data: 'bye' }
    ], 'control: a blank line makes an empty message')
  })
})

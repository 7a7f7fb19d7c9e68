// Real-browser tests: Debian's Chromium, driven by playwright-core, against real servers on
// 127.0.0.1:0. Native EventSource, the seed's fetch-event-source client, and the demo page.
import type { Socket } from 'node:net'
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Page } from 'playwright-core'
import sse from '../index.js'
import { buildDemo, pageRoutes, seedRoutes, vendorRoutes } from '../examples/demo.js'
import { openPage, useChromium } from './helpers/browser.js'
import { seededRandom as random } from './helpers/random.js'

// The functions passed to page.evaluate() run in the page, where these globals exist.
declare const EventSource: any
declare const MessageEvent: any
declare const document: any
declare const window: any

const chromium = useChromium()

/** A browser test: skipped (with the notice already printed) when Chromium is missing. */
function browserTest (name: string, fn: (t: Test) => Promise<void>, todo?: string): void {
  // A per-test bound, so that an event that never comes fails its own test quickly.
  t.test(name, { skip: chromium.skip, timeout: 20_000, ...(todo === undefined ? {} : { todo }) }, fn)
}

/** One request as the server saw it. */
interface Seen {
  method: string
  url: string
  lastEventId: string | undefined
  contentType: string | undefined
  body: unknown
  at: number
}

/**
 * Starts an app with the plugin from source, the demo's vendor and page routes, a blank page and
 * the test's own routes; records every routed request; opens a browser page on its /blank.
 */
async function setup (t: Test, routes: (app: FastifyInstance) => void | Promise<void>) {
  const app = Fastify()
  const seen: Seen[] = []
  await app.register(sse)
  app.addHook('preHandler', async (request) => {
    seen.push({
      method: request.method,
      url: request.url,
      lastEventId: request.headers['last-event-id'] as string | undefined,
      contentType: request.headers['content-type'],
      body: request.body,
      at: performance.now()
    })
  })
  app.get('/blank', (_request, reply) => reply.type('text/html; charset=utf-8').send('<!doctype html><meta charset="utf-8"><title>blank</title>'))
  await app.register(vendorRoutes)
  await app.register(pageRoutes)
  await routes(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const url = `http://127.0.0.1:${port}`
  const { context, page, errors } = await openPage(chromium.browser(), `${url}/blank`)
  t.teardown(async () => {
    await context.close()
    await app.close()
  })
  return { app, url, page, seen, errors }
}

/** Holds the test for `ms`: only to show that something does NOT happen (no request follows). */
function quietPeriod (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Runs the seed's client (examples/public/seed-client.js) in the page against `path`. */
async function runSeedClient (page: Page, path: string) {
  return page.evaluate(async ({ path }) => {
    const module = '/seed-client.js'
    const { runSeedClient } = await import(module)
    const events: Array<{ event: string, id: string, data: string }> = []
    const states: string[] = []
    const { ctrl, done } = runSeedClient(path, {
      onEvent: (msg: any) => events.push({ event: msg.event, id: msg.id, data: msg.data }),
      onState: (state: string, err?: Error) => states.push(err === undefined ? state : `${state}: ${err.message}`)
    })
    // An upper bound, so that a client retrying forever fails the test instead of hanging it.
    const timer = setTimeout(() => ctrl.abort(), 10_000)
    let outcome: string
    try {
      await done
      outcome = 'resolved'
    } catch (err: any) {
      outcome = `rejected: ${err.constructor.name}: ${err.message}`
    }
    clearTimeout(timer)
    return { events, states, outcome }
  }, { path })
}

const TIME = /^The time is \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/

/** The seed's ids are hub positions of one run: `<ms>-<offset>`, offsets 1 to 6, times never decreasing. */
function checkPositions (t: Test, ids: string[], prefix = '') {
  const positions = ids.map((id) => /^(\d+)-(\d+)$/.exec(id.slice(prefix.length)))
  t.ok(ids.every((id) => id.startsWith(prefix)) && positions.every((p) => p !== null), `positions: ${ids.join(' ')}`)
  t.same(positions.map((p) => Number(p?.[2])), [1, 2, 3, 4, 5, 6], 'offsets 1 to 6')
  const times = positions.map((p) => Number(p?.[1]))
  t.ok(times.every((time, i) => i === 0 || time >= times[i - 1]!), 'times never decrease')
}

browserTest('native EventSource: the seed sequence arrives in order with its names, ids and data', async (t) => {
  const { page, errors } = await setup(t, async (app) => { await app.register(seedRoutes, { interval: 20 }) })
  const events = await page.evaluate(() => new Promise<Array<{ type: string, id: string, data: string }>>((resolve, reject) => {
    const es = new EventSource('/sse')
    const events: Array<{ type: string, id: string, data: string }> = []
    const record = (e: any) => events.push({ type: e.type, id: e.lastEventId, data: e.data })
    es.onmessage = record
    es.addEventListener('error', (e: any) => {
      // The seed's named `error` events are MessageEvents; a connection error is a plain Event.
      if (e instanceof MessageEvent) return record(e)
      es.close()
      reject(new Error(`connection error before the end event; readyState ${es.readyState}`))
    })
    es.addEventListener('end', (e: any) => {
      record(e)
      es.close()
      resolve(events)
    })
  }))
  t.same(events.map((e) => e.type), ['error', 'error', 'error', 'message', 'message', 'end'])
  checkPositions(t, events.map((e) => e.id))
  t.same(events.slice(0, 3).map((e) => e.data), Array(3).fill('system has some error.'))
  t.match(events[3]!.data, TIME)
  t.match(events[4]!.data, TIME)
  t.equal(events[5]!.data, 'The end')

  // The resume URL first, then every frame, the final `end` included, carries retry 15000 and a
  // hub position as its id. The hub's end of the stream sends nothing after `end`.
  const body: string = await page.evaluate(async () => (await window.fetch('/sse')).text())
  const frames = body.split('\n\n').filter((f) => f !== '')
  t.equal(frames.length, 6)
  t.match(frames[0], /^: heartbeat=15000\n: resume=\/sse\/[0-9a-f-]{36}\nevent: error\n/)
  for (const frame of frames.slice(0, 6)) {
    t.match(frame, /^retry: 15000$/m)
    t.match(frame, /^id: \d+-[1-6]$/m)
  }
  t.match(frames[5], /^event: end\nretry: 15000\ndata: The end\nid: \d+-6$/)
  t.same(errors, [])
})

browserTest('native EventSource: reconnects after retry with Last-Event-ID and resumes with no gap or duplicate', async (t) => {
  const ends: number[] = []
  const { page, seen } = await setup(t, (app) => {
    app.get('/resume', (request, reply) => {
      const last = request.lastEventId
      const start = last === undefined ? 1 : Number(last) + 1
      if (start > 9) return reply.code(204).send()
      return reply.sse(function * () {
        for (let n = start; n < start + 3; n++) yield { id: n, data: `event ${n}` }
      }, { retry: 500 }).then(() => { ends.push(performance.now()) })
    })
  })
  const result = await page.evaluate(() => new Promise<{ messages: Array<{ id: string, data: string }>, states: number[] }>((resolve) => {
    const es = new EventSource('/resume')
    const messages: Array<{ id: string, data: string }> = []
    const states: number[] = []
    es.onmessage = (e: any) => messages.push({ id: e.lastEventId, data: e.data })
    es.onerror = () => {
      states.push(es.readyState)
      if (es.readyState === EventSource.CLOSED) resolve({ messages, states })
    }
  }))
  const expected = Array.from({ length: 9 }, (_, i) => ({ id: String(i + 1), data: `event ${i + 1}` }))
  t.same(result.messages, expected, 'events 1..9, each once, in order')
  t.same(result.states, [0, 0, 0, 2], 'CONNECTING after each end, CLOSED after the 204')
  const requests = seen.filter((s) => s.url === '/resume')
  t.same(requests.map((s) => s.lastEventId), [undefined, '3', '6', '9'], 'Last-Event-ID on each reconnect')
  t.equal(ends.length, 3)
  for (let i = 0; i < 3; i++) {
    const gap = requests[i + 1]!.at - ends[i]!
    // retry: 500 was applied: not much sooner (the server's clock starts before the browser's),
    // and well before Chromium's default of 3000 ms.
    t.ok(gap >= 400 && gap < 2500, `reconnect ${i + 1} came ${Math.round(gap)} ms after the end`)
  }
})

browserTest('native EventSource: 204 stops reconnection for good', async (t) => {
  let streams = 0
  const { page, seen } = await setup(t, (app) => {
    app.get('/once', (_request, reply) => {
      if (streams++ > 0) return reply.code(204).send()
      return reply.sse([{ id: 1, data: 'only' }], { retry: 500 })
    })
  })
  const result = await page.evaluate(() => new Promise<{ data: string[], errors: number }>((resolve) => {
    const es = new EventSource('/once')
    const data: string[] = []
    let errors = 0
    es.onmessage = (e: any) => data.push(e.data)
    es.onerror = () => {
      errors++
      if (es.readyState === EventSource.CLOSED) {
        window.es = es
        resolve({ data, errors })
      }
    }
  }))
  t.same(result, { data: ['only'], errors: 2 })
  t.equal(seen.filter((s) => s.url === '/once').length, 2, 'the stream, then the 204')
  // Nothing can be awaited for "no further request": watch for three retry periods.
  await quietPeriod(1500)
  t.equal(seen.filter((s) => s.url === '/once').length, 2, 'no request after the 204')
  t.equal(await page.evaluate(() => window.es.readyState), 2, 'still CLOSED')
})

browserTest('native EventSource: a named event with no data is dispatched', async (t) => {
  const { page } = await setup(t, (app) => {
    app.get('/named', (_request, reply) => reply.sse([{ id: 'a', event: 'end' }]))
  })
  const got = await page.evaluate(() => new Promise<{ type: string, data: string, id: string }>((resolve) => {
    const es = new EventSource('/named')
    es.addEventListener('end', (e: any) => {
      es.close()
      resolve({ type: e.type, data: e.data, id: e.lastEventId })
    })
  }))
  t.same(got, { type: 'end', data: '', id: 'a' })
  const body: string = await page.evaluate(async () => (await window.fetch('/named')).text())
  t.equal(body, ': heartbeat=15000\nevent: end\nid: a\ndata: \n\n')
})

const PIECES = ['a', 'Z', '0', ' ', '  ', ':', ': ', '\t', '\n', '\n\n', ' lead', 'data: x', 'id: 9', 'event: y', 'retry: 1',
  'é', '…', '中文', '🦄', '\u2028', '\u0085', '\uFEFF', '\0', '"{}"', '\\n']
const NAMES = [undefined, '', 'message', 'tick', 'a:b', 'ünï 🦄', 'x y']

browserTest('native EventSource: 200 random events with unicode, multi-line data, colons and leading spaces round-trip exactly', async (t) => {
  const seed = Number(process.env.SSE_SEED ?? Date.now() % 2 ** 31)
  t.comment(`seed ${seed} (repeat with SSE_SEED=${seed})`)
  const next = random(seed)
  const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!
  const events = Array.from({ length: 200 }, (_, i) => {
    const data = Array.from({ length: Math.floor(next() * 12) }, () => pick(PIECES)).join('')
    const ids = [String(i + 1), `é…${i + 1}`, `id:${i + 1}`, `🦄 ${i + 1}`]
    return { id: pick(ids), event: pick(NAMES), data }
  })
  t.ok(events.some((e) => e.data.startsWith(' ')), 'some data starts with a space')
  t.ok(events.some((e) => e.data.includes('\n')), 'some data spans lines')
  const { page } = await setup(t, (app) => {
    app.get('/random', (_request, reply) => reply.sse([...events, { event: 'done', data: 'done' }]))
  })
  const names = NAMES.filter((n): n is string => n !== undefined && n !== '')
  const got = await page.evaluate((names) => new Promise<Array<{ type: string, id: string, data: string }>>((resolve) => {
    const es = new EventSource('/random')
    const got: Array<{ type: string, id: string, data: string }> = []
    for (const name of names) es.addEventListener(name, (e: any) => got.push({ type: e.type, id: e.lastEventId, data: e.data }))
    es.addEventListener('done', () => {
      es.close()
      resolve(got)
    })
  }), names)
  const expected = events.map((e) => ({ type: e.event === undefined || e.event === '' ? 'message' : e.event, id: e.id, data: e.data }))
  t.equal(got.length, 200)
  t.same(got, expected)
})

browserTest('fetch-event-source (seed code): the POST with a JSON body receives the seed events and the onopen check passes', async (t) => {
  const { page, seen } = await setup(t, async (app) => { await app.register(seedRoutes, { interval: 20 }) })
  const result = await runSeedClient(page, '/sse')
  t.equal(result.outcome, 'resolved', 'stopped by the end event')
  t.same(result.states, ['open', 'ended'], 'onopen passed, no retry')
  t.same(result.events.map((e) => e.event), ['error', 'error', 'error', '', '', 'end'])
  checkPositions(t, result.events.map((e) => e.id))
  t.match(result.events[3]!.data, TIME)
  t.equal(result.events[5]!.data, 'The end')
  const requests = seen.filter((s) => s.url === '/sse')
  t.equal(requests.length, 1)
  t.equal(requests[0]!.method, 'POST')
  t.equal(requests[0]!.contentType, 'application/json')
  t.same(requests[0]!.body, { foo: 'bar' })
})

browserTest('fetch-event-source (seed code): heartbeats produce no empty message', async (t) => {
  let pings = 0
  const { page } = await setup(t, (app) => {
    app.post('/beats', (_request, reply) => {
      // Watch the bytes the plugin writes to the socket (as HTTP/1.1 chunks of its own), to know
      // when two heartbeats went out.
      const socket = reply.raw.socket as Socket & { write: (...args: unknown[]) => boolean }
      const write = socket.write
      let seenTwo: () => void
      const twoPings = new Promise<void>((resolve) => { seenTwo = resolve })
      socket.write = function (this: Socket, ...args: unknown[]) {
        // A heartbeat is a comment-only frame: one line starting with a colon, in a chunk of its own.
        if (/^[0-9a-f]+\r\n:[^\n]*\n\r\n$/.test(String(args[0])) && ++pings === 2) seenTwo()
        return (write as (...a: unknown[]) => boolean).apply(this, args)
      }
      return reply.sse(async function * () {
        yield { id: 1, data: 'before' }
        await twoPings
        yield { id: 2, data: 'after' }
        yield { event: 'end' }
      }, { heartbeat: 50 })
    })
  })
  const result = await runSeedClient(page, '/beats')
  t.ok(pings >= 2, `${pings} heartbeats were sent`)
  t.same(result.events, [
    { event: '', id: '1', data: 'before' },
    { event: '', id: '2', data: 'after' },
    { event: 'end', id: '', data: '' }
  ], 'no empty message between the events')
  t.equal(result.outcome, 'resolved')
})

browserTest('fetch-event-source (seed code): a 4xx is fatal and stops the client', async (t) => {
  const { page, seen } = await setup(t, (app) => {
    app.post('/forbidden', (_request, reply) => reply.code(403).send({ error: 'Forbidden' }))
  })
  const result = await runSeedClient(page, '/forbidden')
  t.equal(result.outcome, 'rejected: FatalError: HTTP 403')
  t.same(result.states, ['failed: HTTP 403'])
  // The client's promise settled, so its retry timer was cleared: no request can follow.
  t.equal(seen.filter((s) => s.url === '/forbidden').length, 1)
})

browserTest('fetch-event-source (seed code): a FatalError event stops the client and closes the connection', async (t) => {
  let ended: Promise<void> | undefined
  const { page, seen } = await setup(t, (app) => {
    app.post('/fatal', (_request, reply) => {
      ended = reply.sse(async function * ({ signal }) {
        yield { event: 'FatalError', data: 'the server gave up' }
        await new Promise((resolve) => signal.addEventListener('abort', resolve))
      })
      return ended
    })
  })
  const result = await runSeedClient(page, '/fatal')
  t.equal(result.outcome, 'rejected: FatalError: the server gave up')
  t.same(result.events, [{ event: 'FatalError', id: '', data: 'the server gave up' }])
  t.same(result.states, ['open', 'failed: the server gave up'])
  t.equal(seen.filter((s) => s.url === '/fatal').length, 1)
  // The client dropped the connection, which ended the server's stream.
  await Promise.race([ended, new Promise((_resolve, reject) => setTimeout(() => reject(new Error('the stream did not end')), 5000))])
})

browserTest('fetch-event-source (seed code): a 5xx is retriable and the client retries', async (t) => {
  let calls = 0
  const { page, seen } = await setup(t, (app) => {
    app.post('/flaky', (_request, reply) => {
      if (calls++ === 0) return reply.code(503).send({ error: 'Service Unavailable' })
      return reply.sse([{ id: 1, data: 'hello' }, { event: 'end' }])
    })
  })
  const result = await runSeedClient(page, '/flaky')
  t.equal(result.outcome, 'resolved')
  t.same(result.states, ['retrying: HTTP 503, content-type application/json; charset=utf-8', 'open', 'ended'])
  t.same(result.events.map((e) => e.data), ['hello', ''])
  t.equal(seen.filter((s) => s.url === '/flaky').length, 2)
})

browserTest('fetch-event-source (seed code): a clean close is retried with last-event-id and the same POST body', async (t) => {
  const { page, seen } = await setup(t, (app) => {
    app.post('/closes', (request, reply) => {
      if (request.lastEventId === undefined) return reply.sse([{ id: 1, retry: 500, data: 'first' }])
      return reply.sse([{ id: Number(request.lastEventId) + 1, data: 'second' }, { event: 'end' }])
    })
  })
  const result = await runSeedClient(page, '/closes')
  t.equal(result.outcome, 'resolved')
  t.same(result.states, ['open', 'retrying: the server closed the stream', 'open', 'ended'])
  t.same(result.events.map((e) => [e.id, e.data]), [['1', 'first'], ['2', 'second'], ['', '']])
  const requests = seen.filter((s) => s.url === '/closes')
  t.same(requests.map((s) => s.lastEventId), [undefined, '1'])
  t.same(requests.map((s) => s.body), [{ foo: 'bar' }, { foo: 'bar' }])
  t.ok(requests[1]!.at - requests[0]!.at >= 400, 'waited for retry: 500')
})

// The `retry` option's first frame is `retry: <ms>\n` with no blank line: a blank line would make
// fetch-event-source fire an empty message (its issue #15, as for `: ping\n\n`).
browserTest('fetch-event-source (seed code): the retry option gives no empty message', async (t) => {
  const { page } = await setup(t, (app) => {
    app.post('/retry-option', (_request, reply) => reply.sse([{ id: 1, data: 'first' }, { event: 'end' }], { retry: 500 }))
  })
  const result = await runSeedClient(page, '/retry-option')
  t.equal(result.outcome, 'resolved')
  t.same(result.events.map((e) => [e.event, e.id, e.data]), [['', '1', 'first'], ['end', '', '']])
})

browserTest('demo page: renders both seed clients and the ticker in the DOM', async (t) => {
  const app = buildDemo({
    interval: 150,
    ticker: { every: 40, perConnection: 3, limit: 9, retry: 500, heartbeat: 100, idle: 350 }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const { context, page, errors } = await openPage(chromium.browser(), `http://127.0.0.1:${port}/`, { width: 1280, height: 1000 })
  t.teardown(async () => {
    await context.close()
    await app.close()
  })
  await page.waitForFunction(() => {
    const state = (id: string) => document.getElementById(id).dataset.state
    return state('seed-native') === 'ended' && state('seed-fetch') === 'ended' &&
      state('ticker') === 'stopped' && state('wire') === 'stopped'
  })
  const rows = (id: string) => page.$$eval(`#${id} .events li:not(.note)`, (items: any[]) =>
    items.map((li) => Array.from(li.children as ArrayLike<any>, (span) => span.textContent)))
  const notes = (id: string) => page.$$eval(`#${id} .events li.note`, (items: any[]) => items.map((li) => li.textContent))
  const text = (selector: string) => page.$eval(selector, (el: any) => el.textContent)

  for (const id of ['seed-native', 'seed-fetch']) {
    const seed = await rows(id)
    t.same(seed.map((r) => r[0]), ['error', 'error', 'error', 'message', 'message', 'end'], `${id}: names`)
    checkPositions(t, seed.map((r) => r[1]!), '#')
    t.same(seed.slice(0, 3).map((r) => r[2]), Array(3).fill('system has some error.'), `${id}: error data`)
    t.match(seed[3]![2], TIME)
    t.equal(seed[5]![2], 'The end')
    t.equal(await text(`#${id} .reconnects`), '0')
  }
  t.same(await notes('seed-fetch'), ['onopen: content-type === "text/event-stream" ✓'])

  const ticker = await rows('ticker')
  t.same(ticker.filter((r) => r[0] === 'tick').map((r) => r[1]), ['#1', '#2', '#3', '#4', '#5', '#6', '#7', '#8', '#9'],
    'ticks 1..9, each once, in order')
  t.same(ticker.filter((r) => r[0] === 'resume').map((r) => r[2]), [
    'no Last-Event-ID: starting at 1',
    'Last-Event-ID 3: resuming at 4',
    'Last-Event-ID 6: resuming at 7'
  ])
  t.equal(await text('#ticker .reconnects'), '3')
  t.equal(await text('#ticker .last-id'), '9')

  const raw = await text('#wire .raw')
  t.match(raw, /^: ping$/m, 'the heartbeat is on the wire')
  t.match(raw, /Last-Event-ID: 9\)\n< 204 No Content/, 'the last reconnect got 204')
  t.equal((raw.match(/^< 200 OK text\/event-stream$/gm) ?? []).length, 3)

  // The broadcast panel, the README screenshot and the phone-width check: test/browser-hub.test.ts.
  t.same(errors, [])
})

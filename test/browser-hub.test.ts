// The demo's hub streams in a real browser: Debian's Chromium, driven by playwright-core, against
// real servers on 127.0.0.1:0. The server drops a connection (POST /drop/:client destroys its
// socket, as a network failure would) and the client resumes:
// - the seed's stream, whose work runs in app.sse.pipe(): native EventSource on GET /sse/:key,
//   and the seed's fetch-event-source front end repeating its POST with an Idempotency-Key;
// - the demo page's broadcast panel: two EventSources on one topic, publish, drop, publish.
// Each time, every event arrives exactly once, in order, and the work never starts again.
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Page } from 'playwright-core'
import sse from '../index.js'
import { buildDemo, dropRoutes, pageRoutes, seedRoutes, vendorRoutes } from '../examples/demo.js'
import { openPage, useChromium } from './helpers/browser.js'

// The functions passed to page.evaluate() run in the page, where these globals exist.
declare const EventSource: any
declare const MessageEvent: any
declare const document: any
declare const window: any

const chromium = useChromium()

function browserTest (name: string, fn: (t: Test) => Promise<void>): void {
  t.test(name, { skip: chromium.skip, timeout: 30_000 }, fn)
}

/** One request as the server saw it; `wall` is Date.now(), the clock of the hub's ids. */
interface Seen {
  method: string
  url: string
  lastEventId: string | undefined
  idempotencyKey: string | undefined
  body: unknown
  wall: number
}

function recordRequests (app: FastifyInstance): Seen[] {
  const seen: Seen[] = []
  app.addHook('preHandler', async (request) => {
    seen.push({
      method: request.method,
      url: request.url,
      lastEventId: request.headers['last-event-id'] as string | undefined,
      idempotencyKey: request.headers['idempotency-key'] as string | undefined,
      body: request.body,
      wall: Date.now()
    })
  })
  return seen
}

/** The plugin from source, the demo's seed, drop, vendor and page routes, and a page on /blank. */
async function setup (t: Test) {
  const app = Fastify()
  const starts: string[] = []
  await app.register(sse)
  const seen = recordRequests(app)
  app.get('/blank', (_request, reply) => reply.type('text/html; charset=utf-8').send('<!doctype html><meta charset="utf-8"><title>blank</title>'))
  await app.register(dropRoutes)
  await app.register(vendorRoutes)
  await app.register(pageRoutes)
  // The seed's six events 200 ms apart; a dropped client is back after retry: 500 ms, by which
  // time two more events were stored while it was away.
  await app.register(seedRoutes, { interval: 200, retry: 500, onStart: (key: string) => starts.push(key) })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const { context, page, errors } = await openPage(chromium.browser(), `http://127.0.0.1:${port}/blank`)
  t.teardown(async () => {
    await context.close()
    await app.close()
  })
  return { page, seen, starts, errors }
}

const TIME = /^The time is \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/

/** Hub positions `<ms>-<offset>` of one run of the seed: offsets 1 to 6, times never decreasing. */
function positions (t: Test, ids: string[]): number[] {
  const parsed = ids.map((id) => /^(\d+)-(\d+)$/.exec(id))
  t.ok(parsed.every((p) => p !== null), `positions: ${ids.join(' ')}`)
  t.same(parsed.map((p) => Number(p?.[2])), [1, 2, 3, 4, 5, 6], 'offsets 1 to 6: each event once, in order')
  const times = parsed.map((p) => Number(p?.[1]))
  t.ok(times.every((time, i) => i === 0 || time >= times[i - 1]!), 'times never decrease')
  return times
}

function checkSeed (t: Test, events: Array<{ event: string, data: string }>, names: string[]) {
  t.same(events.map((e) => e.event), names)
  t.same(events.slice(0, 3).map((e) => e.data), Array(3).fill('system has some error.'))
  t.match(events[3]!.data, TIME)
  t.match(events[4]!.data, TIME)
  t.equal(events[5]!.data, 'The end')
}

browserTest('seed stream, native EventSource on GET /sse/:key: dropped by the server mid-stream, it resumes with no gap and no duplicate', async (t) => {
  const { page, seen, starts, errors } = await setup(t)
  const key = 'native-key-1'
  const result = await page.evaluate((key) => new Promise<{ events: Array<{ event: string, id: string, data: string }>, drop: unknown, lost: number }>((resolve, reject) => {
    const es = new EventSource(`/sse/${key}?client=native`)
    const events: Array<{ event: string, id: string, data: string }> = []
    let drop: Promise<unknown> | undefined
    let lost = 0
    const record = (e: any) => {
      events.push({ event: e.type, id: e.lastEventId, data: e.data })
      // After the second event, the server cuts this connection.
      if (events.length === 2) drop = fetch('/drop/native', { method: 'POST' }).then((res) => res.json())
    }
    es.onmessage = record
    es.addEventListener('error', (e: any) => {
      if (e instanceof MessageEvent) return record(e)
      if (es.readyState === EventSource.CONNECTING) return lost++
      reject(new Error('the EventSource closed before the end event'))
    })
    es.addEventListener('end', (e: any) => {
      record(e)
      es.close()
      drop!.then((drop) => resolve({ events, drop, lost }), reject)
    })
  }), key)
  checkSeed(t, result.events, ['error', 'error', 'error', 'message', 'message', 'end'])
  const times = positions(t, result.events.map((e) => e.id))
  t.same(result.drop, { dropped: 1 }, 'the server dropped one connection')
  t.equal(result.lost, 1, 'one connection error, then one reconnect')

  const requests = seen.filter((s) => s.url === `/sse/${key}?client=native`)
  t.same(requests.map((s) => s.lastEventId), [undefined, result.events[1]!.id], 'the reconnect sent the second event\'s id')
  t.same(starts, [key], 'the work ran once: the reconnect resumed it')
  // Events 3 and on were stored before the reconnect came: they were replayed from the history.
  t.ok(times[2]! <= requests[1]!.wall, 'event 3 was stored while the client was away')
  t.same(errors, [])
})

/** Runs the seed's client (examples/public/seed-client.js) in the page, dropped after 2 events. */
async function runDroppedSeedClient (page: Page, path: string, headers: Record<string, string>, client: string) {
  return page.evaluate(async ({ path, headers, client }) => {
    const module = '/seed-client.js'
    const { runSeedClient } = await import(module)
    const events: Array<{ event: string, id: string, data: string }> = []
    const states: string[] = []
    let drop: Promise<unknown> | undefined
    const { ctrl, done } = runSeedClient(path, {
      headers,
      onEvent: (msg: any) => {
        events.push({ event: msg.event, id: msg.id, data: msg.data })
        if (events.length === 2) drop = fetch(`/drop/${client}`, { method: 'POST' }).then((res) => res.json())
      },
      onState: (state: string, err?: Error) => states.push(err === undefined ? state : `${state}: ${err.message}`)
    })
    // An upper bound, so that a client retrying forever fails the test instead of hanging it.
    const timer = setTimeout(() => ctrl.abort(), 15_000)
    let outcome: string
    try {
      await done
      outcome = 'resolved'
    } catch (err: any) {
      outcome = `rejected: ${err.constructor.name}: ${err.message}`
    }
    clearTimeout(timer)
    return { events, states, outcome, drop: await drop }
  }, { path, headers, client })
}

browserTest('seed stream, the seed\'s fetch-event-source front end with an Idempotency-Key: dropped by the server mid-stream, its repeated POST resumes', async (t) => {
  const { page, seen, starts, errors } = await setup(t)
  const key = 'fetch-key-1'
  const result = await runDroppedSeedClient(page, '/sse?client=fetch', { 'Idempotency-Key': key }, 'fetch')
  t.equal(result.outcome, 'resolved', 'stopped by the end event')
  t.same(result.drop, { dropped: 1 }, 'the server dropped one connection')
  t.equal(result.states.length, 4)
  t.same([result.states[0], result.states[2], result.states[3]], ['open', 'open', 'ended'])
  t.match(result.states[1], /^retrying: /, 'the cut connection was retried')
  checkSeed(t, result.events, ['error', 'error', 'error', '', '', 'end'])
  const times = positions(t, result.events.map((e) => e.id))

  const requests = seen.filter((s) => s.url === '/sse?client=fetch')
  t.same(requests.map((s) => [s.method, s.idempotencyKey, s.lastEventId]), [
    ['POST', key, undefined],
    ['POST', key, result.events[1]!.id]
  ], 'the same POST again, with the key and the second event\'s id')
  t.same(requests.map((s) => s.body), [{ foo: 'bar' }, { foo: 'bar' }])
  t.same(starts, [key], 'the work ran once: the repeated POST resumed it')
  t.ok(times[2]! <= requests[1]!.wall, 'event 3 was stored while the client was away')
  t.same(errors, [])
})

browserTest('demo page: the broadcast panel shows every event once, in order, in both subscribers across drops; the README screenshot', async (t) => {
  const app = buildDemo({
    interval: 100,
    retry: 500,
    ticker: { every: 40, perConnection: 3, limit: 9, retry: 500, heartbeat: 100, idle: 350 },
    broadcast: { retry: 500 }
  })
  const seen = recordRequests(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const { context, page, errors } = await openPage(chromium.browser(), `http://127.0.0.1:${port}/`, { width: 1280, height: 1000 })
  t.teardown(async () => {
    await context.close()
    await app.close()
  })
  // The other panels end first: seven streams overfill the browser's six connections to this
  // origin, and a publish needs one.
  await page.waitForFunction(() => {
    const state = (id: string) => document.getElementById(id).dataset.state
    return state('seed-native') === 'ended' && state('seed-fetch') === 'ended' && state('seed-client') === 'ended' &&
      state('ticker') === 'stopped' && state('wire') === 'stopped' &&
      state('sub-a') === 'open' && state('sub-b') === 'open'
  })
  const client = (sub: string) => page.$eval(`#${sub}`, (el: any) => el.dataset.client as string)
  const clients = { a: await client('sub-a'), b: await client('sub-b') }
  const posts = (sub: string) => page.$$eval(`#${sub} .events li:not(.note)`, (items: any[]) =>
    items.map((li) => Array.from(li.children as ArrayLike<any>, (span) => span.textContent)))
  const ids: string[] = []
  async function publish (text: string) {
    await page.fill('#broadcast input[name="text"]', text)
    await page.click('#broadcast button[type="submit"]')
    await page.waitForFunction((n) => document.querySelector('#broadcast .published').dataset.count === String(n), ids.length + 1)
    const shown: string = await page.$eval('#broadcast .published', (el: any) => el.textContent)
    const id = /^published #(\d+-\d+)$/.exec(shown)?.[1]
    t.ok(id, `"${text}" published: ${shown}`)
    ids.push(id!)
  }
  const both = (n: number) => page.waitForFunction((n) =>
    ['sub-a', 'sub-b'].every((id) => document.querySelectorAll(`#${id} .events li:not(.note)`).length >= n), n)
  async function drop (sub: string) {
    await page.click(`#${sub} .drop`)
    await page.waitForFunction((sub) => document.getElementById(sub).dataset.state === 'reconnecting', sub)
  }

  await publish('one')
  await both(1)
  await drop('sub-a')
  await publish('two') // while A is away: it gets "two" by replay
  await page.waitForFunction(() => document.getElementById('sub-a').dataset.state === 'open')
  await both(2)
  await publish('three')
  await both(3)
  await drop('sub-b')
  await publish('four') // while B is away
  await page.waitForFunction(() => document.getElementById('sub-b').dataset.state === 'open')
  await both(4)

  const texts = ['one', 'two', 'three', 'four']
  for (const sub of ['sub-a', 'sub-b']) {
    const rows = await posts(sub)
    t.same(rows.map((r) => r[0]), Array(4).fill('post'), `${sub}: four post events`)
    t.same(rows.map((r) => r[1]), ids.map((id) => '#' + id), `${sub}: the published ids, each once, in order`)
    t.same(rows.map((r) => r[2]!.split(' · ')[0]), texts, `${sub}: the published texts`)
    t.equal(await page.$eval(`#${sub} .reconnects`, (el: any) => el.textContent), '1', `${sub}: one reconnect`)
  }
  const offsets = ids.map((id) => Number(id.split('-')[1]))
  t.same(offsets, [1, 2, 3, 4], 'the topic got four events')

  // Each subscriber reconnected once, with the id of the last event it had; the event published
  // while it was away was stored before its reconnect arrived, so it came from the history.
  const streams = (c: string) => seen.filter((s) => s.url === `/topics/demo?client=${c}`)
  const publishes = seen.filter((s) => s.url === '/publish')
  t.same(streams(clients.a).map((s) => s.lastEventId), [undefined, ids[0]], 'A: Last-Event-ID of "one"')
  t.same(streams(clients.b).map((s) => s.lastEventId), [undefined, ids[2]], 'B: Last-Event-ID of "three"')
  t.ok(publishes[1]!.wall <= streams(clients.a)[1]!.wall, '"two" was published before A was back')
  t.ok(publishes[3]!.wall <= streams(clients.b)[1]!.wall, '"four" was published before B was back')

  // The README's picture is rewritten only on request (SSE_UPDATE_SCREENSHOT=1), so that a test
  // run leaves the work tree clean.
  const png = process.env.SSE_UPDATE_SCREENSHOT === '1'
    ? fileURLToPath(new URL('../docs/demo.png', import.meta.url))
    : join(tmpdir(), `fastify-sse-stream-demo-${process.pid}.png`)
  const shot = await page.screenshot({ path: png, fullPage: true })
  t.ok(shot.length > 10_000, `screenshot written to ${png} (${shot.length} bytes)`)

  // Readable on a phone: at 390 px nothing is wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 })
  t.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no horizontal scroll at 390 px')
  t.same(errors, [])
})

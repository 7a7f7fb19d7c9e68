// Priming, in a real browser: a hub subscription opens with an id-only frame, so that a client that
// drops before its first event still resumes without a gap. Chromium's EventSource takes the id and
// dispatches nothing; fetch-event-source fires an empty message for it, which is why `prime: false`
// exists (docs/hub.md, "Priming").
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import sse from '../index.js'
import { dropRoutes, vendorRoutes } from '../examples/demo.js'
import { openPage, useChromium } from './helpers/browser.js'
import { deferred } from './helpers/http.js'

declare const EventSource: any
declare const window: any

const chromium = useChromium()

async function setup (t: Test) {
  const app = Fastify()
  await app.register(sse)
  await app.register(dropRoutes)
  await app.register(vendorRoutes)
  const seen: Array<string | undefined> = []
  // Resolved once the next subscription is registered (it is, synchronously, in the handler).
  let subscribed = deferred()
  app.get('/blank', (_request, reply) => reply.type('text/html; charset=utf-8').send('<!doctype html><meta charset="utf-8"><title>blank</title>'))
  app.get<{ Querystring: { prime?: string } }>('/news', (request, reply) => {
    seen.push(request.headers['last-event-id'] as string | undefined)
    const done = reply.sseSubscribe('news', { retry: 300, prime: request.query.prime !== 'no' })
    subscribed.resolve()
    return done
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const { context, page, errors } = await openPage(chromium.browser(), `http://127.0.0.1:${port}/blank`)
  t.teardown(async () => {
    await context.close()
    await app.close()
  })
  return { app, page, seen, errors, next: () => { subscribed = deferred(); return subscribed.promise } }
}

t.test('native EventSource dropped before its first event resumes from the priming id: no gap', { skip: chromium.skip, timeout: 30_000 }, async (t) => {
  const { app, page, seen, errors } = await setup(t)
  await app.sse.publish('news', { data: 'before' })
  await page.evaluate(() => {
    window.got = []
    window.opens = 0
    const es = new EventSource('/news?client=a')
    es.onopen = () => { window.opens++ }
    es.onmessage = (e: any) => window.got.push({ data: e.data, id: e.lastEventId })
  })
  await page.waitForFunction(() => window.opens === 1)
  // Dropped with nothing received but the priming frame; published while it is away.
  const dropped = await page.evaluate(async () => (await window.fetch('/drop/a', { method: 'POST' })).json())
  t.same(dropped, { dropped: 1 })
  const one = await app.sse.publish('news', { data: 'while away 1' })
  const two = await app.sse.publish('news', { data: 'while away 2' })
  await page.waitForFunction(() => window.got.length >= 2)
  const got = await page.evaluate(() => window.got)
  t.same(got, [{ data: 'while away 1', id: one }, { data: 'while away 2', id: two }], 'both events, once, with their ids; nothing for the priming frame')
  t.equal(seen.length, 2)
  t.equal(seen[0], undefined, 'the first request had no Last-Event-ID')
  t.match(seen[1], /^\d+-1$/, 'the reconnect sent the priming id: the position of the event before it connected')
  t.same(errors, [])
})

t.test('fetch-event-source fires an empty message for the priming frame, and none with prime: false', { skip: chromium.skip, timeout: 30_000 }, async (t) => {
  const { app, page, errors, next } = await setup(t)
  const run = async (query: string): Promise<Array<{ data: string, id: string }>> => {
    const registered = next()
    await page.evaluate(async (query: string) => {
      const { fetchEventSource } = await import('/vendor/fetch-event-source/index.js' as string)
      window.messages = []
      window.ctrl = new AbortController()
      void fetchEventSource('/news' + query, {
        signal: window.ctrl.signal,
        onmessage (msg: any) { window.messages.push({ data: msg.data, id: msg.id }) }
      })
    }, query)
    // Subscribed: the id-only priming frame, if any, is written before this event.
    await registered
    await app.sse.publish('news', { data: 'live' })
    await page.waitForFunction(() => window.messages.some((m: any) => m.data === 'live'))
    return page.evaluate(() => { window.ctrl.abort(); return window.messages })
  }
  const primed = await run('')
  t.equal(primed.length, 2)
  t.same(primed[0], { data: '', id: primed[0]!.id }, 'an empty message first, for the id-only frame')
  t.match(primed[0]!.id, /^\d+-\d+$/)
  t.equal(primed[1]!.data, 'live')
  const plain = await run('?prime=no')
  t.same(plain.map((m) => m.data), ['live'], 'with prime: false, only the event')
  t.same(errors, [])
})

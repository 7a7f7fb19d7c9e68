// Conformance cases 21, 25, 36, 44 in a real browser; Chromium via playwright-core, as
// test/browser.test.ts does. Reconnects after an id-only frame and after an id reset:
// - an id-only frame `id: 7\n\n` dispatches nothing, but the next reconnect sends Last-Event-ID: 7;
// - an `id: ` reset makes the next reconnect send no Last-Event-ID at all, so request.lastEventId
//   is undefined;
// - `open` fires on the head, before the first event (the source is still held).
// Observation (no assertion): with the query fallback, a URL that carries ?lastEventId=41 resumes
// from 41 again after an id reset, because the header is absent. Logged as a comment.
import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import sse from '../index.js'
import { openPage, useChromium } from './helpers/browser.js'
import { deferred, listen, within } from './helpers/http.js'

declare const EventSource: any

const chromium = useChromium()

async function setup (t: Test, routes: (app: FastifyInstance) => void) {
  const app = Fastify()
  await app.register(sse)
  app.get('/blank', (_req, reply) => reply.type('text/html; charset=utf-8').send('<!doctype html><title>b</title>'))
  routes(app)
  const url = await listen(app)
  const { context, page } = await openPage(chromium.browser(), `${url}/blank`)
  t.teardown(async () => { await context.close(); await app.close() })
  return { page }
}

t.test('an id-only frame sets the reconnect id; an id reset removes it', { skip: chromium.skip, timeout: 20_000 }, async (t) => {
  const headers: Array<string | undefined> = []
  const lastIds: Array<string | undefined> = []
  const { page } = await setup(t, (app) => {
    app.get('/r', (req, reply) => {
      headers.push(req.headers['last-event-id'] as string | undefined)
      lastIds.push(req.lastEventId)
      const n = headers.length
      if (n === 1) return reply.sse([{ id: '5', data: 'a' }, { id: '7' }], { retry: 100 })
      if (n === 2) return reply.sse([{ data: 'b' }, { id: '', data: 'c' }], { retry: 100 })
      if (n === 3) return reply.sse([{ data: 'd' }], { retry: 100 })
      return reply.code(204).send()
    })
    app.get('/q', (req, reply) => {
      lastIds.push(req.lastEventId)
      if (lastIds.length > 6) return reply.code(204).send()
      return reply.sse([{ id: '', data: 'reset' }], { retry: 100 })
    })
  })
  const messages = await page.evaluate(() => new Promise<Array<{ data: string, id: string }>>((resolve) => {
    const es = new EventSource('/r')
    const got: Array<{ data: string, id: string }> = []
    es.onmessage = (e: any) => got.push({ data: e.data, id: e.lastEventId })
    es.onerror = () => { if (es.readyState === EventSource.CLOSED) resolve(got) }
  }))
  t.same(messages, [
    { data: 'a', id: '5' },
    { data: 'b', id: '7' }, // the id-only frame's id persisted onto the next connection's event
    { data: 'c', id: '' },
    { data: 'd', id: '' }
  ])
  t.same(headers, [undefined, '7', undefined, undefined], 'Last-Event-ID: absent, 7 (id-only frame), absent after the reset')
  t.same(lastIds.slice(0, 4), [undefined, '7', undefined, undefined], 'request.lastEventId follows the header')

  lastIds.length = 0
  await page.evaluate(() => new Promise<void>((resolve) => {
    const es = new EventSource('/q?lastEventId=41')
    es.onerror = () => { if (es.readyState === EventSource.CLOSED) resolve() }
  }))
  t.comment(`query fallback after an id reset: request.lastEventId on each reconnect = ${JSON.stringify(lastIds)}`)
})

t.test('open fires on the head, before the first event', { skip: chromium.skip, timeout: 20_000 }, async (t) => {
  const release = deferred()
  const { page } = await setup(t, (app) => {
    app.get('/held', (_req, reply) => reply.sse(async function * () {
      await release.promise
      yield { data: 'first' }
    }))
  })
  await page.evaluate(() => new Promise<void>((resolve) => {
    const es = new EventSource('/held')
    ;(globalThis as any).es = es
    ;(globalThis as any).got = []
    es.onmessage = (e: any) => (globalThis as any).got.push(e.data)
    es.onopen = () => resolve()
  }))
  t.same(await page.evaluate(() => (globalThis as any).got), [], 'open came with no event yet')
  release.resolve()
  await within(page.waitForFunction(() => (globalThis as any).got.length === 1), 5000, 'the first event')
  t.same(await page.evaluate(() => { (globalThis as any).es.close(); return (globalThis as any).got }), ['first'])
})

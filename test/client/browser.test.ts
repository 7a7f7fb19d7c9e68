// Chromium runs the seed's own front end (test/client/fixtures/seed-frontend.js: the seed's code
// with only an import line added) on the compat build, against a resumable POST route that the
// server drops mid-stream. The client resumes through the advertised resume URL: no re-POST, no
// duplicate, and the seed's `end` event ends it.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { build } from 'esbuild'
import { openPage, useChromium } from '../helpers/browser.js'
import { startApp } from '../helpers/client.js'
import { deferred, within } from '../helpers/http.js'

const chromium = useChromium()

// The compat build, wrapped to record what the page's onmessage receives and how the promise
// settles. The seed's code is not touched: the wrapper sits behind its import.
const SPY = `
import { fetchEventSource as run, EventStreamContentType } from './lib/client/compat.ts'
export { EventStreamContentType }
export function fetchEventSource (url, init) {
  const seen = (window.__seed = { events: [], outcome: 'pending' })
  const promise = run(url, { ...init, onmessage (msg) { seen.events.push(msg); return init.onmessage?.(msg) } })
  promise.then(() => { seen.outcome = 'resolved' }, (e) => { seen.outcome = 'rejected: ' + e })
  return promise
}`

const SEED = [
  ...['error', 'error', 'error'].map((event) => ({ event, data: 'system has some error.' })),
  { event: undefined, data: 'The time is 2024-01-01 00:00:00' },
  { event: undefined, data: 'The time is 2024-01-01 00:00:01' },
  { event: 'end', data: 'The end' }
].map((e, i) => ({ ...e, id: String(i + 1), retry: 200 }))

t.test('the seed front end on compat: a server-forced drop is resumed with no duplicate', { skip: chromium.skip, timeout: 30_000 }, async (t) => {
  const bundle = await build({ stdin: { contents: SPY, resolveDir: process.cwd(), loader: 'js' }, bundle: true, format: 'esm', write: false, platform: 'browser' })
  const log: string[] = []
  const dropNow = deferred()
  const { url } = await startApp(t, (app) => {
    app.get('/seed.html', (_req, reply) => reply.type('text/html; charset=utf-8').send('<!doctype html><script type="module" src="/seed-frontend.js"></script>'))
    app.get('/seed-frontend.js', (_req, reply) => reply.type('text/javascript').send(readFileSync(new URL('./fixtures/seed-frontend.js', import.meta.url))))
    app.get('/compat.js', (_req, reply) => reply.type('text/javascript').send(bundle.outputFiles[0]!.text))
    app.post('/sse', (req, reply) => {
      log.push(`POST ${req.url} ${JSON.stringify(req.body)} ${req.lastEventId}`)
      return reply.sse(async function * () {
        // The hub's resumable request stream advertises where to resume, in-band.
        yield { comment: 'resume=/sse/job1' }
        yield * SEED.slice(0, 3)
        // Then the server drops the connection, once the page has those three. (Chromium may
        // discard bytes it received but the page had not read when the connection broke.)
        await dropNow.promise
        reply.raw.socket!.end()
      })
    })
    app.get('/sse/job1', (req, reply) => {
      log.push(`GET ${req.url} ${req.lastEventId}`)
      const rest = SEED.slice(SEED.findIndex((e) => e.id === req.lastEventId) + 1)
      return rest.length === 0 ? reply.code(204).send() : reply.sse(rest)
    })
  })
  const { context, page, errors } = await openPage(chromium.browser(), `${url}/seed.html`)
  t.teardown(() => context.close())
  type Seen = { events: Array<{ id: string, event: string, data: string }>, outcome: string }
  await within(page.waitForFunction(() => (globalThis as unknown as { __seed?: Seen }).__seed?.events.length === 3), 10_000, 'three events')
  dropNow.resolve()
  const seen = await within(page.waitForFunction(() => {
    const seed = (globalThis as unknown as { __seed?: Seen }).__seed
    return seed !== undefined && seed.outcome !== 'pending' ? seed : undefined
  }).then((handle) => handle.jsonValue() as Promise<Seen>), 20_000, 'the seed client to finish')
  t.equal(seen.outcome, 'resolved', 'the end event ended it')
  t.same(seen.events.map((e) => e.id), ['1', '2', '3', '4', '5', '6'], 'every event once, in order')
  t.same(seen.events.map((e) => e.event), ['error', 'error', 'error', '', '', 'end'])
  t.equal(seen.events[5]!.data, 'The end')
  t.same(log, ['POST /sse {"foo":"bar"} undefined', 'GET /sse/job1 3'], 'one POST, then a GET to the resume URL from event 3')
  t.same(errors, [])
})

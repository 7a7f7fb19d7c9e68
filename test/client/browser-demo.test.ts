// The demo page's panel driven by this package's client, in Debian's Chromium (playwright-core),
// against the demo app on 127.0.0.1:0: the seed's stream over POST with an Idempotency-Key, cut
// by the server mid-stream (the panel's "Drop connection" button), resumed by GET to the URL the
// server advertised, with every event once and the work never started again.
// The page is opened as http://demo.test:<port>/ (mapped to 127.0.0.1 by Chromium's resolver):
// an origin that is not a secure context, as a LAN address is when the demo is opened from a
// phone. There crypto.randomUUID() does not exist, and idempotencyKey: true must still work.
import t from 'tap'
import { chromium } from 'playwright-core'
import { buildDemo } from '../../examples/demo.js'
import { browserAvailability, CHROMIUM_ARGS, CHROMIUM_PATH } from '../helpers/browser.js'

// The functions passed to page.evaluate() and page.waitForFunction() run in the page, where these globals exist.
declare const document: any
declare const isSecureContext: boolean

const { skip, failure } = browserAvailability()
if (failure !== undefined) t.fail(failure)

interface Seen { method: string, url: string, lastEventId: string | undefined, key: string | undefined }

t.test('demo page, the client panel: a POST dropped by the server mid-stream resumes by its resume URL, each event once', { skip: failure ?? skip, timeout: 30_000 }, async (t) => {
  const app = buildDemo({
    interval: 300,
    retry: 500,
    // The other panels end soon, so that the page's streams leave connections free.
    ticker: { every: 40, perConnection: 3, limit: 6, retry: 200, heartbeat: 100, idle: 250 }
  })
  const seen: Seen[] = []
  app.addHook('preHandler', async (request) => {
    seen.push({
      method: request.method,
      url: request.url,
      lastEventId: request.headers['last-event-id'] as string | undefined,
      key: request.headers['idempotency-key'] as string | undefined
    })
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [...CHROMIUM_ARGS, '--host-resolver-rules=MAP demo.test 127.0.0.1'],
    timeout: 30_000
  })
  t.teardown(async () => {
    await browser.close()
    await app.close()
  })
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } })
  const errors: string[] = []
  page.on('pageerror', (error) => errors.push(String(error)))
  page.setDefaultTimeout(15_000)
  await page.goto(`http://demo.test:${port}/`)
  t.equal(await page.evaluate(() => isSecureContext), false, 'not a secure context')

  const state = (id: string) => page.$eval(`#${id}`, (el: any) => el.dataset.state as string)
  // The first run ends on its own; then a fresh run, dropped after its second event.
  await page.waitForFunction(() => ['seed-native', 'seed-fetch', 'seed-client'].every((id) => document.getElementById(id).dataset.state === 'ended'))
  const rows = () => page.$$eval('#seed-client .events li:not(.note)', (items: any[]) =>
    items.map((li) => Array.from(li.children as ArrayLike<any>, (span) => span.textContent as string)))
  t.equal((await rows()).length, 6, 'the first run: six events')
  await page.click('#seed-client .restart')
  const client = await page.$eval('#seed-client', (el: any) => el.dataset.client as string)
  await page.waitForFunction(() => document.querySelectorAll('#seed-client .events li:not(.note)').length >= 2)
  const drop = page.waitForResponse((res) => res.url().endsWith(`/drop/${client}`))
  await page.click('#seed-client .drop')
  t.same(await (await drop).json(), { dropped: 1 }, 'the server dropped the stream')
  await page.waitForFunction(() => document.getElementById('seed-client').dataset.state === 'ended')

  const events = await rows()
  t.same(events.map((r) => r[0]), ['error', 'error', 'error', 'message', 'message', 'end'], 'the seed\'s six events')
  const ids = events.map((r) => r[1]!.replace(/^#/, ''))
  t.same(ids.map((id) => Number(/^\d+-(\d+)$/.exec(id)?.[1])), [1, 2, 3, 4, 5, 6], 'each once, in order')
  t.same(events.slice(0, 3).map((r) => r[2]), Array(3).fill('system has some error.'))
  t.match(events[3]![2], /^The time is /)
  t.equal(events[5]![2], 'The end')
  t.equal(await page.$eval('#seed-client .reconnects', (el: any) => el.textContent), '1', 'one reconnect')

  const requests = seen.filter((s) => s.url.endsWith(`client=${client}`))
  t.equal(requests.length, 2, 'a POST, then one resume')
  const key = requests[0]!.key!
  t.match(key, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'idempotencyKey: true made a UUID outside a secure context')
  t.same(requests[0], { method: 'POST', url: `/sse?client=${client}`, lastEventId: undefined, key })
  t.same(requests[1], { method: 'GET', url: `/sse/${key}?client=${client}`, lastEventId: requests[1]!.lastEventId, key }, 'a GET to the advertised resume URL')
  t.ok(ids.slice(1, 5).includes(requests[1]!.lastEventId!), `with the Last-Event-ID of an event it had: ${requests[1]!.lastEventId}`)
  t.equal(seen.filter((s) => s.key === key && s.method === 'POST').length, 1, 'the work was never asked for again')
  const notes = await page.$$eval('#seed-client .events li.note', (items: any[]) => items.map((li) => li.textContent as string))
  t.match(notes[0], `POST /sse · Idempotency-Key ${key}`)
  t.match(notes.at(-1), `GET /sse/${key} · Last-Event-ID ${requests[1]!.lastEventId}`)
  t.equal(await state('seed-client'), 'ended')
  t.same(errors, [])
})

// The demo with REDIS_URL: two instances, each in its own process as `npm start` runs it
// (node examples/demo.js), sharing one real redis-server, and the page in Debian's Chromium.
// - The instances find each other: the page served by node A opens subscriber A on A and
//   subscriber B on B (cross-origin, CORS).
// - An event published on node A reaches subscriber B through node B's stream, and one
//   published on B reaches A: each row says which node published it and which served it.
// - Switch node closes subscriber B's stream and opens one on the other node with
//   ?lastEventId=; events published meanwhile (on either node) arrive once, from the new node.
//   Then a drop on node B: the browser's own reconnect, with its Last-Event-ID header, across
//   origins. Every event arrives once, in order, in both subscribers.
import t from 'tap'
import type { Page } from 'playwright-core'
import { openPage, useChromium } from '../helpers/browser.js'
import { type DemoProcess, startDemo } from '../helpers/demo-process.js'
import { redisAvailable, startRedis } from '../helpers/redis.js'

// The functions passed to page.evaluate() run in the page, where these globals exist.
declare const document: any

const chromium = useChromium()
const redis = redisAvailable()

interface Row { name: string, id: string, data: string, servedBy: string | undefined }

function rows (page: Page, sub: string): Promise<Row[]> {
  return page.$$eval(`#${sub} .events li:not(.note)`, (items: any[]) => items.map((li) => ({
    name: li.querySelector('.name').textContent,
    id: li.querySelector('.id').textContent,
    data: li.querySelector('.data').textContent,
    servedBy: li.querySelector('.served-by')?.textContent
  })))
}

t.test('demo with REDIS_URL: two instances, an event published on one delivered by the other, and a resume that crosses nodes',
  { skip: redis.skip ?? chromium.skip, timeout: 90_000 }, async (t) => {
    const server = await startRedis()
    t.teardown(() => server.stop())
    const nodes: DemoProcess[] = []
    t.teardown(() => Promise.all(nodes.map((node) => node.stop())))
    for (const name of ['A', 'B']) nodes.push(await startDemo({ REDIS_URL: server.url, NODE_NAME: name }))
    const [a, b] = nodes as [DemoProcess, DemoProcess]
    t.match(a.banner, /^fastify-sse-stream demo \(node A, hub on Redis; start more with other PORTs\): open http:\/\/127\.0\.0\.1:\d+\/$/)

    const list = await (await fetch(`${a.url}/nodes`)).json()
    t.same(list, { broker: 'redis', node: 'A', nodes: [{ name: 'A', port: a.port }, { name: 'B', port: b.port }] },
      'each instance registered itself in Redis')
    // CORS for pages of the other instances on this host name, and for no other origin.
    const allowed = async (origin: string) => (await fetch(`${a.url}/nodes`, { headers: { origin } })).headers.get('access-control-allow-origin')
    t.equal(await allowed(b.url), b.url, 'a page of node B may call node A')
    t.equal(await allowed('http://localhost:' + b.port), null, 'another host name may not')
    t.equal(await allowed('http://example.com'), null)

    const { context, page, errors } = await openPage(chromium.browser(), `${a.url}/`)
    t.teardown(() => context.close())
    const state = (sub: string) => page.$eval(`#${sub}`, (el: any) => el.dataset.state as string)
    const waitState = (sub: string, value: string) => page.waitForFunction(([sub, value]) =>
      document.getElementById(sub).dataset.state === value, [sub, value])
    // The seed panels end first (about 6 s): until then they hold connections to node A that a
    // publish from the page would wait for.
    await page.waitForFunction(() => {
      const state = (id: string) => document.getElementById(id).dataset.state
      return state('seed-native') === 'ended' && state('seed-fetch') === 'ended' && state('seed-client') === 'ended' &&
        state('sub-a') === 'open' && state('sub-b') === 'open'
    }, undefined, { timeout: 30_000 })
    t.equal(await page.$eval('.cluster', (el: any) => el.textContent),
      `This page: node A, hub on Redis · nodes: A (port ${a.port}), B (port ${b.port})`)
    t.same([await page.$eval('#sub-a', (el: any) => el.dataset.node), await page.$eval('#sub-b', (el: any) => el.dataset.node)],
      ['A', 'B'], 'subscriber A reads node A, subscriber B reads node B')

    const ids: string[] = []
    const texts: string[] = []
    const publishers: string[] = []
    let directs = 0 // published from the test, not the form
    /** Publishes from the page's form, on `node`. */
    async function publishFromPage (text: string, node: string) {
      await page.fill('#broadcast input[name="text"]', text)
      await page.selectOption('#broadcast select[name="node"]', node)
      await page.click('#broadcast button[type="submit"]')
      await page.waitForFunction((n) => document.querySelector('#broadcast .published').dataset.count === String(n), ids.length + 1 - directs)
      const shown: string = await page.$eval('#broadcast .published', (el: any) => el.textContent)
      const match = /^published #(\d+-\d+) on node ([AB])$/.exec(shown)
      t.equal(match?.[2], node, `"${text}": ${shown}`)
      ids.push(match![1]!)
      texts.push(text)
      publishers.push(node)
    }
    /** Publishes from the test, as another client of `node` would. */
    async function publishDirect (text: string, node: DemoProcess, name: string) {
      const res = await fetch(`${node.url}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 'demo', text })
      })
      const body = await res.json() as { id: string, node: string }
      t.equal(body.node, name)
      ids.push(body.id)
      texts.push(text)
      publishers.push(name)
      directs++
    }
    const both = (n: number) => page.waitForFunction((n) =>
      ['sub-a', 'sub-b'].every((id) => document.querySelectorAll(`#${id} .events li:not(.note)`).length >= n), n)

    await publishFromPage('one', 'A')
    await both(1)
    const first = (await rows(page, 'sub-b'))[0]!
    t.match(first, { name: 'post', id: '#' + ids[0], servedBy: 'served by B' }, 'published on node A, served by node B')
    t.match(first.data, /^one · .* · published on A$/)
    await publishFromPage('two', 'B')
    await both(2)

    // Subscriber B moves to node A. Two events are published (one on each node) while it has no
    // stream: the page waits 1 s before it opens the new one.
    await page.click('#sub-b .switch')
    await waitState('sub-b', 'switching')
    await publishDirect('three', a, 'A')
    await publishDirect('four', b, 'B')
    t.equal(await state('sub-b'), 'switching', 'both were published before the stream on node A opened')
    await waitState('sub-b', 'open')
    await both(4)
    t.equal(await page.$eval('#sub-b', (el: any) => el.dataset.node), 'A')
    await publishFromPage('five', 'B')
    await both(5)

    // And back to node B, then a drop there: the browser reconnects by itself, with its
    // Last-Event-ID header, to node B (cross-origin).
    await page.click('#sub-b .switch')
    await waitState('sub-b', 'switching')
    await publishDirect('six', b, 'B')
    await waitState('sub-b', 'open')
    await both(6)
    t.equal(await page.$eval('#sub-b', (el: any) => el.dataset.node), 'B')
    await page.click('#sub-b .drop')
    await waitState('sub-b', 'reconnecting')
    await publishDirect('seven', a, 'A')
    await waitState('sub-b', 'open')
    await both(7)

    const offsets = ids.map((id) => Number(id.split('-')[1]))
    t.same(offsets, [1, 2, 3, 4, 5, 6, 7], 'one topic, seven events, whichever node published them')
    const expected = (servedBy: string[]) => ids.map((id, i) => ({
      name: 'post',
      id: '#' + id,
      data: new RegExp(`^${texts[i]} · \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d · published on ${publishers[i]}$`),
      servedBy: 'served by ' + servedBy[i]
    }))
    const subA = await rows(page, 'sub-a')
    const subB = await rows(page, 'sub-b')
    t.equal(subA.length, 7, 'A: seven rows')
    t.equal(subB.length, 7, 'B: seven rows: no duplicate')
    t.match(subA, expected(Array(7).fill('A')), 'A: every event once, in order, served by node A')
    t.match(subB, expected(['B', 'B', 'A', 'A', 'A', 'B', 'B']), 'B: every event once, in order, served by B, then A, then B')

    const notes = await page.$$eval('#sub-b .events li.note', (items: any[]) => items.map((li) => li.textContent))
    t.same(notes, [
      `closed the stream on node B; resuming on node A in 1 s with ?lastEventId=${ids[1]}`,
      `closed the stream on node A; resuming on node B in 1 s with ?lastEventId=${ids[4]}`,
      `connection lost; reconnecting with Last-Event-ID ${ids[5]}`
    ])
    t.equal(await page.$eval('#sub-b .reconnects', (el: any) => el.textContent), '3')
    t.equal(await page.$eval('#sub-a .reconnects', (el: any) => el.textContent), '0')
    t.same(errors, [])

    // Each instance leaves the list when it closes.
    t.equal(await b.stop(), 0, 'node B closed on SIGTERM')
    const left = await (await fetch(`${a.url}/nodes`)).json() as { nodes: unknown }
    t.same(left.nodes, [{ name: 'A', port: a.port }])
  })

// The demo's resumable seed stream over node:http (test/browser-hub.test.ts drops it in Chromium):
// the key names the work, which runs once while the hub holds its history; every stream starts
// with its resume URL; a malformed key is a 400.
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import sse from '../index.js'
import { seedRoutes } from '../examples/demo.js'
import { get, listen } from './helpers/http.js'

async function setup (t: Test) {
  const app = Fastify()
  const starts: string[] = []
  await app.register(sse)
  await app.register(seedRoutes, { interval: 5, retry: 1000, onStart: (key: string) => starts.push(key) })
  const url = await listen(app)
  t.teardown(() => app.close())
  return { url, starts }
}

const SEED = /^: heartbeat=15000\n: resume=\/sse\/(\S+)\nevent: error\nretry: 1000\ndata: system has some error\.\nid: (\d+-1)\n\n(?:.*\n)*event: end\nretry: 1000\ndata: The end\nid: (\d+-6)\n\n$/

t.test('POST /sse without a key: a new run each time, with a fresh key in its resume URL', async (t) => {
  const { url, starts } = await setup(t)
  const one = await get(`${url}/sse`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"foo":"bar"}' })
  const two = await get(`${url}/sse`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"foo":"bar"}' })
  t.equal(one.status, 200)
  t.equal(one.headers['content-type'], 'text/event-stream')
  const keys = [SEED.exec(one.body)?.[1], SEED.exec(two.body)?.[1]]
  t.match(keys[0], /^[0-9a-f-]{36}$/)
  t.not(keys[0], keys[1])
  t.same(starts, keys, 'two runs')
})

t.test('the same key, by header or by URL, is one run: a repeated request replays it, and one that has it all gets 204', async (t) => {
  const { url, starts } = await setup(t)
  const first = await get(`${url}/sse`, { method: 'POST', headers: { 'idempotency-key': 'k-1' } })
  const match = SEED.exec(first.body)
  t.equal(match?.[1], 'k-1', 'the resume URL names the key')
  // The draft standard's quoted form names the same key.
  const again = await get(`${url}/sse`, { method: 'POST', headers: { 'idempotency-key': '"k-1"' } })
  t.equal(again.body, first.body, 'the same events, ids included')
  const byUrl = await get(`${url}/sse/k-1`)
  t.equal(byUrl.body, first.body)
  const rest = await get(`${url}/sse/k-1`, { headers: { 'last-event-id': match![2]! } })
  const afterFirst = first.body.indexOf('\n\n') + 2
  t.equal(rest.body, ': heartbeat=15000\n: resume=/sse/k-1\n' + first.body.slice(afterFirst), 'after the first event: the rest')
  // The end marker sends nothing: the id of the `end` event is the whole stream.
  const over = await get(`${url}/sse/k-1`, { headers: { 'last-event-id': match![3]! } })
  t.equal(over.status, 204, 'the client has it all: 204, which stops an EventSource')
  t.same(starts, ['k-1'], 'one run')
})

t.test('a malformed key is a 400, and starts nothing', async (t) => {
  const { url, starts } = await setup(t)
  for (const key of ['a b', '', '""', 'x'.repeat(129), 'é']) {
    const res = await get(`${url}/sse`, { method: 'POST', headers: { 'idempotency-key': key } })
    t.equal(res.status, 400, JSON.stringify(key))
    t.match(JSON.parse(res.body).message, /Idempotency-Key/)
  }
  const res = await get(`${url}/sse/a%20b`)
  t.equal(res.status, 400)
  t.same(starts, [])
})

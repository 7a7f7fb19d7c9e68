// request.lastEventId and ctx.lastEventId: the Last-Event-ID header (re-decoded as UTF-8), the
// query fallback, validation, and a real EventSource client resuming after a reconnect.
import t, { type Test } from 'tap'
import Fastify from 'fastify'
import { EventSource } from 'eventsource'
import type { OutgoingHttpHeaders } from 'node:http'
import sse, { type SsePluginOptions, type SseStreamOptions } from '../index.js'
import { captureLogs, deferred, get, listen, within } from './helpers/http.js'

interface Seen { request: string | null, ctx: string | null }

/** An app whose stream reports both views of the last event id, and a way to ask it. */
async function setup (t: Test, pluginOptions?: SsePluginOptions, callOptions?: SseStreamOptions) {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream } })
  t.teardown(() => app.close())
  await app.register(sse, pluginOptions ?? {})
  app.get('/', (req, reply) => reply.sse(({ lastEventId }) => [
    { data: { request: req.lastEventId ?? null, ctx: lastEventId ?? null } }
  ], callOptions))
  const url = await listen(app)
  const ask = async (query = '', headers: OutgoingHttpHeaders = {}): Promise<Seen> => {
    const res = await get(url + '/' + query, { headers })
    const match = /^: heartbeat=15000\ndata: (.*)\n\n$/.exec(res.body)
    if (match === null) throw new Error(`unexpected body ${JSON.stringify(res.body)}`)
    return JSON.parse(match[1]) as Seen
  }
  return { ask, logs }
}

const both = (value: string | null): Seen => ({ request: value, ctx: value })

/** What a client puts on the wire for a UTF-8 id: node:http writes header strings as latin1. */
const utf8Header = (value: string): string => Buffer.from(value, 'utf8').toString('latin1')

t.test('reads the Last-Event-ID header into request.lastEventId and ctx.lastEventId', async (t) => {
  const { ask } = await setup(t)
  t.same(await ask(), both(null), 'absent on a first connect')
  t.same(await ask('', { 'last-event-id': 'abc-123' }), both('abc-123'))
  t.same(await ask('', { 'Last-Event-ID': '42' }), both('42'), 'any header casing')
  t.same(await ask('', { 'last-event-id': '' }), both(null), 'an empty header is absent')
})

t.test('re-decodes a non-ASCII id sent as raw UTF-8 bytes', async (t) => {
  const { ask } = await setup(t)
  t.same(await ask('', { 'last-event-id': utf8Header('é…🦄') }), both('é…🦄'))
  t.same(await ask('', { 'last-event-id': utf8Header('ev-ü-7') }), both('ev-ü-7'))
})

t.test('falls back to the query parameter', async (t) => {
  const { ask } = await setup(t)
  t.same(await ask('?lastEventId=17'), both('17'))
  t.same(await ask(`?lastEventId=${encodeURIComponent('é…🦄')}`), both('é…🦄'))
  t.same(await ask('?lastEventId=from-query', { 'last-event-id': 'from-header' }), both('from-header'), 'the header wins')
  t.same(await ask('?lastEventId='), both(null), 'an empty value is absent')
})

t.test('the query parameter name is configurable, plugin-wide and per call', async (t) => {
  t.test('plugin-wide: request.lastEventId and ctx.lastEventId both use it', async (t) => {
    const { ask } = await setup(t, { lastEventIdQuery: 'cursor' })
    t.same(await ask('?cursor=9'), both('9'))
    t.same(await ask('?lastEventId=9'), both(null), 'the default name is no longer read')
  })

  t.test('per call: only this stream\'s ctx.lastEventId uses it', async (t) => {
    const { ask } = await setup(t, undefined, { lastEventIdQuery: 'since' })
    t.same(await ask('?since=5'), { request: null, ctx: '5' })
    t.same(await ask('?lastEventId=5'), { request: '5', ctx: null })
  })

  t.test('false disables the query fallback; the header still counts', async (t) => {
    const { ask } = await setup(t, { lastEventIdQuery: false })
    t.same(await ask('?lastEventId=5'), both(null))
    t.same(await ask('?lastEventId=5', { 'last-event-id': '6' }), both('6'))
  })

  t.test('false per call disables it for that stream only', async (t) => {
    const { ask } = await setup(t, undefined, { lastEventIdQuery: false })
    t.same(await ask('?lastEventId=5'), { request: '5', ctx: null })
  })
})

t.test('an invalid value is treated as absent and logged at debug level', async (t) => {
  const { ask, logs } = await setup(t, { lastEventIdMaxLength: 8 })
  const invalid = () => logs.find('ignoring an invalid last event id')

  t.same(await ask('', { 'last-event-id': '12345678' }), both('12345678'), 'exactly the limit is fine')
  t.equal(invalid().length, 0)

  t.same(await ask('', { 'last-event-id': '123456789' }), both(null), 'one over the limit')
  t.match(invalid().at(-1), { level: 20, from: 'header', lastEventIdLength: 9 })

  for (const bad of ['a%0Ab', 'a%0Db', 'a%00b', '%0D%0A']) {
    const before = invalid().length
    t.same(await ask(`?lastEventId=${bad}`), both(null), `${bad} in the query`)
    // Both request.lastEventId and ctx.lastEventId read it, and each logs.
    t.ok(invalid().length > before, `${bad} is logged`)
    t.match(invalid().at(-1), { level: 20, from: 'query' })
  }

  t.same(await ask('?lastEventId=ok', { 'last-event-id': '123456789' }), both(null),
    'an invalid header does not fall back to the query')
  t.notOk(invalid().some((line) => JSON.stringify(line).includes('123456789')), 'the value itself is not logged')
})

t.test('eventsource@4 reconnects with the last id it saw and the server resumes after it', async (t) => {
  const app = Fastify()
  await app.register(sse)
  const PER_CONNECTION = 2
  const LAST = 6
  const headers: Array<string | null> = []
  app.get('/feed', (req, reply) => reply.sse(function * ({ lastEventId }) {
    const header = req.headers['last-event-id']
    headers.push(typeof header === 'string' ? header : null)
    // The server ends each stream after two events; the client reconnects 100 ms later.
    yield { retry: 100 }
    const from = lastEventId === undefined ? 0 : Number(lastEventId)
    for (let n = from + 1; n <= Math.min(from + PER_CONNECTION, LAST); n++) {
      yield { id: n, data: `event ${n}` }
    }
  }))
  const url = await listen(app)
  const es = new EventSource(`${url}/feed`)
  t.teardown(async () => {
    es.close()
    await app.close()
  })
  const received: Array<{ id: string, data: string }> = []
  const finished = deferred()
  es.addEventListener('message', (ev) => {
    received.push({ id: ev.lastEventId, data: ev.data })
    if (received.length === LAST) finished.resolve()
  })
  await within(finished.promise, 3000, `${LAST} events over three connections`)
  es.close()
  t.same(received, Array.from({ length: LAST }, (_v, i) => ({ id: String(i + 1), data: `event ${i + 1}` })),
    'every event once, in order')
  t.same(headers, [null, '2', '4'], 'each reconnect carried the last id seen')
})

// The hub's options are checked where they are given: at registration (`hub`) and per
// subscription (`reply.sseSubscribe(topics, options)`), each bad one with a typed error. And a
// Last-Event-ID that is not an id of the subscription is answered `unknown`, never misread.
import t from 'tap'
import Fastify from 'fastify'
import sse, { memoryBroker } from '../index.js'
import { listen } from './helpers/http.js'
import { SseReader, resetData } from './helpers/hub.js'

t.test('bad hub options fail the registration with FST_ERR_SSE_INVALID_OPTION', async (t) => {
  const broker = memoryBroker()
  const cases: Array<[unknown, RegExp]> = [
    [null, /hub/],
    ['yes', /hub/],
    [{ history: 5 }, /hub\.history/],
    [{ history: { size: 0 } }, /hub\.history\.size/],
    [{ history: { size: Infinity } }, /hub\.history\.size/],
    [{ history: { maxAge: 1.5 } }, /hub\.history\.maxAge/],
    [{ history: { bytes: '1' } }, /hub\.history\.bytes/],
    [{ history: { totalBytes: -1 } }, /hub\.history\.totalBytes/],
    [{ broker: {} }, /hub\.broker/],
    [{ broker: { ...broker, range: undefined } }, /hub\.broker/],
    [{ resetEvent: '' }, /hub\.resetEvent/],
    [{ resetEvent: 'a b' }, /hub\.resetEvent/],
    [{ resetEvent: 7 }, /hub\.resetEvent/]
  ]
  for (const [hub, name] of cases) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(sse, { hub } as never) }, { code: 'FST_ERR_SSE_INVALID_OPTION', message: name }, JSON.stringify(hub))
    await app.close()
  }
})

t.test('bad subscription options are answered with FST_ERR_SSE_INVALID_OPTION, before the stream opens', async (t) => {
  const app = Fastify()
  await app.register(sse, { heartbeat: false })
  const cases: Array<[unknown, string]> = [
    [null, 'options'],
    [5, 'options'],
    [{ from: 'start' }, 'from'],
    [{ policy: 'drop' }, 'policy'],
    [{ key: 'id' }, 'key'],
    [{ filter: true }, 'filter'],
    [{ lag: 3 }, 'lag'],
    [{ lag: { events: 0 } }, 'lag.events'],
    [{ lag: { bytes: 'x' } }, 'lag.bytes'],
    [{ lag: { ms: Infinity } }, 'lag.ms'],
    [{ reset: 'stop' }, 'reset'],
    [{ prime: 1 }, 'prime'],
    [{ maxReplay: -1 }, 'maxReplay'],
    [{ comment: 5 }, 'comment']
  ]
  cases.forEach(([options], i) => app.get('/' + i, (request, reply) => reply.sseSubscribe('a', options as never)))
  // Infinity is a bound maxReplay takes (its default), and so is 0.
  app.get('/ok', (request, reply) => reply.sseSubscribe('a', { maxReplay: Infinity, lag: { events: 1 }, policy: 'conflate', key: () => '', filter: () => true, reset: 'close', prime: false, comment: 'c', from: 'oldest' }))
  const url = await listen(app)
  for (const [i, [options, name]] of cases.entries()) {
    const res = await fetch(`${url}/${i}`)
    t.equal(res.status, 500, JSON.stringify(options))
    const body = await res.json() as { code: string, message: string }
    t.equal(body.code, 'FST_ERR_SSE_INVALID_OPTION')
    t.match(body.message, new RegExp(`"${name.replace('.', '\\.')}"|\\b${name.replace('.', '\\.')}\\b`), name)
  }
  const controller = new AbortController()
  const ok = await fetch(`${url}/ok`, { signal: controller.signal })
  t.equal(ok.status, 200)
  controller.abort()
  app.server.closeAllConnections()
  await app.close()
})

t.test('a Last-Event-ID that is not an id of the subscription is reset as unknown', async (t) => {
  const app = Fastify()
  await app.register(sse, { heartbeat: false })
  app.get('/one', (request, reply) => reply.sseSubscribe('a'))
  app.get('/two', (request, reply) => reply.sseSubscribe(['a', 'b']))
  await app.sse.publish('a', { data: 1 })
  const url = await listen(app)
  const two = new SseReader(`${url}/two`)
  await two.waitForFrames(1)
  const hash = two.lastId!.split('.')[0]!
  two.destroy()
  const cases: Array<[string, string]> = [
    ['one', '99999999999999999-1'], // a time past the safe integers
    ['one', '1-99999999999999999'],
    ['two', `${hash}.1-1`], // one part for two topics
    ['two', `${hash}.1-1,1-1,1-1`],
    ['two', `${hash}.1-1,1_1`], // not base 36
    ['two', `${hash}.1-1,zzzzzzzzzzz-1`], // past the safe integers
    ['two', 'nohash-1-1'],
    ['two', `x${hash}.1-1,1-1`]
  ]
  for (const [path, id] of cases) {
    const reader = new SseReader(`${url}/${path}`, { lastEventId: id })
    const [frame] = await reader.waitForFrames(1)
    t.equal(frame!.event, 'sse-reset', id)
    t.equal(resetData(frame!).reason, 'unknown', id)
    t.equal(resetData(frame!).from, id)
    reader.destroy()
  }
  app.server.closeAllConnections()
  await app.close()
})

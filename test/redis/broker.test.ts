// The broker's contract in one process: options, idempotency, stored events for filters, the
// client left open, scripts reloaded, and the main entry that never loads ioredis.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import Fastify from 'fastify'
import sse from '../../index.js'
import { type RedisClient, redisBroker } from '../../lib/brokers/redis.js'
import { Reader } from '../helpers/redis-cluster.js'
import { client, redisAvailable, startRedis } from '../helpers/redis.js'

t.test('options are checked when the broker is made', async (t) => {
  const fake = { duplicate () {}, evalsha () {}, on () {} } as unknown as RedisClient
  for (const [options, name] of [
    [undefined, 'redisBroker options'],
    [{}, 'client'],
    [{ client: {} }, 'client'],
    [{ client: fake, prefix: 'a{b' }, 'prefix'],
    [{ client: fake, prefix: 7 }, 'prefix'],
    [{ client: fake, tag: 'slot' }, 'tag'],
    [{ client: { ...fake, isCluster: true } }, 'tag'],
    [{ client: fake, storeEvent: 'yes' }, 'storeEvent'],
    [{ client: fake, maxLen: 0 }, 'maxLen'],
    [{ client: fake, block: 1.5 }, 'block'],
    [{ client: fake, timeout: '1' }, 'timeout']
  ] as const) {
    t.throws(() => redisBroker(options as never), { code: 'FST_ERR_SSE_INVALID_OPTION', message: new RegExp(name) }, name)
  }
  t.ok(redisBroker({ client: { ...fake, isCluster: true } as RedisClient, tag: 'prefix', prefix: '' }))
})

t.test('the main entry never loads ioredis', async (t) => {
  // A resolve hook records every bare specifier the main entry's graph asks for.
  const hook = `data:text/javascript,${encodeURIComponent(`
    export async function resolve (specifier, context, next) {
      if (!specifier.startsWith('.') && !specifier.startsWith('node:') && !specifier.startsWith('file:')) process.stdout.write(specifier + '\\n')
      return next(specifier, context)
    }`)}`
  const register = `data:text/javascript,${encodeURIComponent(`import { register } from 'node:module'; register(${JSON.stringify(hook)})`)}`
  const main = new URL('../../dist/index.js', import.meta.url).href
  const redis = new URL('../../dist/lib/brokers/redis.js', import.meta.url).href
  const load = (entry: string): string[] => spawnSync(process.execPath, ['--import', register, '-e', `await import(${JSON.stringify(entry)})`, '--input-type=module'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)
  const loaded = load(main)
  t.ok(loaded.includes('fastify-plugin'), 'the hook sees the packages loaded: ' + loaded.join(', '))
  t.notOk(loaded.some((name) => name.startsWith('ioredis')), 'no ioredis')
  t.notOk(load(redis).some((name) => name.startsWith('ioredis')), 'the Redis entry takes a client, and loads none either')
})

t.test('with Redis', redisAvailable(), async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())

  t.test('publish: idempotency keys, the user\'s client left open, scripts loaded again', async (t) => {
    const c = client(server)
    const broker = redisBroker({ client: c, prefix: 'p:' })
    const app = Fastify()
    await app.register(sse, { hub: { broker } })
    const first = await app.sse.publish('idem', { data: 1 }, { idempotencyKey: 'k-1' })
    t.equal(await app.sse.publish('idem', { data: 1 }, { idempotencyKey: 'k-1' }), first, 'a retry answers the first id')
    t.not(await app.sse.publish('idem', { data: 1 }, { idempotencyKey: 'k-2' }), first)
    t.equal(await c.xlen('p:{idem}:s'), 2)
    await t.rejects(app.sse.publish('idem', { data: 1 }, { idempotencyKey: 'a}b' }), { code: 'FST_ERR_SSE_INVALID_OPTION' })
    await t.rejects(app.sse.publish('idem', { data: 1 }, null as never), { code: 'FST_ERR_SSE_INVALID_OPTION' })
    // The server forgot the script: the broker sends it again.
    await c.script('FLUSH')
    t.match(await app.sse.publish('idem', { data: 3 }), /^\d+-3$/)
    t.same((await broker.range('idem', { t: Number(first.split('-')[0]), o: 1 }, 10)).map((e) => e.o), [2, 3], 'range pages what Redis holds')
    await app.close()
    await t.rejects(broker.append('idem', { body: Buffer.from('data: x\n') }), /closed/)
    t.equal(c.status, 'ready', 'the user\'s client stays open')
    t.equal(await c.ping(), 'PONG')
    c.disconnect()
  })

  t.test('filters see the stored event, or the event read back from its frame', async (t) => {
    for (const storeEvent of [true, false]) {
      const c = client(server, storeEvent ? {} : { protocol: 2 })
      const broker = redisBroker({ client: c, storeEvent, tag: 'prefix', prefix: 'f' + String(storeEvent) })
      const app = Fastify()
      await app.register(sse, { hub: { broker } })
      const seen: unknown[] = []
      app.get('/s', (request, reply) => reply.sseSubscribe('f', { filter: (event) => { seen.push(event); return true } }))
      await app.listen({ port: 0, host: '127.0.0.1' })
      const reader = new Reader('f')
      await reader.connect((app.server.address() as { port: number }).port)
      await reader.until(() => reader.lastEventId !== undefined)
      await app.sse.publish('f', { event: 'e', data: { n: 1 }, comment: 'c' })
      await app.sse.publish('f', { data: 'two\nlines' })
      await reader.until((f) => f.length === 2)
      t.same(seen, storeEvent
        ? [{ event: 'e', data: { n: 1 }, comment: 'c' }, { data: 'two\nlines' }]
        : [{ comment: 'c', event: 'e', data: '{"n":1}' }, { data: 'two\nlines' }], `storeEvent ${String(storeEvent)}`)
      await reader.disconnect()
      app.server.closeAllConnections()
      await app.close()
      c.disconnect()
    }
  })

  t.test('a client still connecting is waited for; a piped topic ends on every node', async (t) => {
    const c = client(server, { lazyConnect: true })
    const broker = redisBroker({ client: c })
    const app = Fastify()
    await app.register(sse, { hub: { broker } })
    app.get('/s', (request, reply) => reply.sseSubscribe('piped'))
    void c.connect()
    await app.sse.pipe('piped', [{ data: 1 }, { data: 2 }])
    await app.listen({ port: 0, host: '127.0.0.1' })
    const port = (app.server.address() as { port: number }).port
    const reader = new Reader('piped')
    reader.lastEventId = '0-0'
    await reader.connect(port)
    await reader.done
    t.same(reader.values, [1, 2], 'replayed to its end, then the stream ended')
    // The client has it all: 204.
    const res = await fetch(`http://127.0.0.1:${port}/s?topics=piped`, { headers: { 'last-event-id': reader.lastEventId! } })
    t.equal(res.status, 204)
    await app.close()
    c.disconnect()
  })
})

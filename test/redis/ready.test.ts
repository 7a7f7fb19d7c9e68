// Commands that wait for Redis share one 'ready' listener on the user's client: a burst of
// publishes during an outage neither adds a listener per publish (Node warns past ten) nor loses
// a publish once Redis is back.
import { once } from 'node:events'
import t from 'tap'
import Fastify from 'fastify'
import sse from '../../index.js'
import { redisBroker } from '../../lib/brokers/redis.js'
import { client, redisAvailable, startRedis } from '../helpers/redis.js'

t.test('publishes waiting for Redis share one ready listener, and all resolve once it is back', redisAvailable(), async (t) => {
  const redis = await startRedis()
  t.teardown(() => redis.stop())
  const c = client(redis)
  // A long timeout: the restart below may take a few seconds on a loaded machine.
  const broker = redisBroker({ client: c, timeout: 20_000 })
  const app = Fastify()
  await app.register(sse, { hub: { broker } })
  await app.ready()
  t.teardown(async () => {
    await app.close()
    c.disconnect()
  })
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })

  const first = await app.sse.publish('burst', { data: 0 })
  const before = c.listenerCount('ready')
  const closed = once(c, 'close')
  await redis.kill()
  await closed
  t.not(c.status, 'ready', 'the client knows Redis is gone')
  const pending = Array.from({ length: 25 }, (_, i) => app.sse.publish('burst', { data: i + 1 }))
  t.equal(c.listenerCount('ready'), before + 1, 'one listener for every waiting publish')
  await redis.start()
  const ids = await Promise.all(pending)
  t.equal(new Set([first, ...ids]).size, 26, 'every publish stored, each under its own id')
  t.equal(c.listenerCount('ready'), before, 'the listener is gone once Redis is ready')
  // Node emits its warning on the next tick after the listener that crossed the limit.
  await new Promise((resolve) => setImmediate(resolve))
  t.same(warnings.filter((w) => w.name === 'MaxListenersExceededWarning').map((w) => w.message), [], 'no leak warning')
})

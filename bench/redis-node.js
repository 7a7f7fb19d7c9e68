// One node of the Redis benchmark: a Fastify server process on Redis, driven by bench/redis.js.
// Usage (by bench/redis.js only): node bench/redis-node.js <hub|pubsub> <redis port> <cache size>
//
//   hub     this plugin's hub on redisBroker: app.sse.publish() and reply.sseSubscribe(), through
//           the contract alone.
//   hub-keyed  the same, each publish with an idempotency key (the restart phase).
//   pubsub  the baseline: what better-sse's maintainer recommends for several instances (better-sse
//           issue 86). Each node SUBSCRIBEs to a Redis channel and re-broadcasts every message to
//           its local clients; a publish is one PUBLISH. Written by hand, as a Fastify route with a
//           hijacked reply and hand-written frames (the Fastify floor's backpressure queue), so
//           that only the broker differs from the hub.
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { monoMs, payload } from './lib/payload.js'
import { queuedWriter } from './lib/raw-writer.js'
import { serveCommands } from './lib/ipc.js'

const [subject, redisPort, cacheArg] = process.argv.slice(2)
const TOPIC = 'bench'
const HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  connection: 'keep-alive'
}

const client = new Redis({ port: Number(redisPort), host: '127.0.0.1' })
client.on('error', () => {})
const app = Fastify()
let broker = null
let publish

if (subject === 'hub' || subject === 'hub-keyed') {
  const { default: sse } = await import('../dist/index.js')
  const { redisBroker } = await import('../dist/lib/brokers/redis.js')
  // Redis keeps far more than the cache, so that a cursor older than the cache pages from Redis.
  broker = redisBroker({ client, maxLen: 100_000 })
  await app.register(sse, { hub: { broker, history: { size: Number(cacheArg), maxAge: 3_600_000 } } })
  app.get('/sub', (req, reply) => reply.sseSubscribe(TOPIC))
  // hub-keyed: each publish with an idempotency key (the event's index), the documented way to
  // store an event once even when the same publish reaches Redis twice.
  const keyed = subject === 'hub-keyed'
  publish = (obj, topic = TOPIC) => app.sse.publish(topic, { data: obj }, keyed && obj.i !== undefined ? { idempotencyKey: 'e' + obj.i } : undefined)
} else if (subject === 'pubsub') {
  const subscriber = client.duplicate()
  subscriber.on('error', () => {})
  const locals = new Set()
  await subscriber.subscribe(TOPIC)
  subscriber.on('message', (channel, message) => {
    const frame = 'data: ' + message + '\n\n'
    // As the bench's broadcaster calls its subscribers: no object, the JSON, the frame.
    for (const fn of locals) fn(null, message, frame)
  })
  app.get('/sub', (req, reply) => {
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, HEADERS)
    res.flushHeaders()
    const send = queuedWriter(res)
    locals.add(send)
    res.on('close', () => locals.delete(send))
  })
  // Resolves with the number of subscribers Redis handed the message to (the hub: the event's id).
  publish = (obj, topic = TOPIC) => client.publish(topic, JSON.stringify(obj)).then(String)
  app.addHook('onClose', async () => { subscriber.disconnect() })
} else {
  throw new Error('unknown subject ' + subject)
}
await app.listen({ port: 0, host: '127.0.0.1', backlog: 2048 })

/**
 * Publishes this node's share of events first … first+count-1 (event i is this node's when
 * i % nodes === node) on a fixed schedule: event i is due at startMono + (i - first) * period on
 * the machine's monotonic clock, which every process shares. Resolves once every publish settled,
 * with each one's outcome: the id for those that resolved (pub/sub: ''), the error for the others.
 */
function run ({ count, rate, first = 0, node, nodes, startMono }) {
  const period = 1000 / rate
  const mine = []
  for (let i = first; i < first + count; i++) if (i % nodes === node) mine.push(i)
  const ok = []
  const ids = []
  const failed = []
  const settling = []
  let k = 0
  let firstEmit = 0
  let lastEmit = 0
  return new Promise((resolve) => {
    const tick = () => {
      const i = mine[k++]
      const now = monoMs()
      if (firstEmit === 0) firstEmit = now
      lastEmit = now
      settling.push(publish(payload(i, now)).then((id) => { ok.push(i); ids.push(id) }, (err) => { failed.push({ i, error: String(err?.message ?? err) }) }))
      if (k >= mine.length) {
        Promise.allSettled(settling).then(() => resolve({ ok, ids, failed, emitMs: lastEmit - firstEmit }))
        return
      }
      setTimeout(tick, Math.max(0, startMono + (mine[k] - first) * period - monoMs()))
    }
    if (mine.length === 0) return resolve({ ok, ids, failed, emitMs: 0 })
    setTimeout(tick, Math.max(0, startMono + (mine[0] - first) * period - monoMs()))
  })
}

let cpuStart = null
// BENCH_PROF_DIR (run.js --profile): a CPU profile of the measured window alone, from cpu-start to
// cpu-stop, written there (bench/profile-summary.js reads it).
const profDir = process.env.BENCH_PROF_DIR
let session = null
const post = (method) => new Promise((resolve, reject) => session.post(method, (err, res) => err ? reject(err) : resolve(res)))

async function handle (msg) {
  switch (msg.cmd) {
    case 'cpu-start':
      if (profDir !== undefined) {
        const { Session } = await import('node:inspector')
        session = new Session()
        session.connect()
        await post('Profiler.enable')
        await post('Profiler.start')
      }
      cpuStart = process.cpuUsage()
      return {}
    case 'cpu-stop': {
      const d = process.cpuUsage(cpuStart)
      if (session !== null) {
        const { profile } = await post('Profiler.stop')
        const { writeFileSync } = await import('node:fs')
        writeFileSync(`${profDir}/redis-${subject}-${process.pid}-${Date.now()}.cpuprofile`, JSON.stringify(profile))
        session.disconnect()
        session = null
      }
      return { cpuUs: d.user + d.system, userUs: d.user }
    }
    case 'publish':
      return run(msg)
    case 'warmup':
      await publish({ warmup: true }, 'warmup')
      return {}
    case 'stats':
      return broker === null ? null : { ...broker.stats }
    case 'exit':
      app.server.closeAllConnections()
      await Promise.race([app.close(), new Promise((resolve) => setTimeout(resolve, 2000))])
      client.disconnect()
      setImmediate(() => process.exit(0))
      return {}
    default:
      throw new Error('unknown command ' + msg.cmd)
  }
}

serveCommands(handle, app.server.address().port)

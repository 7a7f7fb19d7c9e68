// One node of a deployment, in its own process (forked by test/helpers/redis-cluster.ts): a
// Fastify server with the Redis broker on the port given in REDIS_PORT, driven over IPC.
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import sse from '../../index.js'
import { redisBroker } from '../../lib/brokers/redis.js'

const port = Number(process.env.REDIS_PORT)
const brokerOptions = JSON.parse(process.env.BROKER_OPTIONS ?? '{}') as Record<string, unknown>
const hubOptions = JSON.parse(process.env.HUB_OPTIONS ?? '{}') as Record<string, unknown>

const client = new Redis({ port, host: '127.0.0.1' })
client.on('error', () => {})
const broker = redisBroker({ client, ...brokerOptions })
const app = Fastify()
await app.register(sse, { heartbeat: 1000, hub: { ...hubOptions, broker } })
app.get('/s', (request, reply) => {
  const query = request.query as { topics: string }
  const topics = query.topics.split(',')
  return reply.sseSubscribe(topics.length === 1 ? topics[0]! : topics)
})

/**
 * A piped producer of `count` events `interval` ms apart. Each run is counted in Redis (the list
 * `runs:<topic>` gets this process's pid), so that a test counts the runs across processes.
 */
function work (topic: string, count: number, interval: number) {
  return (signal: AbortSignal) => {
    const counted = client.rpush('runs:' + topic, String(process.pid))
    return (async function * () {
      await counted
      for (let i = 0; i < count; i++) {
        yield { data: JSON.stringify({ i, pid: process.pid }) }
        await sleep(interval, undefined, { signal })
      }
    })()
  }
}

// A resumable request stream: the work runs once per Idempotency-Key, a repeat (with its
// Last-Event-ID) resumes it, on whichever node it lands.
app.post('/chat', (request, reply) => {
  const key = String(request.headers['idempotency-key'])
  const query = request.query as { count?: string, interval?: string }
  const topic = 'chat:' + key
  app.sse.pipe(topic, work(topic, Number(query.count ?? 5), Number(query.interval ?? 50))).catch(() => {})
  return reply.sseSubscribe(topic, { from: 'oldest', prime: false })
})
await app.listen({ port: 0, host: '127.0.0.1' })

type Command = { n: number, cmd: 'publish', topic: string, data: unknown } |
{ n: number, cmd: 'pipe', topic: string, count: number, interval: number } |
{ n: number, cmd: 'stats' } | { n: number, cmd: 'memory' } | { n: number, cmd: 'close' }

process.on('message', (message: Command) => {
  const answer = (value: unknown): void => { process.send!({ n: message.n, value }) }
  const fail = (error: Error): void => { process.send!({ n: message.n, error: error.message }) }
  if (message.cmd === 'publish') {
    app.sse.publish(message.topic, { data: message.data }).then(answer, fail)
  } else if (message.cmd === 'pipe') {
    app.sse.pipe(message.topic, work(message.topic, message.count, message.interval)).then(() => answer(true), fail)
  } else if (message.cmd === 'stats') {
    answer({ ...broker.stats, connections: app.server.connections })
  } else if (message.cmd === 'memory') {
    globalThis.gc?.()
    globalThis.gc?.()
    answer(process.memoryUsage().heapUsed)
  } else {
    app.server.closeAllConnections()
    void app.close().then(() => {
      client.disconnect()
      answer(true)
      process.disconnect()
    })
  }
})
process.send!({ ready: (app.server.address() as { port: number }).port })

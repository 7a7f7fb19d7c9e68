// The demo behind `npm start`: the seed's stream, a live ticker, and a page that shows both.
// Plain ESM on the built package: run `npm run build` first (`npm start` does).
import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import fastifyCors from '@fastify/cors'
import fastifyStatic from '@fastify/static'
import fp from 'fastify-plugin'
import sse from '../dist/index.js'

const here = dirname(fileURLToPath(import.meta.url))

/** Resolves after `ms`, or at once when `signal` aborts (the client left, or the server closes). */
function wait (ms, signal) {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false)
    const done = (value) => {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      resolve(value)
    }
    const onAbort = () => done(false)
    const timer = setTimeout(() => done(true), ms)
    signal.addEventListener('abort', onAbort)
  })
}

/** Local time as `YYYY-MM-DD HH:MM:SS`, like the seed's `time.strftime('%Y-%m-%d %H:%M:%S')`. */
export function formatTime (date = new Date()) {
  const p = (n) => String(n).padStart(2, '0')
  return `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())} ` +
    `${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())}`
}

// An idempotency key names a client's work: 1 to 128 of the URL's unreserved characters (RFC 3986),
// so that it goes into the resume URL as it is. The header may hold it bare or quoted ("...").
const KEY = /^[A-Za-z0-9._~-]{1,128}$/

/** The `Idempotency-Key` header's key, undefined when absent; throws a 400 when it is malformed. */
function idempotencyKey (request) {
  const header = request.headers['idempotency-key']
  if (header === undefined) return undefined
  const key = typeof header === 'string' && header.length > 2 && header.startsWith('"') && header.endsWith('"')
    ? header.slice(1, -1)
    : header
  if (typeof key === 'string' && KEY.test(key)) return key
  const error = new Error('Idempotency-Key must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ -')
  error.statusCode = 400
  throw error
}

/**
 * The seed's endpoint, made resumable with the hub. Its work (three `error` events, two time
 * events and an `end` event, `interval` ms apart, each with `retry`) runs in `app.sse.pipe()`,
 * into the topic `seed:<key>`, independently of the connection: it runs to its end even when the
 * client goes. The client reads it through `reply.sseSubscribe()`, from the first event.
 * - GET or POST /sse: the key is the `Idempotency-Key` header, else a fresh UUID (a new run of the
 *   work, as the seed does on every request).
 * - GET or POST /sse/:key: the same stream by its URL, for clients that cannot send headers
 *   (a native EventSource).
 * A client that reconnects with the same key and a `Last-Event-ID` resumes after that event; with
 * the same key and no id, it gets the stream from the start; neither starts the work again while
 * the hub holds its history. Every stream begins with the comment `: resume=/sse/<key>`.
 * Ids are the hub's positions, not the seed's constant 123 (which could not resume).
 * `onStart(key)` is called each time the work starts (the tests count the runs).
 */
export async function seedRoutes (app, { interval = 1000, retry = 15000, onStart = () => {} } = {}) {
  async function * seedEvents (signal) {
    for (let i = 0; i < 3; i++) {
      yield { retry, event: 'error', data: 'system has some error.' }
      if (!await wait(interval, signal)) return
    }
    for (let i = 0; i < 2; i++) {
      yield { retry, data: `The time is ${formatTime()}` }
      if (!await wait(interval, signal)) return
    }
    yield { retry, event: 'end', data: 'The end' }
  }
  function stream (request, reply, key) {
    const topic = 'seed:' + key
    // Starts the work unless it runs already, or has run and its history is still held. The
    // signal aborts only when the server closes, never when this client goes.
    app.sse.pipe(topic, (signal) => {
      request.log.info({ key }, 'demo: the seed\'s work starts')
      onStart(key)
      return seedEvents(signal)
    }).catch((error) => request.log.warn({ err: error, key }, 'demo: the seed\'s work could not run'))
    return reply.sseSubscribe(topic, { from: 'oldest', prime: false, comment: `resume=/sse/${key}` })
  }
  // POST is what the seed's fetch-event-source front end sends, with a JSON body.
  app.route({
    method: ['GET', 'POST'],
    url: '/sse',
    handler: (request, reply) => stream(request, reply, idempotencyKey(request) ?? randomUUID())
  })
  app.route({
    method: ['GET', 'POST'],
    url: '/sse/:key',
    schema: { params: { type: 'object', properties: { key: { type: 'string', pattern: KEY.source } } } },
    handler: (request, reply) => stream(request, reply, request.params.key)
  })
}

/**
 * A ticker that shows what the plugin adds to the seed:
 * - each connection sends `perConnection` ticks `every` ms apart, stays quiet for `idle` ms (the
 *   heartbeat keeps it alive), then ends, as a deploy or a load balancer would end it;
 * - the browser reconnects after `retry` ms with `Last-Event-ID`, and the ticker resumes right
 *   after that id: no gap, no duplicate;
 * - past `limit` ticks, or with `?stop=1`, it answers 204 No Content, which tells an EventSource
 *   to stop reconnecting for good.
 */
export async function tickerRoutes (app, {
  every = 1000,
  perConnection = 5,
  limit = 20,
  retry = 2000,
  heartbeat = 3000,
  idle = 2 * heartbeat + 500 // long enough for at least one heartbeat
} = {}) {
  app.get('/ticker', (request, reply) => {
    const last = Number(request.lastEventId)
    const start = Number.isInteger(last) && last > 0 ? last + 1 : 1
    if (request.query.stop !== undefined || start > limit) return reply.code(204).send()
    return reply.sse(async function * ({ signal, lastEventId }) {
      yield {
        event: 'resume',
        data: lastEventId === undefined
          ? `no Last-Event-ID: starting at ${start}`
          : `Last-Event-ID ${lastEventId}: resuming at ${start}`
      }
      const stop = Math.min(start + perConnection - 1, limit)
      for (let n = start; n <= stop; n++) {
        yield { id: n, event: 'tick', data: `tick ${n} of ${limit} at ${formatTime()}` }
        if (n < stop && !await wait(every, signal)) return
      }
      await wait(idle, signal)
    }, { retry, heartbeat })
  })
}

/**
 * The broadcast panel's server side: one topic per name (`board:<name>`), read by any number of
 * subscribers on GET /topics/:name, and written by POST /publish `{ topic, text }`, which answers
 * with the id the hub gave the event. A subscriber starts at the live edge, primed with its
 * position, and resumes by `Last-Event-ID` after a drop: no gap, no duplicate. Each event's data
 * names the node that published it (`node`); with the Redis broker, that may not be the node
 * whose stream delivers it.
 */
export async function broadcastRoutes (app, { retry = 1000, node } = {}) {
  const name = { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' }
  app.get('/topics/:name', {
    schema: { params: { type: 'object', properties: { name } } }
  }, (request, reply) => reply.sseSubscribe('board:' + request.params.name, { retry }))
  app.post('/publish', {
    schema: {
      body: {
        type: 'object',
        required: ['topic', 'text'],
        additionalProperties: false,
        properties: { topic: name, text: { type: 'string', minLength: 1, maxLength: 500 } }
      }
    }
  }, async (request) => {
    const { topic, text } = request.body
    const by = nodeName(app, node)
    const id = await app.sse.publish('board:' + topic, { event: 'post', data: { text, at: formatTime(), node: by } })
    return { id, node: by }
  })
}

/** This instance's name: `node`, else the port it listens on. */
function nodeName (app, node) {
  return node ?? String(app.server.address()?.port)
}

const NODES = 'demo:nodes'
const NODE_TTL = 15_000

/**
 * GET /nodes: this instance's name (`node`, else its port), which broker its hub runs on, and the
 * instances a page can switch to, `{ broker, node, nodes: [{ name, port }] }`.
 * - In memory, the list is this instance alone.
 * - With `client` (an ioredis client), instances on one Redis find each other there: each keeps
 *   its name and port in the hash `demo:nodes` from the moment it listens, refreshed every 5 s,
 *   and deletes it when it closes. The list holds those seen in the last 15 s, so one killed
 *   without closing drops out.
 * A page finds another instance by its port, on the host it was served from.
 */
export async function nodeRoutes (app, { node, client } = {}) {
  const port = () => app.server.address()?.port
  if (client !== undefined) {
    // Name and port are read once listening: when onClose runs, the server has no address.
    let self
    const beat = () => client.hset(NODES, self.name, JSON.stringify({ port: self.port, seen: Date.now() }))
      .catch((error) => app.log.warn({ err: error }, 'demo: could not register this node in Redis'))
    let timer
    app.addHook('onListen', async () => {
      self = { name: nodeName(app, node), port: port() }
      await beat()
      timer = setInterval(beat, NODE_TTL / 3).unref()
    })
    app.addHook('onClose', async () => {
      clearInterval(timer)
      if (self !== undefined) await client.hdel(NODES, self.name).catch(() => {})
    })
  }
  app.get('/nodes', async () => {
    const self = nodeName(app, node)
    if (client === undefined) return { broker: 'memory', node: self, nodes: [{ name: self, port: port() }] }
    const now = Date.now()
    const nodes = []
    for (const [name, value] of Object.entries(await client.hgetall(NODES))) {
      const entry = JSON.parse(value)
      if (now - entry.seen < NODE_TTL) nodes.push({ name, port: entry.port })
    }
    nodes.sort((a, b) => a.name.localeCompare(b.name))
    return { broker: 'redis', node: self, nodes }
  })
}

/**
 * Lets pages served by another instance on the same host (another port) use this one's routes:
 * CORS with the page's origin reflected when its host name is the one this request was sent to.
 * The demo registers it with the Redis broker only, where a page switches between instances.
 */
export const sameHostCors = fp(async function sameHostCors (app) {
  await app.register(fastifyCors, {
    delegator (request, callback) {
      let origin = false
      try {
        origin = new URL(request.headers.origin).hostname === request.hostname
      } catch {} // no Origin header, or not a URL: no CORS headers
      callback(null, { origin, methods: ['GET', 'POST'] })
    }
  })
}, { name: 'demo-same-host-cors' })

/**
 * Lets the page cut its own connections, to show a resume. A request whose URL has `?client=<id>`
 * is remembered until it ends; POST /drop/:client destroys the sockets of that client's open
 * requests, as a network failure would, and answers `{ dropped }` (404 when it has none).
 * Wrapped with fastify-plugin: its hook sees the routes of the whole app.
 */
export const dropRoutes = fp(async function dropRoutes (app) {
  const clients = new Map()
  app.addHook('onRequest', async (request, reply) => {
    const client = request.query.client
    if (typeof client !== 'string' || client === '') return
    const open = clients.get(client) ?? new Set()
    clients.set(client, open)
    const res = reply.raw
    open.add(res)
    // The response's close: it ended, or its connection did (the request's comes too early).
    res.once('close', () => {
      open.delete(res)
      if (open.size === 0) clients.delete(client)
    })
  })
  app.post('/drop/:client', async (request, reply) => {
    const open = clients.get(request.params.client)
    if (open === undefined) return reply.code(404).send({ dropped: 0 })
    const dropped = open.size
    for (const res of open) res.socket?.destroy()
    return { dropped }
  })
}, { name: 'demo-drop' })

// The page's files and fetch-event-source's are read on each request: no caching, so an edit shows.
const NO_CACHE = { cacheControl: false, setHeaders: (res) => res.setHeader('cache-control', 'no-cache') }

/**
 * Serves @microsoft/fetch-event-source's own ES module build from node_modules, under
 * /vendor/fetch-event-source/. Its files import each other without an extension
 * (`from './fetch'`), so a name without `.js` is served as the `.js` file.
 */
export async function vendorRoutes (app) {
  const require = createRequire(import.meta.url)
  const root = join(dirname(require.resolve('@microsoft/fetch-event-source/package.json')), 'lib', 'esm')
  await app.register(fastifyStatic, {
    root,
    prefix: '/vendor/fetch-event-source/',
    extensions: ['js'],
    allowedPath: (path) => path.endsWith('.js') || !path.includes('.'),
    decorateReply: false,
    ...NO_CACHE
  })
}

/**
 * Serves this package's client, `fastify-sse-stream/client` (the built dist/lib/client/), to the
 * page as one ES module at /vendor/client.js, eventsource-parser included. esbuild (a dev
 * dependency, like @fastify/static) bundles it once, when the demo starts.
 */
export async function clientBundleRoutes (app) {
  const { build } = await import('esbuild')
  const result = await build({
    entryPoints: [join(here, '..', 'dist', 'lib', 'client', 'index.js')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false
  })
  const code = result.outputFiles[0].text
  app.get('/vendor/client.js', (request, reply) =>
    reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(code))
}

/** The page at `/` and its files, plain HTML, CSS and JS from examples/public/. */
export async function pageRoutes (app) {
  await app.register(fastifyStatic, { root: join(here, 'public'), decorateReply: false, ...NO_CACHE })
}

/**
 * Builds the demo app (not listening). Options: `interval` and `retry` (the seed's, see
 * seedRoutes), `ticker` (see tickerRoutes), `broadcast` (see broadcastRoutes), `logger`
 * (Fastify's logger option), `node` (this instance's name; default its port), and `redis`:
 * `{ client, broker }`, an ioredis client and a Redis broker on it. Without `redis`, the hub is
 * in memory. With it, the hub runs on the broker, instances find each other (nodeRoutes), and
 * pages of other instances on the same host may use this one's routes (sameHostCors).
 */
export function buildDemo ({ interval = 1000, retry = 15000, ticker = {}, broadcast = {}, logger = false, node, redis } = {}) {
  const app = Fastify({ logger })
  app.register(sse, redis === undefined ? {} : { hub: { broker: redis.broker } })
  if (redis !== undefined) app.register(sameHostCors)
  app.register(dropRoutes)
  app.register(nodeRoutes, { node, client: redis?.client })
  app.register(seedRoutes, { interval, retry })
  app.register(tickerRoutes, ticker)
  app.register(broadcastRoutes, { node, ...broadcast })
  app.register(vendorRoutes)
  app.register(clientBundleRoutes)
  app.register(pageRoutes)
  return app
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env.PORT ?? 3000)
  // Loopback by default; HOST=0.0.0.0 opens the demo to the network (a phone on the same Wi-Fi).
  const host = process.env.HOST ?? '127.0.0.1'
  // NODE_NAME names this instance on the page (default: its port).
  const node = process.env.NODE_NAME || undefined
  let redis
  if (process.env.REDIS_URL) {
    // Only in this mode: ioredis is an optional peer dependency, which `npm start` never loads.
    const [{ Redis }, { redisBroker }] = await Promise.all([import('ioredis'), import('fastify-sse-stream/redis')])
    const client = new Redis(process.env.REDIS_URL)
    client.on('error', (error) => console.error(`demo: Redis: ${error.message}`))
    redis = { client, broker: redisBroker({ client }) }
  }
  const app = buildDemo({ logger: true, node, redis })
  await app.listen({ port, host })
  const shown = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host
  const where = redis === undefined
    ? 'in-memory hub'
    : `node ${nodeName(app, node)}, hub on Redis; start more with other PORTs`
  console.log(`\n  fastify-sse-stream demo (${where}): open http://${shown}:${app.server.address().port}/\n`)
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      // The broker closes with the app; the client is ours to close, after it.
      app.close().then(() => redis?.client.quit()).then(() => process.exit(0), () => process.exit(1))
    })
  }
}

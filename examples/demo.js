// The demo behind `npm start`: the seed's stream, a live ticker, and a page that shows both.
// Plain ESM on the built package: run `npm run build` first (`npm start` does).
import { readFileSync, readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import Fastify from 'fastify'
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

/**
 * The seed's endpoint on GET and POST /sse: three `error` events, two time events and an `end`
 * event, `interval` ms apart, each with `id: 123` and `retry: 15000`. Unlike the seed's Python,
 * the final event really carries its id and retry.
 */
export async function seedRoutes (app, { interval = 1000 } = {}) {
  const id = 123
  const retry = 15000
  async function * seedEvents ({ signal }) {
    for (let i = 0; i < 3; i++) {
      yield { id, retry, event: 'error', data: 'system has some error.' }
      if (!await wait(interval, signal)) return
    }
    for (let i = 0; i < 2; i++) {
      yield { id, retry, data: `The time is ${formatTime()}` }
      if (!await wait(interval, signal)) return
    }
    yield { id, retry, event: 'end', data: 'The end' }
  }
  // POST is what the seed's fetch-event-source front end sends, with a JSON body.
  app.route({ method: ['GET', 'POST'], url: '/sse', handler: (request, reply) => reply.sse(seedEvents) })
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
 * Serves @microsoft/fetch-event-source's own ES module build from node_modules, under
 * /vendor/fetch-event-source/. Its files import each other without an extension
 * (`from './fetch'`), so each one is served both with and without `.js`.
 */
export async function vendorRoutes (app) {
  const require = createRequire(import.meta.url)
  const dir = join(dirname(require.resolve('@microsoft/fetch-event-source/package.json')), 'lib', 'esm')
  const files = new Map()
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.js')) continue
    const source = readFileSync(join(dir, name), 'utf8')
    files.set(name, source)
    files.set(name.slice(0, -3), source)
  }
  app.get('/vendor/fetch-event-source/:file', (request, reply) => {
    const source = files.get(request.params.file)
    if (source === undefined) return reply.callNotFound()
    return reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(source)
  })
}

const PAGE_FILES = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/seed-client.js': ['seed-client.js', 'text/javascript; charset=utf-8'],
  '/style.css': ['style.css', 'text/css; charset=utf-8']
}

/** The page at `/` and its files, plain HTML, CSS and JS from examples/public/. */
export async function pageRoutes (app) {
  for (const [url, [file, type]] of Object.entries(PAGE_FILES)) {
    const body = readFileSync(join(here, 'public', file), 'utf8')
    app.get(url, (request, reply) => reply.type(type).header('cache-control', 'no-cache').send(body))
  }
}

/**
 * Builds the demo app (not listening). Options: `interval` (ms between the seed's events),
 * `ticker` (see tickerRoutes), `logger` (Fastify's logger option).
 */
export function buildDemo ({ interval = 1000, ticker = {}, logger = false } = {}) {
  const app = Fastify({ logger })
  app.register(sse)
  app.register(seedRoutes, { interval })
  app.register(tickerRoutes, ticker)
  app.register(vendorRoutes)
  app.register(pageRoutes)
  return app
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env.PORT ?? 3000)
  // Loopback by default; HOST=0.0.0.0 opens the demo to the network (a phone on the same Wi-Fi).
  const host = process.env.HOST ?? '127.0.0.1'
  const app = buildDemo({ logger: true })
  await app.listen({ port, host })
  const shown = host === '0.0.0.0' || host === '::' ? 'localhost' : host.includes(':') ? `[${host}]` : host
  console.log(`\n  fastify-sse-stream demo: open http://${shown}:${app.server.address().port}/\n`)
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
  }
}

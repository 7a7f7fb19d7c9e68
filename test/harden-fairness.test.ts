// A source that never waits (a sync iterable, an async generator settling in microtasks) must not
// hold the event loop while a fast client reads: timers, other requests and close() still run.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { build, deferred, listen } from './helpers/stream.js'

/** The largest gap between the ticks of a 10 ms interval, until `until` settles. */
async function largestGap (until: Promise<unknown>): Promise<{ gap: number, ticks: number }> {
  let last = performance.now()
  let gap = 0
  let ticks = 0
  const timer = setInterval(() => {
    const now = performance.now()
    gap = Math.max(gap, now - last)
    last = now
    ticks++
  }, 10)
  await until
  clearInterval(timer)
  return { gap, ticks }
}

/** A reader in another process, as curl would be: it reads as fast as the kernel delivers. */
function fastReader (url: string): { bytes: Promise<number>, stop: () => void } {
  const child = spawn(process.execPath, ['-e', `
    const http = require('node:http')
    let n = 0
    http.get(process.argv[1], (res) => {
      res.on('data', (c) => { n += c.length; if (n > 200000) process.stdout.write('') })
      res.on('close', () => { process.stdout.write(String(n)); process.exit(0) })
    })
  `, url], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => { out += c })
  const bytes = once(child, 'exit').then(() => Number(out))
  return { bytes, stop: () => child.kill() }
}

const sources = {
  'a sync generator': (stop: () => boolean) => function * () {
    let i = 0
    while (!stop()) yield { data: 'x' + i++ }
  },
  'an async generator that never awaits': (stop: () => boolean) => async function * () {
    let i = 0
    while (!stop()) yield { data: 'x' + i++ }
  },
  'a 500,000-event replay from an array': (_stop: () => boolean) =>
    Array.from({ length: 500_000 }, (_, i) => ({ id: i, data: 'event ' + i }))
}

for (const [name, make] of Object.entries(sources)) {
  t.test(`${name} streamed to a fast client in another process leaves the event loop turning`, async (t) => {
    const { app } = await build(t, { heartbeat: false })
    let stopped = false
    const started = deferred()
    const ended = new Promise<void>((resolve) => {
      app.get('/', (_req, reply) => {
        reply.sse(make(() => stopped)).then(() => resolve())
        started.resolve()
      })
    })
    app.get('/ping', async () => 'pong')
    const url = await listen(app)
    const reader = fastReader(url + '/')
    await started.promise
    // While it streams: a timer keeps ticking, and another request is answered.
    const measuring = new Promise((resolve) => setTimeout(resolve, 1000))
    const [{ gap, ticks }, ping] = await Promise.all([
      largestGap(measuring),
      fetch(url + '/ping').then((res) => res.text())
    ])
    t.equal(ping, 'pong', 'another request is answered while the source streams')
    stopped = true
    reader.stop()
    await ended
    // Before the fix the loop turned about once a second at best (two ticks in 3 s with curl), or
    // never. The bound leaves room for a loaded machine, not for a held loop.
    t.ok(gap < 500, `largest timer gap ${Math.round(gap)} ms (${ticks} ticks in 1 s)`)
    t.ok(ticks >= 10, `the interval ticked ${ticks} times`)
  })
}

t.test('under inject(), an endless source lets timers run, and ends when the source does', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  let stopped = false
  app.get('/', (_req, reply) => reply.sse(async function * () {
    let i = 0
    while (!stopped) yield { data: 'x' + i++ }
  }))
  await app.ready()
  const injected = app.inject({ url: '/' })
  // Before the fix this timer never fired: the process was held by the source.
  setTimeout(() => { stopped = true }, 300)
  const { gap } = await largestGap(injected)
  const res = await injected
  t.equal(res.statusCode, 200)
  t.match(res.body, /^data: x0\n\ndata: x1\n\n/)
  t.ok(gap < 500, `largest timer gap ${Math.round(gap)} ms`)
})

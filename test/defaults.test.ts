// Docs drift guard + defaults proven by behaviour, not only by DEFAULTS:
// - the docs/options.md table's "default" column equals lib/options.ts DEFAULTS, row for row;
// - heartbeat: with no option a 15000 ms timer is armed when a stream opens, and the stream opens
//   with `: heartbeat=15000`;
// - shutdownGrace: with no option a source that ignores its signal is cut after about 1000 ms;
// - queueLimit: with no option a sink holds exactly 1024 events behind a full socket, then overflows;
// - lastEventIdMaxLength: with no option 1024 code units are accepted, 1025 are not;
// - retryAfter: with no option the 503 given while closing carries Retry-After: 5.
import t from 'tap'
import Fastify from 'fastify'
import { readFileSync } from 'node:fs'
import { createHook } from 'node:async_hooks'
import { once } from 'node:events'
import sse, { type SseSink } from '../index.js'
import { DEFAULTS } from '../lib/options.js'
import { deferred, get, listen, within } from './helpers/http.js'
import { build, holdUntilClosing, isEnd, inDefaultShutdownWindow, open, silentClient, splitShutdownRetry } from './helpers/stream.js'

t.test('docs/options.md table defaults match DEFAULTS', async (t) => {
  const section = readFileSync(new URL('../docs/options.md', import.meta.url), 'utf8')
  const rows = [...section.matchAll(/^\|\s*`(\w+)`\s*\|\s*([^|]+?)\s*\|/gm)].map((m) => [m[1], m[2]] as const)
  const parse = (cell: string): unknown => {
    if (cell === 'none') return undefined
    const v = cell.replace(/^`|`$/g, '')
    if (v === 'JSON.stringify') return JSON.stringify
    if (v === '(request) => request.ip') return DEFAULTS.admissionKey({ ip: '10.0.0.1' } as never) === '10.0.0.1' ? DEFAULTS.admissionKey : 'not request.ip'
    if (v === 'false') return false
    if (/^'.*'$/.test(v)) return v.slice(1, -1)
    if (/^\d+$/.test(v)) return Number(v)
    if (/^\[\d+, \d+\]$/.test(v)) return JSON.parse(v)
    return `unparsed: ${cell}`
  }
  // `opening` is derived from retry and heartbeat (the lines a stream opens with), not an option.
  const options = Object.keys(DEFAULTS).filter((name) => name !== 'opening')
  t.same(rows.map(([name]) => name).sort(), options.sort(), 'one docs/options.md row per option, no more')
  for (const [name, cell] of rows) {
    t.same(parse(cell), (DEFAULTS as unknown as Record<string, unknown>)[name], `${name}: docs/options.md says ${cell}`)
  }
})

t.test('heartbeat defaults to 15000 ms: advertised first, the shared scheduler looks every second, no ping comes early', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse, { writeTimeout: false })
  const opened = deferred()
  app.get('/', (_req, reply) => reply.sse(async function * ({ signal }) {
    yield { data: 'a' }
    opened.resolve()
    await once(signal, 'abort').catch(() => {})
  }))
  const url = await listen(app)
  const delays: number[] = []
  const hook = createHook({
    init (_id, type, _trigger, resource) {
      if (type === 'Timeout') delays.push((resource as { _idleTimeout: number })._idleTimeout)
    }
  })
  hook.enable()
  t.teardown(() => hook.disable())
  const client = await open(url + '/')
  await client.waitFor('data: a\n\n')
  await opened.promise
  hook.disable()
  // One interval for every stream's heartbeat, a quarter of the interval capped at 1 s.
  t.ok(delays.includes(1000), `the heartbeat scheduler runs every 1000 ms (${JSON.stringify([...new Set(delays)])})`)
  t.equal(client.text, ': heartbeat=15000\ndata: a\n\n', 'the default interval is advertised first; no ping yet')
  client.destroy()
  await client.closed
})

t.test('shutdownGrace defaults to 1000 ms', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false })
  const finished = deferred()
  app.get('/', (_req, reply) => reply.sse(async function * () {
    try {
      for (let i = 0; i < 10_000; i++) {
        yield { data: `n ${i}` }
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    } finally { finished.resolve() }
  }))
  const client = await open(await listen(app) + '/')
  await client.waitFor('n 1\n')
  const t0 = performance.now()
  await within(app.close(), 4000, 'app.close()')
  const took = performance.now() - t0
  await within(finished.promise, 1000, 'the source to be released')
  t.ok(took >= 900 && took < 2500, `app.close() took ${Math.round(took)} ms (default grace 1000 ms)`)
  t.equal(logs.lines.filter(isEnd)[0]?.sse.reason, 'shutdown')
  await within(client.closed, 1000, 'the response to end')
  const { frames, retry } = splitShutdownRetry(client.text)
  t.ok(frames.endsWith('\n\n'), 'ended on a frame boundary')
  t.ok(inDefaultShutdownWindow(retry), `then the shutdown's retry line (${retry} ms)`)
})

t.test('queueLimit defaults to 1024 events', async (t) => {
  const { app, logs } = await build(t, { heartbeat: false, writeTimeout: false })
  const result = deferred<{ maxPending: number, queuedBeforeClose: number }>()
  app.get('/', (_req, reply) => {
    const sink: SseSink = reply.sseSink()
    // Fill the socket with big frames until the sink starts to queue.
    for (let i = 0; i < 10_000 && sink.pending === 0; i++) void sink.send({ data: 'f'.repeat(64 * 1024) })
    let maxPending = sink.pending
    let queued = 0
    for (let i = 0; i < 5000 && !sink.closed; i++) {
      void sink.send({ data: 's' })
      if (!sink.closed) { queued++; maxPending = Math.max(maxPending, sink.pending) }
    }
    result.resolve({ maxPending, queuedBeforeClose: queued })
  })
  const client = await silentClient(await listen(app) + '/')
  t.teardown(() => client.destroy())
  const { maxPending } = await within(result.promise, 5000, 'the sink to overflow')
  t.equal(maxPending, 1024, 'exactly 1024 events were held')
  t.equal((await logs.waitFor(isEnd)).sse.reason, 'overflow')
})

t.test('lastEventIdMaxLength defaults to 1024 UTF-16 code units', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse)
  app.get('/', (req, reply) => reply.sse([{ data: String(req.lastEventId?.length ?? 'none') }]))
  const url = await listen(app)
  t.equal((await get(url + '/', { headers: { 'last-event-id': 'x'.repeat(1024) } })).body, ': heartbeat=15000\ndata: 1024\n\n')
  t.equal((await get(url + '/', { headers: { 'last-event-id': 'x'.repeat(1025) } })).body, ': heartbeat=15000\ndata: none\n\n')
})

t.test('retryAfter defaults to 5 s on the 503 given while closing', async (t) => {
  const { app } = await build(t)
  const shutdown = holdUntilClosing(app)
  app.get('/', async (_req, reply) => {
    await shutdown.hold()
    return reply.sse([{ data: 'late' }])
  })
  const base = await listen(app)
  const res = get(base + '/', { headers: { connection: 'close' } })
  const { closed } = await shutdown.close()
  const r = await res
  t.equal(r.status, 503)
  t.equal(r.headers['retry-after'], '5')
  await closed
})

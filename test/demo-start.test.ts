// `npm start` without REDIS_URL: the demo as it runs (node examples/demo.js, in a child process)
// stays on the in-memory hub, never loads ioredis (an optional peer dependency, which a user of
// the demo may not have), answers no cross-origin request, and closes cleanly on SIGTERM.
// test/redis/demo.test.ts runs it with REDIS_URL.
import t from 'tap'
import { startDemo } from './helpers/demo-process.js'

// A resolve hook that writes every bare specifier asked for to stderr, and refuses ioredis: a demo
// that tried to load it would fail to start.
const hook = `data:text/javascript,${encodeURIComponent(`
  export async function resolve (specifier, context, next) {
    if (!specifier.startsWith('.') && !specifier.startsWith('node:') && !specifier.startsWith('file:') && !specifier.startsWith('data:')) {
      process.stderr.write('resolve: ' + specifier + '\\n')
      if (specifier === 'ioredis' || specifier.startsWith('ioredis/')) throw new Error('ioredis must not load in memory mode')
    }
    return next(specifier, context)
  }`)}`
const register = `data:text/javascript,${encodeURIComponent(`import { register } from 'node:module'; register(${JSON.stringify(hook)})`)}`

t.test('without REDIS_URL: the in-memory hub, no ioredis loaded, no CORS, a clean exit', async (t) => {
  const demo = await startDemo({}, ['--import', register])
  t.teardown(() => demo.stop())
  t.match(demo.banner, /^fastify-sse-stream demo \(in-memory hub\): open http:\/\/127\.0\.0\.1:\d+\/$/)

  const res = await fetch(`${demo.url}/nodes`, { headers: { origin: `http://127.0.0.1:${demo.port + 1}` } })
  t.same(await res.json(), { broker: 'memory', node: String(demo.port), nodes: [{ name: String(demo.port), port: demo.port }] },
    'one node, named by its port')
  t.equal(res.headers.get('access-control-allow-origin'), null, 'no CORS headers in memory mode')

  // The broadcast panel's publish names the node; the id is the in-memory hub's.
  const published = await fetch(`${demo.url}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ topic: 'demo', text: 'hello' })
  })
  const body = await published.json() as { id: string, node: string }
  t.match(body, { id: /^\d+-1$/, node: String(demo.port) })

  t.equal(await demo.stop(), 0, 'SIGTERM: closed, exit code 0')
  const loaded = demo.stderr.filter((line) => line.startsWith('resolve: ')).map((line) => line.slice(9))
  t.ok(loaded.includes('fastify'), 'the hook saw the packages loaded: ' + loaded.join(', '))
  t.notOk(loaded.some((name) => name.startsWith('ioredis')), 'ioredis was never asked for')
})

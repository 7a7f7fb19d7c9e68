// Options: validation at register time and per call, edge values, the retry frame, per-call
// overrides, and the caller's objects left untouched.
import t from 'tap'
import Fastify from 'fastify'
import sse, { errors, type SsePluginOptions, type SseStreamOptions } from '../index.js'
import { captureLogs, deferred, get, listen, openStream } from './helpers/http.js'

const MAX = 2147483647

// [option, invalid value]; every option shared by the plugin and the call is also tried per call.
const INVALID_STREAM_OPTIONS: Array<[keyof SseStreamOptions, unknown]> = [
  ['heartbeat', '1s'],
  ['heartbeat', -1],
  ['heartbeat', 1.5],
  ['heartbeat', true],
  ['heartbeat', MAX + 1],
  ['heartbeat', Number.NaN],
  ['writeTimeout', '30s'],
  ['writeTimeout', -1],
  ['writeTimeout', true],
  ['retry', -1],
  ['retry', 1.5],
  ['retry', '1000'],
  ['retry', MAX + 1],
  ['retry', false],
  ['serializer', 'JSON'],
  ['serializer', null],
  ['lastEventIdQuery', ''],
  ['lastEventIdQuery', true],
  ['lastEventIdQuery', 1],
  ['shutdownGrace', -1],
  ['shutdownGrace', true],
  ['shutdownGrace', '1s'],
  ['shutdownRetry', true],
  ['shutdownRetry', 5000],
  ['shutdownRetry', [5000]],
  ['shutdownRetry', [1000, 2000, 3000]],
  ['shutdownRetry', [2000, 1000]],
  ['shutdownRetry', [-1, 1000]],
  ['shutdownRetry', [1.5, 1000]],
  ['shutdownRetry', [0, MAX + 1]],
  ['shutdownRetry', ['1000', 2000]],
  ['errorEvent', 'yes'],
  ['errorEvent', 1],
  ['queueLimit', 0],
  ['queueLimit', 1.5],
  ['queueLimit', Infinity]
]
const INVALID_PLUGIN_OPTIONS: Array<[keyof SsePluginOptions, unknown]> = [
  ...INVALID_STREAM_OPTIONS,
  ['lastEventIdMaxLength', 0],
  ['lastEventIdMaxLength', 65537],
  ['lastEventIdMaxLength', '1k'],
  ['retryAfter', -1],
  ['retryAfter', 86401],
  ['retryAfter', 1.5]
]

const label = (value: unknown): string => typeof value === 'number' ? String(value) : JSON.stringify(value) ?? String(value)

t.test('every option is validated at register time', async (t) => {
  for (const [name, value] of INVALID_PLUGIN_OPTIONS) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(sse, { [name]: value } as SsePluginOptions) }, {
      code: 'FST_ERR_SSE_INVALID_OPTION',
      name: 'FastifyError',
      statusCode: 500,
      message: new RegExp(`^The '${name}' option should be `)
    }, `${name}: ${label(value)}`)
    await app.close()
  }
  const app = Fastify()
  try {
    await app.register(sse, { heartbeat: '1s' } as unknown as SsePluginOptions)
    t.fail('should have thrown')
  } catch (err) {
    t.ok(err instanceof errors.FST_ERR_SSE_INVALID_OPTION)
    t.ok(err instanceof TypeError)
    t.equal((err as Error).message, 'The \'heartbeat\' option should be false or an integer number of ms from 0 to 2147483647, instead got "1s"')
  }
  await app.close()
})

t.test('every stream option is validated per call, as a normal 500 before any header', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse)
  const cases: Array<[string, unknown]> = [...INVALID_STREAM_OPTIONS, ['options', 'fast'], ['options', null]]
  app.get('/:i', (req, reply) => {
    const [name, value] = cases[Number((req.params as { i: string }).i)]
    const options = name === 'options' ? value : { [name]: value }
    return reply.sse([{ data: 'never' }], options as SseStreamOptions)
  })
  const url = await listen(app)
  for (const [i, [name, value]] of cases.entries()) {
    const res = await get(`${url}/${i}`)
    t.equal(res.status, 500, `${name}: ${label(value)}: status`)
    t.match(res.headers['content-type'], /^application\/json/)
    t.match(JSON.parse(res.body), {
      code: 'FST_ERR_SSE_INVALID_OPTION',
      message: new RegExp(`^The '${name}' option should be `)
    }, `${name}: ${label(value)}: error`)
  }
})

t.test('edge values are accepted', async (t) => {
  const valid: SsePluginOptions[] = [
    {},
    { heartbeat: false },
    { heartbeat: 0 },
    { heartbeat: MAX },
    { writeTimeout: false },
    { writeTimeout: 0 },
    { writeTimeout: MAX },
    { retry: 500 },
    { retry: MAX },
    { serializer: String },
    { lastEventIdQuery: false },
    { lastEventIdQuery: 'since' },
    { shutdownGrace: 0 },
    { shutdownGrace: false },
    { errorEvent: false },
    { errorEvent: true },
    { errorEvent: () => ({ event: 'oops' }) },
    { queueLimit: 1 },
    { queueLimit: Number.MAX_SAFE_INTEGER },
    { lastEventIdMaxLength: 1 },
    { lastEventIdMaxLength: 65536 },
    { retryAfter: 0 },
    { retryAfter: 86400 }
  ]
  for (const options of valid) {
    const app = Fastify()
    await app.register(sse, options)
    // Registration-only options are refused per call (see the next test).
    const { lastEventIdMaxLength, retryAfter, ...perCall } = options
    app.get('/', (_req, reply) => reply.sse([{ data: 'ok' }], perCall))
    const res = await app.inject('/')
    const heartbeat = options.heartbeat ?? 15_000
    t.equal(res.body,
      (options.retry === undefined ? '' : `retry: ${options.retry}\n`) +
      (heartbeat === false || heartbeat === 0 ? '' : `: heartbeat=${heartbeat}\n`) +
      'data: ok\n\n', JSON.stringify(options))
    await app.close()
  }
})

t.test('retry below 500 ms is accepted with a warning about the floor', async (t) => {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'warn', stream: logs.stream } })
  t.teardown(() => app.close())
  await app.register(sse, { retry: 0 })
  app.get('/', (_req, reply) => reply.sse([{ data: 'x' }]))
  t.equal((await app.inject('/')).body, 'retry: 0\n: heartbeat=15000\ndata: x\n\n')
  const warnings = logs.lines.filter((line) => line.level === 40)
  t.equal(warnings.length, 1)
  t.match(warnings[0].msg, /retry 0 ms is below 500 ms/)
})

t.test('the retry option is the very first frame, and a per-call value replaces the plugin one', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse, { retry: 2000 })
  const release = deferred()
  app.get('/plugin', (_req, reply) => reply.sse(async function * () {
    await release.promise
    yield { id: 1, data: 'x' }
  }))
  app.get('/call', (_req, reply) => reply.sse([{ data: 'x' }], { retry: 3000 }))
  const url = await listen(app)
  // Sent with the head, before the source has produced anything; the advertised heartbeat follows.
  const client = openStream(`${url}/plugin`)
  t.equal(await client.waitFor(': heartbeat=15000\n'), 'retry: 2000\n: heartbeat=15000\n')
  release.resolve()
  t.equal(await client.ended, 'retry: 2000\n: heartbeat=15000\nid: 1\ndata: x\n\n')
  t.equal((await get(`${url}/call`)).body, 'retry: 3000\n: heartbeat=15000\ndata: x\n\n')
})

t.test('per-call options override the plugin ones', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse, {
    heartbeat: 20,
    serializer: (data) => 'plugin:' + JSON.stringify(data),
    errorEvent: () => ({ event: 'error', data: 'from the plugin' })
  })
  // A source that stays quiet long enough for several heartbeats.
  const quiet = async function * (): AsyncGenerator<{ data: unknown }> {
    yield { data: 1 }
    await new Promise((resolve) => setTimeout(resolve, 120))
    yield { data: 2 }
  }
  const failing = async function * (): AsyncGenerator<{ data: unknown }> {
    yield { data: 'a' }
    throw new Error('boom')
  }
  app.get('/plugin', (_req, reply) => reply.sse(quiet()))
  app.get('/call', (_req, reply) => reply.sse(quiet(), {
    heartbeat: false,
    serializer: (data) => 'call:' + JSON.stringify(data)
  }))
  app.get('/error/plugin', (_req, reply) => reply.sse(failing()))
  app.get('/error/call', (_req, reply) => reply.sse(failing(), { errorEvent: false }))
  const url = await listen(app)

  const plugin = (await get(`${url}/plugin`)).body
  t.match(plugin, /^: heartbeat=20\ndata: plugin:1\n\n(: ping\n)+data: plugin:2\n\n$/, 'the plugin heartbeat, advertised, and serializer')
  t.equal((await get(`${url}/call`)).body, 'data: call:1\n\ndata: call:2\n\n', 'no heartbeat, none advertised, the call serializer')
  t.equal((await get(`${url}/error/plugin`)).body, ': heartbeat=20\ndata: a\n\nevent: error\ndata: from the plugin\n\n')
  t.equal((await get(`${url}/error/call`)).body, ': heartbeat=20\ndata: a\n\n')
})

t.test('the caller\'s options objects are neither mutated nor required to be mutable', async (t) => {
  const pluginOptions = Object.freeze({ heartbeat: false, retry: 1000, lastEventIdQuery: 'since' } as const)
  const callOptions = Object.freeze({ retry: 1500, writeTimeout: false } as const)
  const pluginCopy = { ...pluginOptions }
  const callCopy = { ...callOptions }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(sse, pluginOptions)
  app.get('/', (_req, reply) => reply.sse([{ data: 'x' }], callOptions))
  t.equal((await app.inject('/')).body, 'retry: 1500\ndata: x\n\n')
  t.equal((await app.inject('/')).body, 'retry: 1500\ndata: x\n\n', 'twice: nothing carried over')
  t.same(pluginOptions, pluginCopy)
  t.same(callOptions, callCopy)
  t.same(Object.keys(pluginOptions), Object.keys(pluginCopy))
})

t.test('registration-only options are refused per call, not ignored in silence', async (t) => {
  for (const options of [{ lastEventIdMaxLength: 10 }, { retryAfter: 1 }, { hub: {} }]) {
    const app = Fastify()
    await app.register(sse)
    app.get('/', (_req, reply) => reply.sse([{ data: 'ok' }], options as SsePluginOptions))
    app.get('/sink', (_req, reply) => { reply.sseSink(options as SsePluginOptions).end() })
    for (const url of ['/', '/sink']) {
      const res = await app.inject(url)
      t.equal(res.statusCode, 500, `${url} ${JSON.stringify(options)}`)
      t.match(res.json(), { code: 'FST_ERR_SSE_INVALID_OPTION', message: /given at registration, not per stream/ })
    }
    await app.close()
  }
})

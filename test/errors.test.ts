// Pins lib/errors.ts the way Fastify core pins its errors: the exact list, each code, class,
// status and message, and that the Errors table in docs/errors.md lists every code.
import t from 'tap'
import { readFileSync } from 'node:fs'
import createError, { FastifyError } from '@fastify/error'
import * as errors from '../lib/errors.js'
import { errors as publicErrors } from '../index.js'

type AnyErrorConstructor = errors.SseErrorConstructor<unknown[]>

interface Expected {
  statusCode: number
  Base: ErrorConstructor
  args: unknown[]
  message: string
}

// One row per exported FST_ERR_* constructor. Adding or removing an error must update this table.
const expected: Record<string, Expected> = {
  FST_ERR_SSE_INVALID_EVENT: { statusCode: 500, Base: TypeError, args: ['null'], message: 'An SSE event must be an object, instead got null' },
  FST_ERR_SSE_INVALID_EVENT_NAME: { statusCode: 500, Base: TypeError, args: ['"a\\nb"'], message: 'The event name must be a string without CR, LF or lone surrogates, instead got "a\\nb"' },
  FST_ERR_SSE_INVALID_ID: {
    statusCode: 500,
    Base: TypeError,
    args: ['" x"'],
    message: 'The event id must be a finite number, or a string without CR, LF, NUL or other control characters, lone surrogates, or leading/trailing spaces or tabs, instead got " x"'
  },
  FST_ERR_SSE_INVALID_RETRY: { statusCode: 500, Base: RangeError, args: ['number -1'], message: 'retry must be an integer from 0 to 2147483647 (ms), instead got number -1' },
  FST_ERR_SSE_INVALID_COMMENT: { statusCode: 500, Base: TypeError, args: ['number 1'], message: 'A comment must be a string, instead got number 1' },
  FST_ERR_SSE_INVALID_DATA: { statusCode: 500, Base: TypeError, args: ['number 1'], message: 'The serializer must return a string for event data, instead got number 1' },
  FST_ERR_SSE_INVALID_OPTION: {
    statusCode: 500,
    Base: TypeError,
    args: ['heartbeat', 'a non-negative integer (ms) or false', '"1s"'],
    message: "The 'heartbeat' option should be a non-negative integer (ms) or false, instead got \"1s\""
  },
  FST_ERR_SSE_INVALID_SOURCE: {
    statusCode: 500,
    Base: TypeError,
    args: ['an object'],
    message: 'reply.sse() takes an AsyncIterable, an Iterable or a function returning one, instead got an object'
  },
  FST_ERR_SSE_ALREADY_SENT: { statusCode: 500, Base: Error, args: [], message: 'reply.sse() was called on a reply that was already sent or hijacked' },
  FST_ERR_SSE_CLOSED: { statusCode: 500, Base: Error, args: ['shutdown'], message: 'The SSE stream ended: shutdown' },
  FST_ERR_SSE_SERVER_CLOSING: { statusCode: 503, Base: Error, args: [], message: 'The server is shutting down; reconnect later' },
  FST_ERR_SSE_TOO_MANY_STREAMS: { statusCode: 503, Base: Error, args: [100], message: 'The server holds its limit of 100 open streams; reconnect later' },
  FST_ERR_SSE_TOO_MANY_STREAMS_PER_KEY: { statusCode: 429, Base: Error, args: [2], message: 'This client holds its limit of 2 open streams; close one or reconnect later' },
  FST_ERR_SSE_ADMISSION_KEY: { statusCode: 500, Base: Error, args: ['threw'], message: 'The admissionKey option must return a string, instead it threw' },
  FST_ERR_SSE_INVALID_TOPIC: {
    statusCode: 500,
    Base: TypeError,
    args: ['""'],
    message: 'A topic must be a non-empty string of at most 256 characters, without control characters or lone surrogates, instead got ""'
  },
  FST_ERR_SSE_ID_ASSIGNED: { statusCode: 500, Base: TypeError, args: ['number 1'], message: 'app.sse.publish() assigns the event id: the event must not bring one, instead got id number 1' },
  FST_ERR_SSE_HUB_CLOSED: { statusCode: 503, Base: Error, args: [], message: 'The hub is closed: the server is shutting down' },
  FST_ERR_SSE_BROKER: { statusCode: 503, Base: Error, args: [], message: 'The broker did not store the event' }
}

const exported = Object.entries(errors).filter(([key]) => key.startsWith('FST_ERR_')) as Array<[string, AnyErrorConstructor]>

t.test('the exact list of error constructors', async (t) => {
  t.equal(exported.length, 18)
  t.same(exported.map(([key]) => key).sort(), Object.keys(expected).sort())
  t.equal(publicErrors, errors, 'the package exports this module as `errors`')
})

for (const [key, E] of exported) {
  const want = expected[key]
  t.test(key, async (t) => {
    t.equal(E.code, key, 'constructor.code === key')
    const err = new E(...want.args)
    t.equal(err.code, key, 'instance code === key')
    t.equal(err.name, 'FastifyError')
    t.equal(err.statusCode, want.statusCode)
    t.equal(err.message, want.message)
    t.equal(Object.getPrototypeOf(E.prototype), want.Base.prototype, `extends ${want.Base.name} directly`)
    t.ok(err instanceof E)
    t.ok(err instanceof want.Base)
    t.ok(err instanceof Error)
    t.equal(err.toString(), `FastifyError [${key}]: ${want.message}`)
    t.equal(String(err), `FastifyError [${key}]: ${want.message}`)
    t.notOk(Object.prototype.hasOwnProperty.call(err, 'cause'), 'no cause unless given')
    t.match(err.stack, /test[\\/]errors\.test\.ts/, 'the stack starts where the error was made')
    t.notMatch(err.stack, /createError|FastifyError \(/, 'without the factory frame')
    // As @fastify/error (and so Fastify) makes every error: what a logger or JSON.stringify shows.
    t.same(Object.keys(err).sort(), ['code', 'message', 'name', 'statusCode'], 'code, name, statusCode and message are own properties')
    t.same(JSON.parse(JSON.stringify(err)), { code: key, name: 'FastifyError', statusCode: want.statusCode, message: want.message })

    const called = (E as unknown as (...a: unknown[]) => errors.SseError)(...want.args)
    t.ok(called instanceof E, 'callable without new')
    t.equal(called.message, want.message)

    const cause = new Error('root cause')
    const caused = new E(...want.args, { cause })
    t.equal(caused.cause, cause, 'cause option')
    t.equal(caused.message, want.message, 'the cause option is not a format argument')
  })
}

t.test('instanceof follows the code, not the shape', async (t) => {
  const err = new errors.FST_ERR_SSE_INVALID_ID('x')
  t.notOk(err instanceof errors.FST_ERR_SSE_INVALID_EVENT_NAME)
  t.notOk(new Error('x') instanceof errors.FST_ERR_SSE_INVALID_ID)
  t.notOk((null as unknown) instanceof errors.FST_ERR_SSE_INVALID_ID)
  t.notOk(('FST_ERR_SSE_INVALID_ID' as unknown) instanceof errors.FST_ERR_SSE_INVALID_ID)
  // A second copy of the package (another version in node_modules) brands its errors the same way.
  const fromOtherCopy = { [Symbol.for('fastify-error FST_ERR_SSE_INVALID_ID')]: true }
  t.ok(fromOtherCopy instanceof errors.FST_ERR_SSE_INVALID_ID)
  // ...and so does any other constructor made by @fastify/error for the same code, either way.
  const OtherCopy = createError('FST_ERR_SSE_INVALID_ID', 'another copy: %s', 500, TypeError)
  t.ok(new OtherCopy('x') instanceof errors.FST_ERR_SSE_INVALID_ID)
  t.ok(err instanceof OtherCopy)
  t.ok(err instanceof FastifyError, "an instance of @fastify/error's FastifyError, as Fastify's own errors are")
  t.notOk(new Error('x') instanceof FastifyError)
})

t.test('message formatting is printf-style', async (t) => {
  t.equal(new errors.FST_ERR_SSE_CLOSED('client-closed').message, 'The SSE stream ended: client-closed')
  t.equal(new errors.FST_ERR_SSE_INVALID_RETRY(5 as unknown as string).message, 'retry must be an integer from 0 to 2147483647 (ms), instead got 5')
  t.equal(new errors.FST_ERR_SSE_CLOSED('%s').message, 'The SSE stream ended: %s', 'arguments are not reformatted')
  const e = new errors.FST_ERR_SSE_INVALID_DATA('x')
  e.message = 'changed'
  t.equal(e.message, 'changed', 'message stays writable, as on Error')
})

t.test('describe() names a received value without dumping it', async (t) => {
  t.equal(errors.describe('abc'), '"abc"')
  t.equal(errors.describe('a\nb'), '"a\\nb"')
  t.equal(errors.describe('x'.repeat(65)), JSON.stringify('x'.repeat(64) + '…'))
  t.equal(errors.describe('x'.repeat(64)), JSON.stringify('x'.repeat(64)))
  t.equal(errors.describe(() => 1), 'a function')
  t.equal(errors.describe(null), 'null')
  t.equal(errors.describe({ secret: 'x' }), 'an object')
  t.equal(errors.describe([1]), 'an array')
  t.equal(errors.describe(1.5), 'number 1.5')
  t.equal(errors.describe(NaN), 'number NaN')
  t.equal(errors.describe(true), 'boolean true')
  t.equal(errors.describe(1n), 'bigint 1')
  t.equal(errors.describe(Symbol('s')), 'symbol Symbol(s)')
  t.equal(errors.describe(undefined), 'undefined', 'undefined is named once')
})

t.test('every code is in the docs/errors.md table, and no other', async (t) => {
  const page = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')
  const rows = new Set([...page.matchAll(/^\|\s*`(FST_ERR_[A-Z_]+)`\s*\|/gm)].map((m) => m[1]))
  for (const [key] of exported) t.ok(rows.has(key), `docs/errors.md lists ${key}`)
  for (const code of rows) t.ok(code in expected, `docs/errors.md's ${code} exists`)
})

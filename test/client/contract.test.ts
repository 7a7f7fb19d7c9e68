// Typed end to end: one contract (TypeBox schemas as Standard Schemas) gives the route its event
// map and the client a discriminated union, with the data validated at run time.
import t from 'tap'
import { connect, defineStream, json, SseProtocolError, SseValidationError, type BodyOf, type EventMapOf, type StandardSchemaV1 } from '../../lib/client/index.js'
import { startApp, take } from '../helpers/client.js'
import { chat } from './fixtures/chat-contract.js'

t.test('the route and the client share the contract', async (t) => {
  const bodies: unknown[] = []
  const { url } = await startApp(t, (app) => {
    // The contract types the route's events: a wrong name or data shape fails to compile.
    app.post<{ Body: BodyOf<typeof chat>, SseEvents: EventMapOf<typeof chat> }>(chat.path, (req, reply) => {
      bodies.push(req.body)
      return reply.sse(async function * () {
        yield { id: 1, event: 'token', data: { text: 'Hel' } }
        yield { id: 2, event: 'token', data: { text: 'lo' } }
        yield { id: 3, event: 'usage', data: { tokens: 2 } }
        yield { id: 4, event: 'note', data: 'plain text' }
        // The contract refuses this name at compile time; a newer server might still send it.
        yield { event: 'unknown-to-the-contract', data: 'skipped', id: 5 } as never
        yield { id: 6, event: 'end', data: {} }
      })
    })
  })
  const stream = connect(chat, { baseUrl: url, body: { prompt: 'hi' }, terminalEvent: 'end' })
  const seen: string[] = []
  for await (const event of stream) {
    // The union narrows on `event`.
    if (event.event === 'token') seen.push(event.data.text)
    else if (event.event === 'usage') seen.push(`usage ${event.data.tokens}`)
    else if (event.event === 'note') seen.push(event.data)
    else if (event.event === 'end') seen.push(`end ${event.id}`)
  }
  t.same(seen, ['Hel', 'lo', 'usage 2', 'plain text', 'end 6'], 'the event outside the contract was skipped; its id was kept')
  t.same(bodies, [{ prompt: 'hi' }])
})

t.test('data that fails its schema is a fatal SseValidationError; its id is not committed', async (t) => {
  const { url } = await startApp(t, (app) => {
    app.post(chat.path, (_req, reply) => reply.sse([{ id: 1, event: 'token', data: { text: 'ok' } }, { id: 2, event: 'token', data: { text: 42 } }]))
  })
  const stream = connect(chat, { baseUrl: url, body: { prompt: 'x' } })
  const got: unknown[] = []
  const error = await (async () => { for await (const e of stream) got.push(e.data) })().catch((e: unknown) => e)
  t.same(got, [{ text: 'ok' }])
  t.ok(error instanceof SseValidationError)
  t.equal((error as SseValidationError).event, 'token')
  t.match((error as SseValidationError).issues[0]!.message, /\/text/)
  t.equal(stream.lastEventId, '1')
})

t.test('validate: false skips the schemas; JSON that does not parse is a protocol error', async (t) => {
  const { url } = await startApp(t, (app) => {
    app.post(chat.path, (_req, reply) => reply.sse([{ event: 'token', data: { text: 42 } }, { event: 'usage', data: 'not json' }]))
  })
  const stream = connect(chat, { baseUrl: url, body: { prompt: 'x' }, validate: false })
  const got: unknown[] = []
  const error = await (async () => { for await (const e of stream) got.push(e.data) })().catch((e: unknown) => e)
  t.same(got, [{ text: 42 }])
  t.ok(error instanceof SseProtocolError)
  t.match((error as Error).message, 'invalid data for event "usage"')
  t.ok((error as Error).cause instanceof SyntaxError)
})

t.test('any Standard Schema: async validators, and the value they return', async (t) => {
  // A hand-written Standard Schema that validates asynchronously and transforms.
  const upper: StandardSchemaV1<string, string> = {
    '~standard': {
      version: 1,
      vendor: 'test',
      validate: async (value) => typeof value === 'string' ? { value: value.toUpperCase() } : { issues: [{ message: 'not a string' }] }
    }
  }
  const shout = defineStream({ path: '/shout', events: { message: upper, done: json<null>() } })
  const { url } = await startApp(t, (app) => {
    app.get('/shout', (_req, reply) => reply.sse([{ data: '"hey"' }, { event: 'done', data: null }]))
  })
  const stream = connect(shout, { baseUrl: url, terminalEvent: 'done' })
  t.same(await take(stream), [{ event: 'message', data: 'HEY', id: '' }, { event: 'done', data: null, id: '' }])
})

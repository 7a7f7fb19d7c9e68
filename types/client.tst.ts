// Type tests (tstyche) for fastify-sse-stream/client: the contract's discriminated union, the
// typed body, untyped streams, the route's event map, and compat's signature.
import { describe, expect, test } from 'tstyche'
import {
  connect,
  defineStream,
  json,
  text,
  type EventMapOf,
  type SseMessage,
  type SseResetData,
  type SseResetEvent,
  type SseStream,
  type StandardSchemaV1
} from '../lib/client/index.js'
import { fetchEventSource, type EventSourceMessage } from '../lib/client/compat.js'

declare const Token: StandardSchemaV1<unknown, { text: string }>
declare const Prompt: StandardSchemaV1<{ prompt: string }>

const chat = defineStream({
  method: 'POST',
  path: '/chat',
  body: Prompt,
  events: { token: Token, usage: json<{ tokens: number }>(), note: text(), end: json<null>() }
})

type ChatEvent =
  | { event: 'token', data: { text: string }, id: string }
  | { event: 'usage', data: { tokens: number }, id: string }
  | { event: 'note', data: string, id: string }
  | { event: 'end', data: null, id: string }
  | SseResetEvent

describe('connect(contract)', () => {
  test('yields a discriminated union of the contract events, plus sse-reset', () => {
    const stream = connect(chat, { body: { prompt: 'hi' } })
    expect(stream).type.toBe<SseStream<ChatEvent>>()
  })

  test('narrowing on event gives each data type', async () => {
    for await (const event of connect(chat, { body: { prompt: 'hi' } })) {
      if (event.event === 'token') expect(event.data).type.toBe<{ text: string }>()
      if (event.event === 'usage') expect(event.data.tokens).type.toBe<number>()
      if (event.event === 'note') expect(event.data).type.toBe<string>()
      if (event.event === 'sse-reset') expect(event.data).type.toBe<SseResetData>()
      if (event.event === 'sse-reset') expect(event.data.reason).type.toBe<'trimmed' | 'unknown' | 'lost' | 'too-far' | 'overflow'>()
      expect(event.event).type.toBe<'token' | 'usage' | 'note' | 'end' | 'sse-reset'>()
    }
  })

  test('the body takes the contract body type, as a value or an async function', () => {
    expect(connect).type.toBeCallableWith(chat, { body: async () => ({ prompt: 'x' }) })
    expect(connect).type.not.toBeCallableWith(chat, { body: { prompt: 1 } })
    expect(connect).type.not.toBeCallableWith(chat, { body: { question: 'x' } })
  })

  test('onEvent gets the union', () => {
    connect(chat, {
      onEvent: (event) => { expect(event).type.toBe<ChatEvent>() }
    })
  })
})

describe('connect(url)', () => {
  test('data is text', () => {
    expect(connect('/feed')).type.toBe<SseStream<SseMessage>>()
    expect(connect).type.toBeCallableWith(new URL('http://127.0.0.1/feed'))
    expect(connect).type.toBeCallableWith(async () => '/feed', { headers: async () => ({ authorization: 'x' }) })
  })

  test('options are checked', () => {
    expect(connect).type.not.toBeCallableWith('/feed', { idleTimeout: 'never' })
    expect(connect).type.not.toBeCallableWith('/feed', { idempotencyKey: false })
    expect(connect).type.not.toBeCallableWith('/feed', { onEnd: 'resume' })
  })
})

describe('the route side', () => {
  test('EventMapOf maps event names to data types', () => {
    expect<EventMapOf<typeof chat>>().type.toBe<{ token: { text: string }, usage: { tokens: number }, note: string, end: null }>()
  })
})

describe('compat', () => {
  test('fetchEventSource keeps its signature', () => {
    expect(fetchEventSource('/sse', { onmessage: (m) => { expect(m).type.toBe<EventSourceMessage>() } })).type.toBe<Promise<void>>()
    expect(fetchEventSource).type.toBeCallableWith('/sse', { method: 'POST', body: '{}', credentials: 'include', openWhenHidden: true })
  })
})

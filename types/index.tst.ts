// Type tests (tstyche): `npm run test:types`.
import { describe, expect, test } from 'tstyche'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import sse, {
  type EventObject,
  type SseContext,
  type SseEvent,
  type SseSink,
  type SseSource,
  encodeEvent,
  errors,
  fastifySSE,
  prepareEvent,
  type PreparedEvent
} from '../index.js'

const app = Fastify()

interface Ticker {
  tick: { n: number }
  end: null
}

declare const reply: FastifyReply
declare const request: FastifyRequest
declare const tickerReply: FastifyReply<{ SseEvents: Ticker }>

describe('registration', () => {
  test('the default import and the named fastifySSE', () => {
    expect(app.register).type.toBeCallableWith(sse)
    expect(app.register).type.toBeCallableWith(fastifySSE)
    expect(fastifySSE).type.toBe(sse)
  })

  test('with no options, an empty object or every option', () => {
    expect(app.register).type.toBeCallableWith(sse, {})
    expect(app.register).type.toBeCallableWith(sse, {
      heartbeat: 15000,
      retry: 3000,
      serializer: (data: unknown) => JSON.stringify(data),
      lastEventIdQuery: 'since',
      writeTimeout: false,
      shutdownGrace: 1000,
      shutdownRetry: [2000, 10000],
      errorEvent: (error: unknown) => ({ event: 'error', data: String(error) }),
      queueLimit: 1024,
      lastEventIdMaxLength: 256,
      retryAfter: 5
    })
    expect(app.register).type.toBeCallableWith(sse, { heartbeat: false, lastEventIdQuery: false, errorEvent: true })
    expect(app.register).type.toBeCallableWith(sse, { shutdownRetry: false })
  })

  test('invalid options are rejected', () => {
    expect(app.register).type.not.toBeCallableWith(sse, { heartbeat: '1s' })
    expect(app.register).type.not.toBeCallableWith(sse, { heartbeat: true })
    expect(app.register).type.not.toBeCallableWith(sse, { retry: '5' })
    expect(app.register).type.not.toBeCallableWith(sse, { shutdownRetry: [1000] })
    expect(app.register).type.not.toBeCallableWith(sse, { shutdownRetry: 5000 })
    expect(app.register).type.not.toBeCallableWith(sse, { shutdownRetry: true })
    expect(app.register).type.not.toBeCallableWith(sse, { serializer: (data: unknown) => data })
    expect(app.register).type.not.toBeCallableWith(sse, { lastEventIdQuery: true })
    expect(app.register).type.not.toBeCallableWith(sse, { errorEvent: 'yes' })
  })
})

describe('reply.sse', () => {
  test('returns a promise of void', () => {
    expect(reply.sse([])).type.toBe<Promise<void>>()
  })

  test('takes async generators, iterables, arrays and functions of the context', () => {
    async function * ticks () {
      yield { data: 'x' }
      yield { event: 'e', id: 1, data: { any: 'thing' } }
    }
    function * sync () {
      yield { retry: 1000 }
    }
    expect(reply.sse).type.toBeCallableWith(ticks())
    expect(reply.sse).type.toBeCallableWith(sync())
    expect(reply.sse).type.toBeCallableWith([{ data: 'x' }, { comment: 'ping' }, { id: '' }])
    expect(reply.sse).type.toBeCallableWith(new Set([{ data: 1 }]))
    expect(reply.sse).type.toBeCallableWith((ctx: SseContext) => ticks())
    expect(reply.sse).type.toBeCallableWith(async (ctx: SseContext) => [{ data: ctx.lastEventId }])
    expect(reply.sse).type.toBeCallableWith([{ data: 'x' }], { heartbeat: 1000, retry: 0 })
  })

  test('rejects what is not a source or not an event', () => {
    expect(reply.sse).type.not.toBeCallableWith()
    expect(reply.sse).type.not.toBeCallableWith({ data: 'x' })
    expect(reply.sse).type.not.toBeCallableWith(42)
    expect(reply.sse).type.not.toBeCallableWith([{ retry: '5' }])
    expect(reply.sse).type.not.toBeCallableWith([{ id: true }])
    expect(reply.sse).type.not.toBeCallableWith([{ event: 1, data: 'x' }])
    expect(reply.sse).type.not.toBeCallableWith([{ data: 'x' }], { heartbeat: '1s' })
  })

  test('the context of a source function', () => {
    type SourceFunction = Extract<Parameters<FastifyReply['sse']>[0], (ctx: never) => unknown>
    expect<Parameters<SourceFunction>[0]>().type.toBe<SseContext>()
    expect<SseContext['signal']>().type.toBe<AbortSignal>()
    expect<SseContext['lastEventId']>().type.toBe<string | undefined>()
  })
})

describe('the event map', () => {
  test('as a type argument of reply.sse', () => {
    expect(reply.sse<Ticker>).type.toBeCallableWith([{ event: 'tick', data: { n: 1 } }, { event: 'end' }])
    expect(reply.sse<Ticker>).type.toBeCallableWith([{ event: 'end', data: null }, { id: 1 }, { retry: 100 }, { comment: 'c' }])
    expect(reply.sse<Ticker>).type.toBeCallableWith([{ event: 'tick', data: { n: 1 }, id: '1', retry: 5, comment: 'c' }])
    expect(reply.sse<Ticker>).type.not.toBeCallableWith([{ event: 'tick', data: { n: '1' } }])
    expect(reply.sse<Ticker>).type.not.toBeCallableWith([{ event: 'tick' }])
    expect(reply.sse<Ticker>).type.not.toBeCallableWith([{ event: 'nope', data: 1 }])
    expect(reply.sse<Ticker>).type.not.toBeCallableWith([{ data: 'unnamed' }])
    expect(reply.sse<Ticker>).type.not.toBeCallableWith([{ event: 'end', data: 'x' }])
    expect(reply.sse<Ticker>).type.not.toBeCallableWith([{ event: 'tick', data: { n: 1 }, retry: '5' }])
  })

  test('unnamed events take the message entry', () => {
    expect(reply.sse<{ message: string }>).type.toBeCallableWith([{ data: 'x' }, { event: 'message', data: 'y' }, { event: '', data: 'z' }])
    expect(reply.sse<{ message: string }>).type.not.toBeCallableWith([{ data: 1 }])
    expect(reply.sse<{ message: string }>).type.not.toBeCallableWith([{ event: 'other', data: 'x' }])
  })

  test('with generators and source functions', () => {
    async function * good (): AsyncGenerator<SseEvent<Ticker>> {
      yield { event: 'tick', data: { n: 1 } }
      yield { event: 'end' }
    }
    async function * bad () {
      yield { event: 'tick' as const, data: { n: 'one' } }
    }
    expect(reply.sse<Ticker>).type.toBeCallableWith(good())
    expect(reply.sse<Ticker>).type.toBeCallableWith(() => good())
    expect(reply.sse<Ticker>).type.not.toBeCallableWith(bad())
  })

  test('through the route generic SseEvents', () => {
    expect(tickerReply.sse).type.toBeCallableWith([{ event: 'tick', data: { n: 1 } }, { event: 'end' }])
    expect(tickerReply.sse).type.not.toBeCallableWith([{ event: 'tick', data: { n: '1' } }])
    expect(tickerReply.sse).type.not.toBeCallableWith([{ event: 'nope', data: 1 }])
    expect(tickerReply.sse).type.not.toBeCallableWith([{ data: 'unnamed' }])
    expect(tickerReply.sseSink().send).type.toBeCallableWith({ event: 'tick', data: { n: 1 } })
    expect(tickerReply.sseSink().send).type.not.toBeCallableWith({ event: 'tick', data: 1 })

    expect(app.get<{ SseEvents: Ticker }>).type.toBeCallableWith('/t', async (_request: FastifyRequest, reply: FastifyReply<{ SseEvents: Ticker }>) => {
      await reply.sse([{ event: 'tick', data: { n: 1 } }])
    })
    app.get<{ SseEvents: Ticker }>('/ticker', async (_request, reply) => {
      expect(reply.sse).type.toBeCallableWith([{ event: 'end' }])
      expect(reply.sse).type.not.toBeCallableWith([{ event: 'tick', data: 'x' }])
    })
    // An unannotated generator: its yields are typed by the route's map, not widened to string.
    app.get<{ SseEvents: Ticker }>('/gen', (_request, reply) => {
      const done = reply.sse(async function * () {
        yield { event: 'tick', data: { n: 1 } }
        yield { event: 'end' }
      })
      expect(done).type.toBe<Promise<void>>()
      return done
    })
    app.get('/gen-explicit', (_request, reply) => reply.sse<Ticker>(async function * () {
      yield { event: 'tick', data: { n: 1 } }
    }))
  })

  test('SseEvent of an untyped map is any EventObject', () => {
    expect<SseEvent>().type.toBe<EventObject>()
    expect<SseEvent<Ticker>>().type.not.toBeAssignableFrom<{ event: 'tick', data: string }>()
    expect<SseEvent<Ticker>>().type.toBeAssignableFrom<{ event: 'end' }>()
    expect<SseSource<SseEvent<Ticker>>>().type.toBeAssignableFrom<Array<{ event: 'end' }>>()
  })
})

describe('reply.sseSink', () => {
  test('a push-style sink', () => {
    const sink = reply.sseSink({ queueLimit: 16 })
    expect(sink).type.toBe<SseSink<EventObject>>()
    expect(sink.send({ data: 'x' })).type.toBe<Promise<boolean>>()
    expect(sink.comment('ping')).type.toBe<Promise<boolean>>()
    expect(sink.end()).type.toBe<void>()
    expect(sink.signal).type.toBe<AbortSignal>()
    expect(sink.lastEventId).type.toBe<string | undefined>()
    expect(sink.pending).type.toBe<number>()
    expect(sink.closed).type.toBe<boolean>()
    expect(sink.done).type.toBe<Promise<void>>()
    expect(sink.send).type.not.toBeCallableWith({ retry: '5' })
    expect(sink.comment).type.not.toBeCallableWith(1)
    expect(reply.sseSink).type.not.toBeCallableWith({ queueLimit: '16' })
  })

  test('typed by an event map', () => {
    const sink = reply.sseSink<Ticker>()
    expect(sink.send).type.toBeCallableWith({ event: 'tick', data: { n: 1 } })
    expect(sink.send).type.toBeCallableWith({ event: 'end' })
    expect(sink.send).type.not.toBeCallableWith({ event: 'tick', data: { n: '1' } })
    expect(sink.send).type.not.toBeCallableWith({ event: 'nope', data: 1 })
    expect(sink.send).type.not.toBeCallableWith({ data: 'unnamed' })
  })
})

describe('request and route options', () => {
  test('request.lastEventId', () => {
    expect(request.lastEventId).type.toBe<string | undefined>()
  })

  test('the sse route option', () => {
    const handler = async (_request: FastifyRequest, reply: FastifyReply) => reply.sse([{ data: 'x' }])
    expect(app.get).type.toBeCallableWith('/', { sse: true }, handler)
    expect(app.route).type.toBeCallableWith({ method: 'GET', url: '/', sse: true, handler })
    expect(app.get).type.not.toBeCallableWith('/', { sse: 'yes' }, handler)
  })
})

describe('exports', () => {
  test('encodeEvent and errors', () => {
    expect(encodeEvent({ data: 1 })).type.toBe<string>()
    expect(encodeEvent).type.toBeCallableWith({ data: 1 }, (d: unknown) => String(d))
    expect(encodeEvent).type.not.toBeCallableWith({ retry: '5' })
    expect(encodeEvent).type.not.toBeCallableWith({ data: 1 }, (d: unknown) => d)
    expect(new errors.FST_ERR_SSE_INVALID_ID('x').code).type.toBe<string>()
    expect(new errors.FST_ERR_SSE_INVALID_ID('x').statusCode).type.toBe<number>()
    expect(errors.FST_ERR_SSE_INVALID_OPTION).type.toBeConstructableWith('heartbeat', 'a number', '"1s"')
    expect(errors.FST_ERR_SSE_INVALID_OPTION).type.toBeConstructableWith('heartbeat', 'a number', '"1s"', { cause: new Error('x') })
  })

  test('prepareEvent for broadcasts', () => {
    const prepared = prepareEvent({ event: 'tick', data: { n: 1 } })
    expect(prepared).type.toBeAssignableTo<PreparedEvent>()
    expect(prepared.frame).type.toBe<string>()
    expect(prepareEvent).type.not.toBeCallableWith({ retry: '5' })
    expect(tickerReply.sseSink().send).type.toBeCallableWith(prepared)
    expect(tickerReply.sse).type.toBeCallableWith([prepared, { event: 'end' }])
  })

  test('a PreparedEvent keeps the type of its event: the route\'s event map applies to it', () => {
    const stray = prepareEvent({ event: 'other', data: 'x' })
    const wrongData = prepareEvent({ event: 'tick', data: { n: 'one' } })
    expect(tickerReply.sseSink().send).type.not.toBeCallableWith(stray)
    expect(tickerReply.sseSink().send).type.not.toBeCallableWith(wrongData)
    expect(tickerReply.sse).type.not.toBeCallableWith([stray])
    // An untyped route takes any prepared event.
    expect(reply.sseSink().send).type.toBeCallableWith(stray)
  })
})

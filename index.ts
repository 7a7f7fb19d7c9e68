import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { SsePluginOptions, SseSink, SseSource, SseStreamOptions } from './types/index.js'
import type { EventObject } from './lib/encoder.js'
import { FST_ERR_SSE_ALREADY_SENT, FST_ERR_SSE_INVALID_SOURCE, describe } from './lib/errors.js'
import { readLastEventId } from './lib/last-event-id.js'
import { DEFAULTS, resolveOptions } from './lib/options.js'
import { Sink } from './lib/sink.js'
import { SourcePump, dropSource, isIterable, isThenable } from './lib/source.js'
import { type Registry, SseStream } from './lib/stream.js'

export type * from './types/index.js'
export { encodeEvent, prepareEvent, PreparedEvent } from './lib/encoder.js'
export * as errors from './lib/errors.js'

const kWaitForStream = Symbol('fastify-sse-stream.waitForStream')

type SseReply = FastifyReply & { [kWaitForStream]?: (error?: { error: unknown }) => void }

function checkSource (value: unknown): asserts value is AsyncIterable<EventObject> | Iterable<EventObject> {
  if (!isIterable(value) || typeof value === 'string') throw new FST_ERR_SSE_INVALID_SOURCE(describe(value))
}

async function fastifySSE (fastify: FastifyInstance, opts: SsePluginOptions): Promise<void> {
  const options = resolveOptions(DEFAULTS, opts, fastify.log)
  const registry: Registry = { streams: new Set(), options, closing: false }

  function createStream (reply: SseReply, callOptions: SseStreamOptions | undefined): SseStream {
    if (reply.sent || reply.raw.headersSent) throw new FST_ERR_SSE_ALREADY_SENT()
    return new SseStream(registry, reply.request, reply, resolveOptions(options, callOptions))
  }

  /**
   * Settles the promise of an `sse: true` handler that returned first: once the reply is taken
   * (hijacked, or refused with 503), or with the error that stopped reply.sse(), so that Fastify
   * answers it rather than an empty 200 (or nothing at all).
   */
  function wake (reply: SseReply, failure?: { error: unknown }): void {
    const waiter = reply[kWaitForStream]
    if (waiter === undefined) return
    reply[kWaitForStream] = undefined
    waiter(failure)
  }

  /** Runs the part of reply.sse()/sseSink() that may throw before the reply is taken. */
  function beforeOpen<T> (reply: SseReply, fn: () => T): T {
    try {
      return fn()
    } catch (error) {
      if (!reply.sent) wake(reply, { error })
      throw error
    }
  }

  function sse (this: SseReply, source: SseSource<EventObject>, callOptions?: SseStreamOptions): Promise<void> {
    const { stream, iterable } = beforeOpen(this, () => {
      const stream = createStream(this, callOptions)
      let iterable: unknown = source
      if (typeof source === 'function') {
        iterable = source(stream.context)
        if (!isThenable(iterable)) checkSource(iterable)
      } else {
        checkSource(source)
      }
      if (!registry.closing) stream.open()
      return { stream, iterable }
    })
    if (registry.closing) {
      stream.refuse()
      wake(this)
      dropSource(iterable, this.request.log)
      return stream.done
    }
    wake(this)
    if (isThenable(iterable)) {
      iterable.then((value) => {
        if (stream.closed) return dropSource(value, this.request.log)
        try {
          checkSource(value)
        } catch (error) {
          return stream.fail(error)
        }
        new SourcePump(stream, value).pull()
      }, (error) => stream.fail(error))
    } else {
      new SourcePump(stream, iterable as Iterable<EventObject>).pull()
    }
    return stream.done
  }

  function sseSink (this: SseReply, callOptions?: SseStreamOptions): SseSink<EventObject> {
    const stream = beforeOpen(this, () => createStream(this, callOptions))
    const sink = new Sink(stream)
    if (registry.closing) stream.refuse()
    else beforeOpen(this, () => stream.open())
    wake(this)
    return sink
  }

  fastify.decorateReply('sse', sse)
  fastify.decorateReply('sseSink', sseSink)
  fastify.decorateRequest('lastEventId', {
    getter (this: FastifyRequest) {
      return readLastEventId(this, options.lastEventIdQuery, options.lastEventIdMaxLength)
    }
  })

  // An async handler of an `sse: true` route that resolves without replying waits for its
  // stream, instead of Fastify sending an empty 200 that the later reply.sse() could not undo.
  fastify.addHook('onRoute', (route: RouteOptions & { sse?: boolean }) => {
    if (route.sse !== true) return
    const handler = route.handler
    route.handler = function sseRouteHandler (this: FastifyInstance, request, reply) {
      const result = handler.call(this, request, reply)
      if (!isThenable(result)) return result
      return Promise.resolve(result).then((value) => {
        if (value !== undefined || reply.sent) return value
        return new Promise<undefined>((resolve, reject) => {
          (reply as SseReply)[kWaitForStream] = (failure) => {
            if (failure === undefined) resolve(undefined)
            else reject(failure.error)
          }
        })
      })
    }
  })

  fastify.addHook('preClose', async () => {
    registry.closing = true
    await Promise.all(Array.from(registry.streams, (stream) => stream.shutdown()))
  })
}


const plugin = fp(fastifySSE, { fastify: '5.x', name: 'fastify-sse-stream' })

export { plugin as fastifySSE }
export default plugin

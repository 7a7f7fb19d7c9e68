import type { FastifyReply } from 'fastify'
import type { SseSink, SseSource, SseStreamOptions } from '../types/index.js'
import type { EventObject } from './encoder.js'
import { FST_ERR_SSE_ALREADY_SENT, FST_ERR_SSE_INVALID_SOURCE, describe } from './errors.js'
import { resolveOptions } from './options.js'
import { Sink } from './sink.js'
import { SourcePump, dropSource, isIterable, isThenable } from './source.js'
import { beforeOpen, refuse, wake, wasRefused } from './sse-route.js'
import { type Registry, SseStream } from './stream.js'

function checkSource (value: unknown): asserts value is AsyncIterable<EventObject> | Iterable<EventObject> {
  if (!isIterable(value) || typeof value === 'string') throw new FST_ERR_SSE_INVALID_SOURCE(describe(value))
}

function createStream (registry: Registry, reply: FastifyReply, callOptions: SseStreamOptions | undefined): SseStream {
  if (reply.sent || reply.raw.headersSent) throw new FST_ERR_SSE_ALREADY_SENT()
  // With the request's logger, so that a per-call retry below the floor is warned about (with its reqId).
  return new SseStream(registry, reply.request, reply, resolveOptions(registry.options, callOptions, reply.log, true))
}

/** The `reply.sse()` and `reply.sseSink()` decorators of one plugin instance. */
export function replyDecorators (registry: Registry): {
  sse: (this: FastifyReply, source: SseSource<EventObject>, callOptions?: SseStreamOptions) => Promise<void>
  sseSink: (this: FastifyReply, callOptions?: SseStreamOptions) => SseSink<EventObject>
} {
  function sse (this: FastifyReply, source: SseSource<EventObject>, callOptions?: SseStreamOptions): Promise<void> {
    // Shutdown answered this reply while its handler waited: the source is not needed.
    if (wasRefused(this)) {
      if (typeof source !== 'function') dropSource(source, this.request.log)
      return Promise.resolve()
    }
    // Everything that can throw runs before the reply is taken, so Fastify still answers the error.
    const { stream, iterable } = beforeOpen(this, () => {
      const stream = createStream(registry, this, callOptions)
      let iterable: unknown = source
      if (typeof source === 'function') {
        iterable = source(stream.context)
        if (!isThenable(iterable)) checkSource(iterable)
      } else {
        checkSource(source)
      }
      if (!registry.closing) {
        try {
          stream.open()
        } catch (error) {
          // Nothing was sent and Fastify answers the error (a header writeHead() refused), but
          // the source may have started: abort its signal and release it, as for a refusal.
          stream.abandon('error')
          dropSource(iterable, this.request.log)
          throw error
        }
      }
      return { stream, iterable }
    })
    if (registry.closing) {
      stream.refused(refuse(registry, this))
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

  function sseSink (this: FastifyReply, callOptions?: SseStreamOptions): SseSink<EventObject> {
    if (wasRefused(this)) {
      const stream = new SseStream(registry, this.request, this, resolveOptions(registry.options, callOptions, undefined, true))
      stream.abandon('shutdown')
      return new Sink(stream)
    }
    const stream = beforeOpen(this, () => createStream(registry, this, callOptions))
    const sink = new Sink(stream)
    if (registry.closing) {
      stream.refused(refuse(registry, this))
    } else {
      beforeOpen(this, () => stream.open())
      wake(this)
    }
    return sink
  }

  return { sse, sseSink }
}

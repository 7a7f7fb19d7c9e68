import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { SsePluginOptions } from './types/index.js'
import { cachedLastEventId, kLastEventId } from './lib/last-event-id.js'
import { DEFAULTS, resolveOptions } from './lib/options.js'
import { replyDecorators } from './lib/reply.js'
import { refuse, sseRouteHook } from './lib/sse-route.js'
import type { Registry } from './lib/stream.js'

export type * from './types/index.js'
export { encodeEvent, prepareEvent, PreparedEvent } from './lib/encoder.js'
export * as errors from './lib/errors.js'

async function fastifySSE (fastify: FastifyInstance, opts: SsePluginOptions): Promise<void> {
  const options = resolveOptions(DEFAULTS, opts, fastify.log)
  const registry: Registry = { streams: new Set(), waiting: new Set(), options, closing: false }
  const { sse, sseSink } = replyDecorators(registry)

  fastify.decorateReply('sse', sse)
  fastify.decorateReply('sseSink', sseSink)
  fastify.decorateRequest(kLastEventId, null)
  fastify.decorateRequest('lastEventId', {
    getter (this: FastifyRequest) {
      return cachedLastEventId(this, options.lastEventIdQuery, options.lastEventIdMaxLength)
    }
  })
  fastify.addHook('onRoute', sseRouteHook(registry))
  // Shutdown: no new stream, and every open one gets its signal, its grace period and its end.
  fastify.addHook('preClose', async () => {
    registry.closing = true
    // An `sse: true` handler still waiting for its reply.sse() gets the 503 a late stream gets.
    for (const reply of Array.from(registry.waiting)) void refuse(registry, reply)
    await Promise.all(Array.from(registry.streams, (stream) => stream.shutdown()))
  })
}

const plugin = fp(fastifySSE, { fastify: '5.x', name: 'fastify-sse-stream' })

export { plugin as fastifySSE }
export default plugin

import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { EventObject, PublishOptions, SsePluginOptions } from './types/index.js'
import { cachedLastEventId, kLastEventId } from './lib/last-event-id.js'
import { DEFAULTS, resolveOptions } from './lib/options.js'
import { replyDecorators } from './lib/reply.js'
import { Hub } from './lib/hub/hub.js'
import { resolveHub } from './lib/hub/options.js'
import { sseRouteHook } from './lib/sse-route.js'
import { PluginState } from './lib/plugin-state.js'

export type * from './types/index.js'
export { encodeEvent, prepareEvent, PreparedEvent } from './lib/encoder.js'
export { memoryBroker } from './lib/hub/broker.js'
export * as errors from './lib/errors.js'

async function fastifySSE (fastify: FastifyInstance, opts: SsePluginOptions): Promise<void> {
  const options = resolveOptions(DEFAULTS, opts, fastify.log)
  const hub = new Hub(resolveHub(opts.hub), fastify.log)
  const state = new PluginState(options, hub, fastify.log)
  const { sse, sseSink, sseSubscribe } = replyDecorators(state)

  fastify.decorate('sse', {
    publish: (topic: string, event: EventObject, options?: PublishOptions) => hub.publish(topic, event, options),
    pipe: (topic: string, source: Parameters<Hub['pipe']>[1]) => hub.pipe(topic, source),
    stats: () => state.stats()
  })
  fastify.decorateReply('sse', sse)
  fastify.decorateReply('sseSink', sseSink)
  fastify.decorateReply('sseSubscribe', sseSubscribe)
  fastify.decorateRequest(kLastEventId, null)
  fastify.decorateRequest('lastEventId', {
    getter (this: FastifyRequest) {
      return cachedLastEventId(this, options.lastEventIdQuery, options.lastEventIdMaxLength)
    }
  })
  fastify.addHook('onRoute', sseRouteHook(state))
  // Shutdown: no new stream, and every open one gets its signal, its grace period and its end.
  fastify.addHook('preClose', () => state.shutdown())
  fastify.addHook('onClose', () => state.close())
}

const plugin = fp(fastifySSE, { fastify: '5.x', name: 'fastify-sse-stream' })

export { plugin as fastifySSE }
export default plugin

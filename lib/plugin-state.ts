import type { FastifyBaseLogger, FastifyReply } from 'fastify'
import type { Hub } from './hub/hub.js'
import type { ResolvedPluginOptions } from './options.js'
import { Scheduler } from './scheduler.js'
import { refuse } from './sse-route.js'
import type { SseStream } from './stream.js'

/**
 * Everything one plugin instance holds across its streams: the open streams, the replies of
 * `sse: true` handlers waiting for their stream, the shared scheduler, the hub, and the shutdown.
 * The reply decorators, the route hook and each stream reach it; nothing of it lives on them.
 */
export class PluginState {
  /** The open streams, for the scheduler and the shutdown. */
  readonly streams = new Set<SseStream>()
  /** Replies of `sse: true` routes whose handler returned and waits for reply.sse(). */
  readonly waiting = new Set<FastifyReply>()
  /** One timer for the heartbeats of every stream. */
  readonly scheduler: Scheduler
  /** Set once the app begins to close: no stream opens after it. */
  closing = false

  constructor (
    readonly options: ResolvedPluginOptions,
    readonly hub: Hub,
    readonly log: FastifyBaseLogger
  ) {
    this.scheduler = new Scheduler(this.streams)
  }

  /**
   * The app's preClose: no new stream, and every open one gets its signal, its grace period and
   * its end. An `sse: true` handler still waiting for its reply.sse() gets the 503 a late stream gets.
   */
  async shutdown (): Promise<void> {
    this.closing = true
    for (const reply of Array.from(this.waiting)) void refuse(this, reply)
    await Promise.all(Array.from(this.streams, (stream) => stream.shutdown()))
  }

  /** The app's onClose: the scheduler stops and the hub closes. */
  async close (): Promise<void> {
    this.scheduler.stop()
    await this.hub.close()
  }
}

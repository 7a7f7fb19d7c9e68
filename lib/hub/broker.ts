import type { FastifyBaseLogger } from 'fastify'
import type { EventObject } from '../encoder.js'
import type { Stored } from './log.js'
import type { Position } from './position.js'

/** What the hub offers its broker. */
export interface BrokerHost {
  /** The app's logger, for what a broker has to report (a lost connection, say). */
  readonly log: FastifyBaseLogger
  /** The newest position the hub holds for `topic` (ORIGIN when it holds none). */
  head (topic: string): Position
  /** New events of a watched topic, oldest first, each right after the one before. */
  deliver (topic: string, entries: readonly Stored[]): void
  /**
   * The broker lost the topic's history (data loss, a failover): cursors into it are reset. With
   * `head`, the topic goes on from there (the head of the history the broker holds now).
   */
  lost (topic: string, head?: Position): void
}

/** What the hub asks a broker to store. */
export interface BrokerRecord {
  /** The event's encoded fields, without its id line and closing blank line. */
  readonly body: Buffer
  /** The event as published: a broker that keeps it may give it back for filters. */
  readonly event?: EventObject | undefined
  /** The end of a piped stream. */
  readonly end?: boolean
  /** An idempotency key: a broker that supports them stores an event once per key, and answers a repeat with the first position. */
  readonly key?: string | undefined
}

/**
 * Where a hub stores its topics' events and learns of new ones. The memory broker is the default;
 * `fastify-sse-stream/redis` provides one on Redis Streams, shared by every process.
 */
export interface HubBroker {
  /** Called once, when the plugin registers. */
  attach (host: BrokerHost): void
  /**
   * Stores one event. Resolves with its position once stored; it never resolves for an event that
   * was not. A watched topic's new events reach the hub through `host.deliver()`, its own included.
   */
  append (topic: string, record: BrokerRecord): Promise<Position>
  /** The hub has subscribers for `topic` now: deliver its events after `after`. */
  watch (topic: string, after: Position): void
  /** No subscriber is left for `topic`. */
  unwatch (topic: string): void
  /**
   * Up to `limit` events after `after`, oldest first: history older than the hub's own cache.
   * Empty when the broker holds nothing older (the memory broker never does).
   */
  range (topic: string, after: Position, limit: number): Promise<readonly Stored[]>
  /** Stops it; the plugin calls it when the app closes. */
  close (): Promise<void>
  /**
   * Optional, for brokers shared by several processes: delivers what the broker holds after the
   * hub's head of `topic` (at most its newest `count` events), so that a topic this process does
   * not watch yet, or one a client's cursor is ahead of, is current before the hub judges a cursor.
   * It settles once done (or once the broker closes) and never rejects: while the broker is out of
   * reach it keeps trying, and new subscribers wait.
   */
  sync? (topic: string, count: number): Promise<void>
  /**
   * Optional, for brokers shared by several processes: may this process start `topic`'s producer
   * (`app.sse.pipe()`)? Resolves true for at most one process per topic, atomically, and false when
   * another process holds the topic's claim or the broker already holds events of the topic (it was
   * produced, or is being produced, elsewhere). Rejects when the broker cannot answer: the hub then
   * starts nothing. Without it (the memory broker), the hub's own map of running producers serves.
   */
  claim? (topic: string): Promise<boolean>
}

/** The default broker: this process only. The hub's own bounded logs are its storage. */
export class MemoryBroker implements HubBroker {
  private host: BrokerHost | null = null

  attach (host: BrokerHost): void {
    this.host = host
  }

  append (topic: string, record: BrokerRecord): Promise<Position> {
    const host = this.host!
    const head = host.head(topic)
    const position = { t: Math.max(Date.now(), head.t), o: head.o + 1 }
    host.deliver(topic, [{ ...position, body: record.body, event: record.event, end: record.end }])
    return Promise.resolve(position)
  }

  watch (): void {}
  unwatch (): void {}

  range (): Promise<readonly Stored[]> {
    return Promise.resolve([])
  }

  close (): Promise<void> {
    return Promise.resolve()
  }
}

export function memoryBroker (): HubBroker {
  return new MemoryBroker()
}

import type { EventObject } from '../encoder.js'
import { FST_ERR_SSE_INVALID_OPTION, describe } from '../errors.js'
import { type HubBroker, memoryBroker } from './broker.js'
import type { HubSettings } from './hub.js'
import type { SubscribePolicy, Subscription } from './subscriber.js'

/** `hub` at registration. */
export interface HubOptions {
  history?: {
    /** Events kept per topic. @default 1000 */
    size?: number
    /** ms an event is kept. @default 600000 (10 min) */
    maxAge?: number
    /** Bytes kept per topic. @default 1048576 (1 MiB) */
    bytes?: number
    /** Bytes kept by the whole hub, across topics. @default 67108864 (64 MiB) */
    totalBytes?: number
  }
  /** Where events are stored. @default the memory broker (this process only) */
  broker?: HubBroker
  /** The name of the event that tells a client its position could not be served. @default 'sse-reset' */
  resetEvent?: string
}

/** `reply.sseSubscribe(topics, options)`: where to start, and how to treat a slow subscriber. */
export interface SubscribeOptions<E extends EventObject = EventObject> {
  /** Without a Last-Event-ID: start at the live edge, or at the oldest event held. @default 'live' */
  from?: 'live' | 'oldest'
  /** What a subscriber that falls behind gets. @default 'catch-up' */
  policy?: SubscribePolicy
  /** The conflation key, with `policy: 'conflate'`: only the newest event per key of a backlog is sent. */
  key?: (event: E) => string
  /** Per subscriber, for authorization: events it returns false for are skipped. */
  filter?: (event: E, topic: string) => boolean
  /** The bounds of `disconnect` and `skip-to-head`. @default { events: 1000, bytes: 1048576, ms: 30000 } */
  lag?: { events?: number, bytes?: number, ms?: number }
  /** After an sse-reset: go on from the head, or end the stream. @default 'continue' */
  reset?: 'continue' | 'close'
  /** Without a Last-Event-ID, first send `id: <position>` (an id-only frame, no event). @default true */
  prime?: boolean
  /** A cursor more events behind than this is reset as `too-far` instead of replayed. @default Infinity */
  maxReplay?: number
  /**
   * A comment sent at the start of every stream of this subscription, before any event: `: <text>`
   * lines with no blank line, so that no client dispatches anything for it (a resume URL, say).
   */
  comment?: string
}

export interface ResolvedSubscribe extends Subscription {
  readonly from: 'live' | 'oldest'
  readonly prime: boolean
  readonly maxReplay: number
  readonly comment: string | undefined
}

const POLICIES: readonly SubscribePolicy[] = ['catch-up', 'disconnect', 'skip-to-head', 'conflate']

function invalid (name: string, expected: string, value: unknown): never {
  throw new FST_ERR_SSE_INVALID_OPTION(name, expected, describe(value))
}

function count (name: string, value: unknown, fallback: number, min = 1): number {
  if (value === undefined) return fallback
  if (value === Infinity && min === 0) return value
  if (!Number.isSafeInteger(value) || (value as number) < min) invalid(name, `an integer of at least ${min}`, value)
  return value as number
}

export function resolveHub (options: unknown): HubSettings {
  if (options === undefined) options = {}
  if (typeof options !== 'object' || options === null) invalid('hub', 'an object', options)
  const o = options as HubOptions
  const h = o.history ?? {}
  // (null is taken as absent, by the `??` above.)
  if (typeof h !== 'object') invalid('hub.history', 'an object', h)
  const broker = o.broker ?? memoryBroker()
  for (const method of ['attach', 'append', 'watch', 'unwatch', 'range', 'close'] as const) {
    if (typeof (broker as unknown as Record<string, unknown>)[method] !== 'function') invalid('hub.broker', 'a broker (attach, append, watch, unwatch, range, close)', broker)
  }
  const resetEvent = o.resetEvent ?? 'sse-reset'
  if (typeof resetEvent !== 'string' || !/^[\x21-\x7e]+$/.test(resetEvent)) invalid('hub.resetEvent', 'a non-empty event name of printable ASCII', resetEvent)
  return Object.freeze({
    history: Object.freeze({
      size: count('hub.history.size', h.size, 1000),
      maxAge: count('hub.history.maxAge', h.maxAge, 600_000),
      bytes: count('hub.history.bytes', h.bytes, 1_048_576),
      totalBytes: count('hub.history.totalBytes', h.totalBytes, 67_108_864)
    }),
    broker,
    resetEvent
  })
}

// The settings of a subscription without options, made once per reset event name: most
// subscriptions take them, and an idle subscriber holds little else.
const defaults = new Map<string, ResolvedSubscribe>()

export function resolveSubscribe (options: SubscribeOptions | undefined, resetEvent: string): ResolvedSubscribe {
  if (options === undefined) {
    let resolved = defaults.get(resetEvent)
    if (resolved === undefined) defaults.set(resetEvent, resolved = Object.freeze(resolveSubscribe({}, resetEvent)))
    return resolved
  }
  const o = options
  if (typeof o !== 'object' || o === null) invalid('options', 'an object', o)
  const from = o.from ?? 'live'
  if (from !== 'live' && from !== 'oldest') invalid('from', "'live' or 'oldest'", from)
  const policy = o.policy ?? 'catch-up'
  if (!POLICIES.includes(policy)) invalid('policy', POLICIES.map((p) => `'${p}'`).join(', '), policy)
  if (o.key !== undefined && typeof o.key !== 'function') invalid('key', 'a function', o.key)
  if (policy === 'conflate' && o.key === undefined) invalid('key', "a function with policy 'conflate'", o.key)
  if (o.filter !== undefined && typeof o.filter !== 'function') invalid('filter', 'a function', o.filter)
  const lag = o.lag ?? {}
  if (typeof lag !== 'object') invalid('lag', 'an object', lag)
  const reset = o.reset ?? 'continue'
  if (reset !== 'continue' && reset !== 'close') invalid('reset', "'continue' or 'close'", reset)
  const prime = o.prime ?? true
  if (typeof prime !== 'boolean') invalid('prime', 'a boolean', prime)
  if (o.comment !== undefined && typeof o.comment !== 'string') invalid('comment', 'a string', o.comment)
  return {
    from,
    policy,
    key: o.key as Subscription['key'],
    filter: o.filter as Subscription['filter'],
    lag: {
      events: count('lag.events', lag.events, 1000),
      bytes: count('lag.bytes', lag.bytes, 1_048_576),
      ms: count('lag.ms', lag.ms, 30_000)
    },
    reset,
    resetEvent,
    prime,
    maxReplay: count('maxReplay', o.maxReplay, Infinity, 0),
    comment: o.comment
  }
}

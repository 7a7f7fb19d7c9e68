import type {
  ContextConfigDefault,
  FastifyBaseLogger,
  FastifyRequest,
  FastifySchema,
  FastifyTypeProvider,
  FastifyTypeProviderDefault,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerBase,
  RawServerDefault,
  RouteGenericInterface
} from 'fastify'
import type { FastifyReplyType, ResolveFastifyReplyType } from 'fastify/types/type-provider.js'
import type { EventObject, PreparedEvent, Serializer } from '../lib/encoder.js'
import type { HubOptions, SubscribeOptions } from '../lib/hub/options.js'
import type { BrokerHost, BrokerRecord, HubBroker } from '../lib/hub/broker.js'
import type { Position } from '../lib/hub/position.js'
import type { Stored } from '../lib/hub/log.js'
import type { HubStats, PublishOptions } from '../lib/hub/hub.js'
import type { HubCounters, Lag, ResetReason } from '../lib/hub/subscriber.js'
import type { RefusalReason, SseStats } from '../lib/plugin-state.js'

export type { EventObject, Serializer, HubOptions, SubscribeOptions, BrokerHost, BrokerRecord, HubBroker, Position, Stored, PublishOptions, SseStats, HubStats, HubCounters, Lag, ResetReason, RefusalReason }

/**
 * Declares the events a route sends: event name → type of `data`. Events sent without an
 * `event` name take the `message` entry. A `null` or `undefined` data type makes `data` optional.
 *
 * `any`, not `unknown`: an interface has no implicit index signature, so it would not satisfy
 * `Record<string, unknown>`.
 *
 * @example
 * interface Ticker { tick: { n: number }, end: null }
 */
export type EventMap = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

/** Fields any event may carry besides `event` and `data`. */
export interface EventMeta {
  id?: string | number
  retry?: number
  comment?: string
}

type DataField<T> = unknown extends T
  ? { data?: T }
  : [T] extends [null | undefined] ? { data?: T } : { data: T }

type NamedEvent<M, K extends keyof M & string> = EventMeta &
  (K extends 'message' ? { event?: 'message' | '' } : { event: K }) &
  DataField<M[K]>

/** A frame that dispatches no event: only `id`, `retry` or `comment`. */
export interface ControlEvent extends EventMeta {
  event?: undefined
  data?: undefined
}

/** The events a route with event map `M` may send. An untyped route may send any event. */
export type SseEvent<M extends EventMap = EventMap> = string extends keyof M
  ? EventObject
  : { [K in keyof M & string]: NamedEvent<M, K> }[keyof M & string] | ControlEvent

/** What a source function receives. */
export interface SseContext {
  /** Aborts when the stream ends for any reason; `signal.reason` says why. */
  signal: AbortSignal
  /** The client's `Last-Event-ID` (header, else query parameter), validated; `undefined` if absent. */
  lastEventId: string | undefined
}

/** An event made once with prepareEvent() from an event of type `E`, for a broadcast. */
export type PreparedOf<E> = PreparedEvent<E & EventObject>

// A source may also yield events made once with prepareEvent(): the route's event map applies to them.
type Iter<E> = AsyncIterable<E | PreparedOf<E>> | Iterable<E | PreparedOf<E>>

/** What `reply.sse()` streams: an iterable of events, or a function of the stream's context returning one. */
export type SseSource<E = EventObject> = Iter<E> | ((ctx: SseContext) => Iter<E> | Promise<Iter<E>>)

/** Why a stream ended. */
export type SseCloseReason =
  | 'done' // the source finished
  | 'ended' // sink.end() was called
  | 'client-closed' // the client went away
  | 'error' // the source threw or yielded an invalid event
  | 'stalled' // a frame stayed unflushed past writeTimeout
  | 'overflow' // a sink's queue passed queueLimit
  | 'shutdown' // the server is closing
  | 'reset' // a hub subscription was told sse-reset with `reset: 'close'`
  | 'max-age' // the stream reached its maxAge
  | 'expired' // the stream reached its expiresAt

/** Options that apply to one stream; set them plugin-wide at registration or per call. */
export interface SseStreamOptions {
  /**
   * Sends a comment line after this many ms with no write, so proxies keep the connection.
   * `false` or `0` disables it.
   * @default 15000
   */
  heartbeat?: number | false
  /** Sends `retry: <ms>` as the first frame, setting the client's reconnection delay. */
  retry?: number
  /**
   * Turns non-string `data` into text.
   * @default JSON.stringify
   */
  serializer?: Serializer
  /**
   * Query parameter read when there is no `Last-Event-ID` header; `false` disables it.
   * @default 'lastEventId'
   */
  lastEventIdQuery?: string | false
  /**
   * Destroys the connection when a frame stays unflushed this long (ms): the peer is stalled or
   * half-open. `false` or `0` disables it.
   * @default 30000
   */
  writeTimeout?: number | false
  /**
   * On server shutdown, how long (ms) the source may still send a farewell event after its
   * signal aborts with reason `shutdown`. `false` or `0` ends the stream at once.
   * @default 1000
   */
  shutdownGrace?: number | false
  /**
   * When a shutdown ends the stream, its last line is `retry: <ms>`, drawn at random from
   * `[min, max]`, so that clients come back spread over that window rather than all at once,
   * and not before the server has gone. `false` sends nothing.
   * @default [2000, 10000]
   */
  shutdownRetry?: readonly [min: number, max: number] | false
  /**
   * When the source fails, send a last `event: error` frame. `true` sends a safe message (the
   * error's own message only when its `statusCode` is 4xx); a function builds the event itself.
   * @default false
   */
  errorEvent?: boolean | ((error: unknown) => EventObject)
  /**
   * How many events a sink may hold unsent while the client is slow. Past it the stream closes
   * with reason `overflow` (the client reconnects and resumes from its `Last-Event-ID`).
   * @default 1024
   */
  queueLimit?: number
  /**
   * How long (ms) a stream may live: it ends as `max-age` after 80 to 100 % of this (at random,
   * so that streams opened together do not end together), after a whole frame, with a `retry:`
   * line drawn from `expiryRetry`; the client comes back and resumes by its last event id.
   * `false` or `0`: no limit.
   * @default false
   */
  maxAge?: number | false
  /**
   * `[min, max]` ms: a stream ended by `maxAge` or `expiresAt` ends with the line `retry: <ms>`,
   * drawn at random from the window. `false` sends nothing.
   * @default [500, 3000]
   */
  expiryRetry?: readonly [min: number, max: number] | false
  /**
   * Per call only: when the stream ends as `expired` (a token's `exp`, as a Date or ms since the
   * epoch), after a whole frame, with a `retry:` line drawn from `expiryRetry`.
   */
  expiresAt?: Date | number
  /**
   * The level of the line logged when a stream ends; `'silent'` logs nothing.
   * @default 'info'
   */
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'
}

/** Options given at registration. */
export interface SsePluginOptions extends SseStreamOptions {
  /**
   * Longest `Last-Event-ID` accepted, in UTF-16 code units; longer values are treated as absent.
   * @default 1024
   */
  lastEventIdMaxLength?: number
  /**
   * Seconds sent in `Retry-After` with the 503 given to a stream started while the server closes.
   * @default 5
   */
  retryAfter?: number
  /** The hub: topics, history and resume (`app.sse.publish()`, `reply.sseSubscribe()`). */
  hub?: HubOptions
  /**
   * Open streams (hub subscriptions included) the plugin instance holds at most. Past it, a new
   * stream is refused with `503` and `Retry-After` (`FST_ERR_SSE_TOO_MANY_STREAMS`) before its
   * reply is taken. `false` or `0`: no limit.
   * @default false
   */
  maxStreams?: number | false
  /**
   * Open streams per admission key (the client's IP by default) at most. Past it, a new stream
   * is refused with `429` and `Retry-After` (`FST_ERR_SSE_TOO_MANY_STREAMS_PER_KEY`).
   * `false` or `0`: no limit.
   * @default false
   */
  maxStreamsPerKey?: number | false
  /**
   * The admission key of a request, for `maxStreamsPerKey` (a user id, say). Must return a
   * string; one that throws refuses that request with `500` (`FST_ERR_SSE_ADMISSION_KEY`).
   * @default (request) => request.ip
   */
  admissionKey?: (request: FastifyRequest) => string
}

/** What a piped producer may be: an iterable of events, or a function of an AbortSignal returning one. */
export type SsePipeSource<E = EventObject> =
  | AsyncIterable<E> | Iterable<E>
  | ((signal: AbortSignal) => AsyncIterable<E> | Iterable<E> | Promise<AsyncIterable<E> | Iterable<E>>)

/** `app.sse`: the hub of this app. */
export interface SseHub {
  /**
   * Stores `event` in `topic`'s history and sends it to the topic's subscribers. Resolves with the
   * id it was given once stored. Rejects with a typed error for a bad topic or event (an event
   * that brings its own `id`), or when the broker fails. With an `idempotencyKey`, a broker that
   * supports them (Redis) stores the event once per key and answers a retry with the first id.
   */
  publish(topic: string, event: EventObject & { id?: undefined }, options?: PublishOptions): Promise<string>
  /**
   * Runs a producer into `topic`, independently of any connection, and ends the topic with a
   * marker that ends its subscribers' streams cleanly. One per topic: a second call while one
   * runs, or while a finished one's history is held, starts nothing and settles with the first.
   * With a broker shared by several processes (Redis), one across them: a call that another
   * process won, or that finds the topic's events in the broker, starts nothing and resolves at
   * once; one the broker cannot answer rejects with FST_ERR_SSE_BROKER and starts nothing.
   */
  pipe(topic: string, source: SsePipeSource): Promise<void>
  /**
   * A snapshot of the plugin instance: open streams (in total, per route and per topic), events
   * and bytes written, ends per reason, admission refusals, the hub's resets and policy actions,
   * and its slowest subscribers. Counted when called, in time linear in the open streams.
   */
  stats(): SseStats
}

/** A push-style stream for producers that are callbacks or event emitters. */
export interface SseSink<E = EventObject> {
  /**
   * Queues one event for writing. Resolves `true` once the socket accepted it, or `false` if the
   * stream ended first. Throws at once for an invalid event. Awaiting it applies backpressure.
   */
  send(event: E | PreparedOf<E>): Promise<boolean>
  /** Sends a comment line, which dispatches no event. */
  comment(text: string): Promise<boolean>
  /** Ends the stream once every queued event is written. */
  end(): void
  /** Aborts when the stream ends; `signal.reason` says why. */
  readonly signal: AbortSignal
  /** The client's `Last-Event-ID`, as in the source context. */
  readonly lastEventId: string | undefined
  /** Events queued but not yet written. */
  readonly pending: number
  /** Whether the stream has ended. */
  readonly closed: boolean
  /** Settles when the stream has ended, for whatever reason. Never rejects. */
  readonly done: Promise<void>
}

/** `never` unless `M` was given: the explicit-map signature of `reply.sse()` takes nothing else. */
type ExplicitEvent<M extends EventMap> = [M] extends [never] ? never : SseEvent<M>

type RouteEvents<RouteGeneric> = RouteGeneric extends { SseEvents: infer M extends EventMap } ? M : EventMap

declare module 'fastify' {
  /* eslint-disable @typescript-eslint/no-unused-vars -- augmentations must repeat Fastify's generics */
  interface RouteGenericInterface {
    /** The route's event map, used to type `reply.sse()` and `reply.sseSink()`. */
    SseEvents?: EventMap
  }

  interface FastifyReply<
    RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    ContextConfig = ContextConfigDefault,
    SchemaCompiler extends FastifySchema = FastifySchema,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
    ReplyType extends FastifyReplyType = ResolveFastifyReplyType<TypeProvider, SchemaCompiler, RouteGeneric>
  > {
    /**
     * Hijacks the reply, writes SSE headers, and streams `source` until it ends, the client
     * goes away, or the server closes. Settles when the stream has ended; never rejects
     * because the client went away.
     */
    sse(source: SseSource<SseEvent<RouteEvents<RouteGeneric>>>, options?: SseStreamOptions): Promise<void>
    /**
     * As above, with the event map given as a type argument: `reply.sse<Ticker>(source)`.
     * (Two signatures rather than a defaulted type parameter: with one, TypeScript would type a
     * generator's yields against the parameter's constraint and widen `event: 'tick'` to string.)
     */
    sse<M extends EventMap = never>(
      source: SseSource<ExplicitEvent<NoInfer<M>>>, // M comes from the type argument, never the source
      options?: SseStreamOptions
    ): Promise<void>
    /**
     * Hijacks the reply like `sse()` and streams the topics' events: after `request.lastEventId`
     * when the client has one (no gap, no duplicate), else from the live edge (or the oldest held,
     * with `from: 'oldest'`). Settles when the stream ends.
     */
    sseSubscribe(topics: string | readonly string[], options?: SubscribeOptions & SseStreamOptions): Promise<void>
    /** Hijacks the reply like `sse()`, and returns a sink to push events into. */
    sseSink<M extends EventMap = RouteEvents<RouteGeneric>>(options?: SseStreamOptions): SseSink<SseEvent<M>>
  }

  interface FastifyInstance {
    /** The hub: `app.sse.publish(topic, event)`, `app.sse.pipe(topic, source)`. */
    sse: SseHub
  }

  interface FastifyRequest {
    /** The client's `Last-Event-ID` header (re-decoded as UTF-8), else the query parameter. */
    readonly lastEventId: string | undefined
  }

  interface RouteShorthandOptions<
    RawServer extends RawServerBase = RawServerDefault,
    RawRequest extends RawRequestDefaultExpression<RawServer> = RawRequestDefaultExpression<RawServer>,
    RawReply extends RawReplyDefaultExpression<RawServer> = RawReplyDefaultExpression<RawServer>,
    RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
    ContextConfig = ContextConfigDefault,
    SchemaCompiler extends FastifySchema = FastifySchema,
    TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault,
    Logger extends FastifyBaseLogger = FastifyBaseLogger
  > {
    /**
     * Marks an SSE route: if its async handler returns before calling `reply.sse()`, the
     * reply waits for that call instead of sending an empty 200.
     */
    sse?: boolean
  }
}

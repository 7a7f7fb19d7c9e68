import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { SsePluginOptions, SseStreamOptions } from '../types/index.js'
import type { EventObject, Serializer } from './encoder.js'
import { MAX_RETRY } from './encoder.js'
import { FST_ERR_SSE_INVALID_OPTION, describe } from './errors.js'

/** Options after defaults and validation; `0` means disabled for the durations. */
export interface ResolvedOptions {
  readonly heartbeat: number
  readonly retry: number | undefined
  readonly serializer: Serializer
  readonly lastEventIdQuery: string | false
  readonly writeTimeout: number
  readonly shutdownGrace: number
  readonly shutdownRetry: readonly [min: number, max: number] | false
  readonly errorEvent: false | ((error: unknown) => EventObject)
  readonly queueLimit: number
  /** ms a stream lives (80 to 100 % of it, at random); 0: no limit. */
  readonly maxAge: number
  /** The `retry:` window of a stream ended by `maxAge` or `expiresAt`. */
  readonly expiryRetry: readonly [min: number, max: number] | false
  /** Per call only: when the stream ends as `expired`, in ms since the epoch. */
  readonly expiresAt: number | undefined
  /** The level of the line logged when a stream ends. */
  readonly logLevel: LogLevel
  /** The lines a stream opens with: `retry: <ms>` and `: heartbeat=<ms>`, as set (derived). */
  readonly opening: string
}

export interface ResolvedPluginOptions extends ResolvedOptions {
  readonly lastEventIdMaxLength: number
  readonly retryAfter: number
  /** Open streams of the plugin instance at most; 0: no limit. */
  readonly maxStreams: number
  /** Open streams per admission key at most; 0: no limit. */
  readonly maxStreamsPerKey: number
  /** The admission key of a request. */
  readonly admissionKey: (request: FastifyRequest) => string
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'
const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']

function requestIp (request: FastifyRequest): string {
  return request.ip
}

// The most setTimeout() can wait; longer delays fire at once.
const MAX_TIMER = 2147483647
// Below this a browser reconnects in a tight loop (Chromium: 62 requests in 300 ms at retry: 0).
const RETRY_FLOOR = 500

export const DEFAULTS: ResolvedPluginOptions = Object.freeze({
  heartbeat: 15_000, // ms; 0 disables
  retry: undefined, // ms; not sent unless set
  serializer: JSON.stringify as Serializer,
  lastEventIdQuery: 'lastEventId',
  writeTimeout: 30_000, // ms; 0 disables
  shutdownGrace: 1_000, // ms
  shutdownRetry: Object.freeze([2_000, 10_000] as const), // ms
  errorEvent: false,
  queueLimit: 1024, // events
  lastEventIdMaxLength: 1024, // UTF-16 code units
  retryAfter: 5, // s
  maxAge: 0, // ms; 0: no limit
  expiryRetry: Object.freeze([500, 3_000] as const), // ms
  expiresAt: undefined,
  logLevel: 'info',
  maxStreams: 0, // 0: no limit
  maxStreamsPerKey: 0, // 0: no limit
  admissionKey: requestIp,
  opening: opening(undefined, 15_000)
})

/** A stream's opening lines, without a blank line: the retry field, and the advertised heartbeat. */
function opening (retry: number | undefined, heartbeat: number): string {
  return (retry === undefined ? '' : 'retry: ' + retry + '\n') + (heartbeat > 0 ? ': heartbeat=' + heartbeat + '\n' : '')
}

function isInt (value: unknown, min: number, max: number): value is number {
  return Number.isInteger(value) && (value as number) >= min && (value as number) <= max
}

function invalid (name: string, expected: string, value: unknown): never {
  throw new FST_ERR_SSE_INVALID_OPTION(name, expected, describe(value))
}

function duration (name: string, value: unknown): number {
  if (value === false) return 0
  if (!isInt(value, 0, MAX_TIMER)) invalid(name, `false or an integer number of ms from 0 to ${MAX_TIMER}`, value)
  return value
}

/** Safe message for the default error event: only 4xx messages are meant for clients. */
function defaultErrorEvent (error: unknown): EventObject {
  const status = (error as { statusCode?: unknown } | null)?.statusCode
  const message = typeof status === 'number' && status >= 400 && status < 500
    ? String((error as Error).message)
    : 'Internal Server Error'
  return { event: 'error', data: message }
}

// Options that only registration takes: a stream of its own could not honour them.
const PLUGIN_ONLY = ['lastEventIdMaxLength', 'retryAfter', 'hub', 'maxStreams', 'maxStreamsPerKey', 'admissionKey'] as const

/** A `[min, max]` window of `retry:` values, or false. */
function retryWindow (name: string, range: unknown): readonly [number, number] | false {
  if (range !== false && !(Array.isArray(range) && range.length === 2 && isInt(range[0], 0, MAX_RETRY) && isInt(range[1], range[0], MAX_RETRY))) {
    invalid(name, `false or [min, max], integer numbers of ms with 0 <= min <= max <= ${MAX_RETRY}`, range)
  }
  return range === false ? false : Object.freeze([range[0], range[1]] as [number, number])
}

/** A limit of streams: false or 0 for none. */
function limit (name: string, value: unknown): number {
  if (value === false) return 0
  if (!isInt(value, 0, Number.MAX_SAFE_INTEGER)) invalid(name, 'false or a non-negative integer', value)
  return value
}

/**
 * Applies `options` over `base`, validating each one given. Returns `base` itself when there is
 * nothing to apply, so per-call options cost nothing when unused. `perCall` refuses the options
 * that only registration takes, rather than ignoring them in silence.
 */
export function resolveOptions<T extends ResolvedOptions> (
  base: T,
  options: SseStreamOptions | SsePluginOptions | undefined,
  log?: FastifyBaseLogger,
  perCall = false
): T {
  if (options === undefined) return base
  if (typeof options !== 'object' || options === null) invalid('options', 'an object', options)
  const out: Record<string, unknown> = { ...(base as object) }
  const o = options as SsePluginOptions
  if (perCall) {
    for (const name of PLUGIN_ONLY) {
      if ((o as Record<string, unknown>)[name] !== undefined) invalid(name, 'given at registration, not per stream', (o as Record<string, unknown>)[name])
    }
  }
  if (o.heartbeat !== undefined) out.heartbeat = duration('heartbeat', o.heartbeat)
  if (o.writeTimeout !== undefined) out.writeTimeout = duration('writeTimeout', o.writeTimeout)
  if (o.retry !== undefined) {
    if (!isInt(o.retry, 0, MAX_RETRY)) invalid('retry', `an integer number of ms from 0 to ${MAX_RETRY}`, o.retry)
    if (o.retry < RETRY_FLOOR) {
      log?.warn(`fastify-sse-stream: retry ${o.retry} ms is below ${RETRY_FLOOR} ms; browsers will reconnect in a tight loop`)
    }
    out.retry = o.retry
  }
  if (o.serializer !== undefined) {
    if (typeof o.serializer !== 'function') invalid('serializer', 'a function', o.serializer)
    out.serializer = o.serializer
  }
  if (o.lastEventIdQuery !== undefined) {
    if (o.lastEventIdQuery !== false && (typeof o.lastEventIdQuery !== 'string' || o.lastEventIdQuery === '')) {
      invalid('lastEventIdQuery', 'a non-empty string or false', o.lastEventIdQuery)
    }
    out.lastEventIdQuery = o.lastEventIdQuery
  }
  if (o.shutdownGrace !== undefined) out.shutdownGrace = duration('shutdownGrace', o.shutdownGrace)
  if (o.shutdownRetry !== undefined) {
    out.shutdownRetry = retryWindow('shutdownRetry', o.shutdownRetry)
  }
  if (o.maxAge !== undefined) out.maxAge = duration('maxAge', o.maxAge)
  if (o.expiryRetry !== undefined) out.expiryRetry = retryWindow('expiryRetry', o.expiryRetry)
  if (o.expiresAt !== undefined) {
    // A token's exp is a time, not a duration: given at registration it would end every stream at once.
    if (!perCall) invalid('expiresAt', 'given per stream, not at registration', o.expiresAt)
    const at = o.expiresAt instanceof Date ? o.expiresAt.getTime() : o.expiresAt
    if (typeof at !== 'number' || !Number.isFinite(at)) invalid('expiresAt', 'a valid Date or a number of ms since the epoch', o.expiresAt)
    out.expiresAt = at
  }
  if (o.logLevel !== undefined) {
    if (!LOG_LEVELS.includes(o.logLevel)) invalid('logLevel', `one of ${LOG_LEVELS.map((l) => `'${l}'`).join(', ')}`, o.logLevel)
    out.logLevel = o.logLevel
  }
  if (o.maxStreams !== undefined) out.maxStreams = limit('maxStreams', o.maxStreams)
  if (o.maxStreamsPerKey !== undefined) out.maxStreamsPerKey = limit('maxStreamsPerKey', o.maxStreamsPerKey)
  if (o.admissionKey !== undefined) {
    if (typeof o.admissionKey !== 'function') invalid('admissionKey', 'a function', o.admissionKey)
    out.admissionKey = o.admissionKey
  }
  if (o.errorEvent !== undefined) {
    if (typeof o.errorEvent === 'function') out.errorEvent = o.errorEvent
    else if (typeof o.errorEvent === 'boolean') out.errorEvent = o.errorEvent && defaultErrorEvent
    else invalid('errorEvent', 'a boolean or a function', o.errorEvent)
  }
  if (o.queueLimit !== undefined) {
    if (!isInt(o.queueLimit, 1, Number.MAX_SAFE_INTEGER)) invalid('queueLimit', 'a positive integer', o.queueLimit)
    out.queueLimit = o.queueLimit
  }
  if (o.lastEventIdMaxLength !== undefined) {
    if (!isInt(o.lastEventIdMaxLength, 1, 65536)) invalid('lastEventIdMaxLength', 'an integer from 1 to 65536', o.lastEventIdMaxLength)
    out.lastEventIdMaxLength = o.lastEventIdMaxLength
  }
  if (o.retryAfter !== undefined) {
    if (!isInt(o.retryAfter, 0, 86400)) invalid('retryAfter', 'an integer number of seconds from 0 to 86400', o.retryAfter)
    out.retryAfter = o.retryAfter
  }
  out.opening = opening(out.retry as number | undefined, out.heartbeat as number)
  return Object.freeze(out) as unknown as T
}

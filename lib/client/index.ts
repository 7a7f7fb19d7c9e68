// fastify-sse-stream/client: a typed Server-Sent Events client over fetch, for browsers, web
// workers and Node 20.19+. It never touches a global at import time, and reads `window` and
// `document` only when page lifecycle handling is asked for. See docs/client.md.
import { createParser, type ParseError } from 'eventsource-parser'
import type { ContractEvent, SseMessage, StreamContract, BodyOf, StandardSchemaV1, SseResetData } from './contract.js'
import {
  SseError,
  SseHttpError,
  SseInterruptedError,
  SseNetworkError,
  SseProtocolError,
  SseTimeoutError,
  SseValidationError
} from './errors.js'

export * from './errors.js'
export { defineStream, json, text } from './contract.js'
export type * from './contract.js'

// Derived from the constructors, so that the types hold with the DOM lib or with Node's.
type HeadersInit = ConstructorParameters<typeof Headers>[0]
type BodyInit = NonNullable<RequestInit['body']>

export type StreamState = 'connecting' | 'open' | 'reconnecting' | 'closed'

/**
 * Why a stream closed: `abort` (signal, `close()`, `break`, dispose), `end` (204, the terminal
 * event, or `onEnd: 'stop'`), `fatal` (an error that is not retried) or `gave-up` (retries spent).
 */
export type CloseReason = 'abort' | 'end' | 'fatal' | 'gave-up'

export interface CloseInfo {
  reason: CloseReason
  /** The error, for `fatal` and `gave-up`. */
  error?: unknown
}

/** What an (async) `url`, `headers` or `body` function gets on each attempt. */
export interface RequestContext {
  /** 1 for the first request, then one more for each request sent. */
  attempt: number
  lastEventId: string | undefined
  signal: AbortSignal
}

/** A value, or a function called again on every attempt that returns it (or a promise of it). */
export type Dynamic<T> = T | ((context: RequestContext) => T | Promise<T>)

/** The clock the client uses, injectable so that tests can step backoff and timeouts. */
export interface Timers {
  setTimeout: (callback: () => void, ms: number) => unknown
  clearTimeout: (handle: any) => void // eslint-disable-line @typescript-eslint/no-explicit-any
  now: () => number
}

/** Opt-in page lifecycle handling. `window` and `document` default to the globals. */
export interface LifecycleOptions {
  window?: EventTarget
  document?: EventTarget & { readonly visibilityState?: string }
  /**
   * Close the connection once the page has been hidden this long (ms), and reconnect with
   * `Last-Event-ID` when it is shown again. Only a stream that can be resumed safely is paused.
   * By default the stream stays open while hidden.
   */
  hiddenTimeout?: number
}

export interface RetryInfo {
  /** Consecutive failed attempts since the last delivered event, this one included. */
  attempt: number
  /** The wait before the next attempt, in ms. */
  delay: number
  error: unknown
}

export interface ConnectOptions<E = SseMessage, B = BodyInit | Record<string, unknown> | unknown[] | null> {
  /** The URL, or for a contract a URL that replaces its path. May be an (async) function. */
  url?: Dynamic<string | URL>
  /** Resolves a relative URL. Defaults to `location.href` where there is one. */
  baseUrl?: string | URL
  /** Defaults to the contract's method, or GET. */
  method?: string
  headers?: Dynamic<HeadersInit | undefined>
  /** A plain object or array is sent as JSON (with `content-type: application/json` unless set). */
  body?: Dynamic<B | undefined>
  /** Other fetch options (credentials, mode, referrer...), applied to every attempt. */
  init?: Omit<RequestInit, 'method' | 'headers' | 'body' | 'signal'>
  fetch?: (request: Request) => Promise<Response>
  signal?: AbortSignal
  /** The `Last-Event-ID` of the first request, e.g. one saved from an earlier stream. */
  lastEventId?: string
  /**
   * Sent as `Idempotency-Key` on every attempt. `true` makes a random UUID, fixed for this
   * stream. With it, a non-idempotent request may be re-sent once the server issued an event ID.
   */
  idempotencyKey?: string | true
  /** The first backoff step, in ms, until the server sends `retry:`. Default 1000. */
  retryDelay?: number
  /** The backoff cap, in ms. Default 30000. */
  maxRetryDelay?: number
  /** Full jitter: each wait is uniform in [0, step). Default true. */
  jitter?: boolean
  /** Consecutive failed attempts allowed before giving up. Default Infinity. */
  maxRetries?: number
  /** Give up once reconnecting would pass this many ms since the last delivered event (or the start). Default Infinity. */
  totalTimeout?: number
  /** `'auto'` (default): 2.5 × the heartbeat the server advertises, else 45000 ms. 0 turns it off. */
  idleTimeout?: number | 'auto'
  /** Event names that end the stream cleanly once delivered. */
  terminalEvent?: string | readonly string[]
  /** When the server ends the body: reconnect (default), stop, or decide (throwing counts as an error). */
  onEnd?: 'reconnect' | 'stop' | (() => 'reconnect' | 'stop' | void)
  /** Bound on one event's buffered text, in characters. Default 4 MiB. */
  maxEventSize?: number
  /** Validate `data` with the contract's Standard Schemas. Default true. */
  validate?: boolean
  /** Opt-in page lifecycle: `true` for the globals, or injected targets. */
  lifecycle?: boolean | LifecycleOptions
  random?: () => number
  timers?: Timers
  /** Consume with a callback instead of iterating. A returned promise holds the next read. */
  onEvent?: (event: E) => void | Promise<void>
  /** Called with every response but a 204, before the client checks it. Throwing makes it a retriable failure. */
  onResponse?: (response: Response) => void | Promise<void>
  onOpen?: (response: Response) => void
  /** Called before each retry: `false` stops (fatal), a number replaces the delay, throwing is fatal with that error. */
  shouldRetry?: (error: unknown, info: Omit<RetryInfo, 'error'>) => boolean | number | void | Promise<boolean | number | void>
  onRetry?: (info: RetryInfo) => void
  onStateChange?: (state: StreamState) => void
  /** Called when the hub's `sse-reset` event is delivered. */
  onReset?: (data: SseResetData, id: string) => void
  /** Called once, when the stream closes, with the reason. */
  onClose?: (info: CloseInfo) => void
}

export interface SseStream<E> extends AsyncIterable<E> {
  readonly state: StreamState
  /** The last event ID committed: the one of the last event delivered, or of an id-only frame. */
  readonly lastEventId: string | undefined
  /** Requests sent so far. */
  readonly attempt: number
  /** Resolves once the stream has closed, with the reason. Never rejects. */
  readonly closed: Promise<CloseInfo>
  /** Closes the stream (reason `abort`); the body is cancelled. */
  close (): void
  [Symbol.asyncIterator] (): AsyncIterator<E, undefined>
  [Symbol.asyncDispose] (): Promise<void>
}

interface Item {
  /** An id to commit. */
  i?: string
  /** An event: name (undefined for message) and data. */
  e?: string | undefined
  d?: string
  /** An error to raise once the events before it are delivered. */
  x?: SseProtocolError
}

type AnyFn = (...args: any[]) => any // eslint-disable-line @typescript-eslint/no-explicit-any

const noop = (): void => {}
const IDEMPOTENT = /^(GET|HEAD|OPTIONS|TRACE|PUT|DELETE)$/i

// A callback's error must not change the stream: it is reported as an unhandled rejection.
function emit<A extends unknown[]> (fn: ((...args: A) => unknown) | undefined, ...args: A): void {
  try {
    fn?.(...args)
  } catch (error) {
    Promise.reject(error) // eslint-disable-line @typescript-eslint/no-floating-promises
  }
}

// A version 4 UUID (120 random bits). Not crypto.randomUUID(): it exists only in secure contexts,
// and a page served over plain HTTP from a LAN address is not one; getRandomValues() is everywhere.
const uuid = (): string => [...crypto.getRandomValues(new Uint8Array(16))]
  .map((x) => (x | 256).toString(16).slice(1)).join('')
  .replace(/^(.{8})(.{4}).(.{3}).(.{3})/, '$1-$2-4$3-a$4-')

function retryAfter (response: Response): number | undefined {
  const value = response.headers.get('retry-after')?.trim()
  if (value) {
    const ms = /^\d+$/.test(value) ? Number(value) * 1000 : Date.parse(value) - Date.now()
    if (ms >= 0) return ms
  }
}

/** Opens a typed stream described by a contract. */
export function connect<C extends StreamContract> (contract: C, options?: ConnectOptions<ContractEvent<C>, BodyOf<C>>): SseStream<ContractEvent<C>>
/** Opens a stream from a URL; each event's `data` is the text that arrived. */
export function connect (url: Dynamic<string | URL>, options?: ConnectOptions): SseStream<SseMessage>
export function connect (target: StreamContract | Dynamic<string | URL>, options: ConnectOptions<any, any> = {}): SseStream<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const contract = typeof target === 'object' && 'events' in target ? target : undefined
  const events = contract?.events
  const method = (options.method ?? contract?.method ?? 'GET').toUpperCase()
  const T: Timers = options.timers ?? { setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout: (h) => clearTimeout(h), now: Date.now }
  const random = options.random ?? Math.random
  const fetcher = options.fetch ?? ((request: Request) => fetch(request))
  const terminal = ([] as string[]).concat(options.terminalEvent ?? [])
  const key = options.idempotencyKey === true ? uuid() : options.idempotencyKey
  const onEnd = options.onEnd ?? 'reconnect'
  const maxRetries = options.maxRetries ?? Infinity
  const totalTimeout = options.totalTimeout ?? Infinity
  const maxRetryDelay = options.maxRetryDelay ?? 30000
  const idleOption = options.idleTimeout ?? 'auto'
  const maxEventSize = options.maxEventSize ?? 4194304

  let state: StreamState = 'connecting'
  let lastId = options.lastEventId
  let attempt = 0
  let failures = 0
  let since = T.now()
  let retryMs = options.retryDelay ?? 1000
  let heartbeat: number | undefined
  let resumeUrl: URL | undefined
  let authRetried = false
  let ctrl: AbortController | undefined
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined
  let decoder: InstanceType<typeof TextDecoder>
  let feed: (text: string) => void
  let idleTimer: unknown
  let sleepTimer: unknown
  let hideTimer: unknown
  let wake: (() => void) | undefined
  let parked = false
  let paused = false
  let final: CloseInfo | undefined
  let thrown = false
  let chain: Promise<unknown> = Promise.resolve()
  let resolveClosed!: (info: CloseInfo) => void
  let closed = new Promise<CloseInfo>((resolve) => { resolveClosed = resolve })
  const queue: Item[] = []
  const offs: Array<() => void> = []

  const setState = (next: StreamState): void => {
    if (state !== next) emit(options.onStateChange, state = next)
  }
  const held = (): boolean => parked || paused
  const resumable = (): boolean => IDEMPOTENT.test(method) || resumeUrl !== undefined || (key !== undefined && !!lastId)
  const dyn = async <V>(value: Dynamic<V>, context: RequestContext): Promise<V> =>
    typeof value === 'function' ? (value as AnyFn)(context) : value
  const disarm = (): void => { T.clearTimeout(idleTimer) }
  const arm = (): void => {
    disarm()
    const ms = idleOption === 'auto' ? (heartbeat === undefined ? 45000 : heartbeat * 2.5) : idleOption
    const current = ctrl!
    if (ms > 0) idleTimer = T.setTimeout(() => current.abort(new SseTimeoutError(ms)), ms)
  }
  // A fetch or read that failed: the idle timeout's error when it fired, else a network error.
  const broken = (error: unknown): never => {
    throw ctrl!.signal.aborted ? ctrl!.signal.reason : new SseNetworkError('the connection failed', error)
  }
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => {
    wake = () => {
      T.clearTimeout(sleepTimer)
      wake = undefined
      resolve()
    }
    if (ms < Infinity) sleepTimer = T.setTimeout(() => { if (!held()) wake?.() }, ms)
  })
  const resumeNow = (): void => { if (!held()) wake?.() }

  function finish (reason: CloseReason, error?: unknown): void {
    if (final) return
    final = error === undefined ? { reason } : { reason, error }
    queue.length = 0
    disarm()
    T.clearTimeout(hideTimer)
    ctrl?.abort()
    reader?.cancel().catch(noop)
    reader = undefined
    for (const off of offs) off()
    wake?.()
    setState('closed')
    emit(options.onClose, final)
    resolveClosed(final)
  }

  async function open (): Promise<void> {
    attempt++
    const current = ctrl = new AbortController()
    const context: RequestContext = { attempt, lastEventId: lastId, signal: current.signal }
    let request: Request
    try {
      const url = resumeUrl ?? new URL(String(await dyn(options.url ?? contract?.path ?? target as Dynamic<string | URL>, context)),
        options.baseUrl ?? (globalThis as { location?: { href: string } }).location?.href)
      const headers = new Headers(await dyn(options.headers, context))
      let body = resumeUrl ? undefined : await dyn(options.body, context)
      if (body !== null && typeof body === 'object' && (Array.isArray(body) || Object.getPrototypeOf(body) === Object.prototype)) {
        body = JSON.stringify(body)
        if (!headers.has('content-type')) headers.set('content-type', 'application/json')
      }
      headers.set('accept', 'text/event-stream')
      if (lastId) headers.set('last-event-id', lastId)
      else headers.delete('last-event-id')
      if (key !== undefined) headers.set('idempotency-key', key)
      request = new Request(url, { ...options.init, method: resumeUrl ? 'GET' : method, headers, body, signal: current.signal })
    } catch (error) {
      // A request that cannot be built (a bad URL or header, a failing headers function) will not build on a retry either.
      return finish('fatal', error)
    }
    arm()
    const response = await fetcher(request).catch(broken)
    disarm()
    if (final) return
    if (response.status === 204) return finish('end')
    await options.onResponse?.(response)
    const type = response.headers.get('content-type')?.split(';')[0]!.trim().toLowerCase()
    if (response.status !== 200 || type !== 'text/event-stream' || !response.body) {
      response.body?.cancel().catch(noop)
      if ((response.status === 401 || response.status === 403) && typeof options.headers === 'function' && !authRetried) {
        // One immediate retry, with the headers function run again (a refreshed token).
        authRetried = true
        return
      }
      throw response.status === 200 ? new SseProtocolError(`expected text/event-stream, got ${type}`) : new SseHttpError(response, retryAfter(response))
    }
    authRetried = false
    const base = response.url || request.url
    decoder = new TextDecoder()
    const parser = createParser({
      // onId comes first for a frame with an id; its event then joins the same item, so that the
      // id is committed when the event is delivered, and on its own for an id-only frame.
      onId: (id) => queue.push({ i: id }),
      onEvent: (event) => {
        if (event.id === undefined) queue.push({ e: event.event, d: event.data })
        else Object.assign(queue[queue.length - 1]!, { e: event.event, d: event.data })
      },
      onRetry: (ms) => { retryMs = ms },
      onComment: (comment) => {
        const [, field, value] = /^(heartbeat|resume)=(.+)$/.exec(comment) ?? []
        if (field === 'heartbeat') {
          heartbeat = Number(value) || undefined
        } else if (value) {
          try {
            const url = new URL(value, base)
            // Never follow a resume URL to another origin: it would get this stream's headers.
            if (url.origin === new URL(base).origin) resumeUrl = url
          } catch {}
        }
      },
      onError: (error: ParseError) => {
        if (error.type === 'max-buffer-size-exceeded') queue.push({ x: new SseProtocolError(`an event exceeded ${maxEventSize} characters`) })
      },
      maxBufferSize: maxEventSize
    })
    feed = (text) => parser.feed(text)
    reader = response.body.getReader()
    setState('open')
    emit(options.onOpen, response)
  }

  async function read (): Promise<void> {
    arm()
    const { done, value } = await reader!.read().catch(broken)
    disarm()
    if (done) {
      reader = undefined
      const decision = typeof onEnd === 'function' ? onEnd() : onEnd
      if (decision === 'stop') return finish('end')
      throw new SseNetworkError('the server ended the stream')
    }
    feed(decoder.decode(value, { stream: true }))
  }

  async function fail (error: unknown): Promise<void> {
    disarm()
    ctrl?.abort()
    reader?.cancel().catch(noop)
    reader = undefined
    if (final) return
    // Offline, or paused while hidden: wait for the page to come back, without counting a failure.
    const hold = held()
    if (!hold && !(error instanceof SseError ? error.retriable : true)) return finish('fatal', error)
    let delay = 0
    if (!hold) {
      failures++
      const step = Math.min(maxRetryDelay, retryMs * 2 ** (failures - 1))
      delay = error instanceof SseHttpError && error.retryAfter !== undefined
        ? error.retryAfter
        : options.jitter === false ? step : random() * step
      if (failures > maxRetries) return finish('gave-up', error)
      try {
        const verdict = await options.shouldRetry?.(error, { attempt: failures, delay })
        if (verdict === false) return finish('fatal', error)
        if (typeof verdict === 'number') delay = verdict
      } catch (thrownError) {
        return finish('fatal', thrownError)
      }
    }
    if (!resumable()) return finish('fatal', new SseInterruptedError(method, error))
    if (T.now() + delay - since > totalTimeout) return finish('gave-up', error)
    if (final) return
    setState('reconnecting')
    if (hold) return sleep(Infinity)
    emit(options.onRetry, { attempt: failures, delay, error })
    await sleep(delay)
  }

  // Decodes and checks an event, then commits its id; undefined for an id-only frame or an event outside the contract.
  async function deliver (item: Item): Promise<unknown> {
    if (item.x) throw item.x
    if (item.d === undefined) {
      lastId = item.i
      return
    }
    const name = item.e ?? 'message'
    const definition = events?.[name]
    let data: unknown = item.d
    try {
      if (name === 'sse-reset' && (contract || options.onReset)) {
        data = JSON.parse(item.d)
      } else if (definition && (definition as { decode?: string }).decode !== 'text') {
        data = JSON.parse(item.d)
        const schema = (definition as StandardSchemaV1)['~standard']
        if (schema && options.validate !== false) {
          const result = await schema.validate(data)
          if (result.issues) throw new SseValidationError(name, result.issues)
          data = result.value
        }
      }
    } catch (error) {
      throw error instanceof SseError ? error : new SseProtocolError(`invalid data for event "${name}"`, false, error)
    }
    if (final) return
    if (item.i !== undefined) lastId = item.i
    failures = 0
    since = T.now()
    if (name === 'sse-reset') emit(options.onReset, data as SseResetData, lastId ?? '')
    if (contract && !definition && name !== 'sse-reset') return
    if (terminal.includes(name)) finish('end')
    return { event: name, data: contract ? data : item.d, id: lastId ?? '' }
  }

  async function step (): Promise<IteratorResult<unknown, undefined>> {
    while (!final) {
      const item = queue.shift()
      try {
        if (item) {
          const event = await deliver(item)
          if (event) return { value: event, done: false }
        } else if (reader) {
          await read()
        } else {
          await open()
        }
      } catch (error) {
        await fail(error)
      }
    }
    if (final.error !== undefined && !thrown) {
      thrown = true
      throw final.error
    }
    return { value: undefined, done: true }
  }

  const iterator: AsyncIterator<unknown, undefined> = {
    next: () => (chain = chain.then(step, step)) as Promise<IteratorResult<unknown, undefined>>,
    return: async () => {
      finish('abort')
      return { value: undefined, done: true }
    }
  }

  const stream: SseStream<unknown> = {
    get state () { return state },
    get lastEventId () { return lastId },
    get attempt () { return attempt },
    get closed () { return closed },
    close: () => finish('abort'),
    [Symbol.asyncIterator]: () => iterator,
    [Symbol.asyncDispose]: async () => {
      finish('abort')
      await closed
    }
  }

  const signal = options.signal
  if (signal?.aborted) {
    finish('abort')
    return stream
  }
  if (signal) {
    const abort = (): void => finish('abort')
    signal.addEventListener('abort', abort)
    offs.push(() => signal.removeEventListener('abort', abort))
  }

  const lifecycle = options.lifecycle
  if (lifecycle) {
    const g = globalThis as { window?: EventTarget, document?: LifecycleOptions['document'] }
    const { window = g.window, document = g.document, hiddenTimeout } = lifecycle === true ? {} : lifecycle
    const on = (target: EventTarget | undefined, type: string, listener: () => void): void => {
      if (target) {
        target.addEventListener(type, listener)
        offs.push(() => target.removeEventListener(type, listener))
      }
    }
    on(document, 'visibilitychange', () => {
      T.clearTimeout(hideTimer)
      if (document!.visibilityState === 'hidden') {
        if (hiddenTimeout !== undefined) {
          hideTimer = T.setTimeout(() => {
            if (resumable()) {
              paused = true
              ctrl?.abort()
            }
          }, hiddenTimeout)
        }
      } else {
        paused = false
        resumeNow()
      }
    })
    on(document, 'resume', resumeNow)
    on(window, 'pageshow', resumeNow)
    on(window, 'online', () => {
      parked = false
      resumeNow()
    })
    on(window, 'offline', () => { parked = true })
  }

  // The request goes out now (retried as needed until it opens); the body is read only as the consumer pulls.
  chain = chain.then(async () => {
    while (!final && !reader) {
      try {
        await open()
      } catch (error) {
        await fail(error)
      }
    }
  })

  if (options.onEvent) {
    const onEvent = options.onEvent
    const closing = closed
    // With a callback, `closed` waits for the last call to return.
    closed = (async () => {
      for (let result = await iterator.next(); !result.done; result = await iterator.next()) {
        try {
          await onEvent(result.value)
        } catch (error) {
          // A callback's error closes the stream; it never triggers a new request.
          finish('fatal', error)
        }
      }
    })().catch(noop).then(() => closing)
  }

  return stream
}

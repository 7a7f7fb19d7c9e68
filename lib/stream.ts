import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from 'fastify'
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { SseCloseReason, SseContext } from '../types/index.js'
import { channels } from './diagnostics.js'
import { encodeEvent } from './encoder.js'
import { FST_ERR_SSE_CLOSED } from './errors.js'
import { cachedLastEventId, readLastEventId } from './last-event-id.js'
import type { LogLevel, ResolvedOptions } from './options.js'
import type { PluginState } from './plugin-state.js'

export const kResume = Symbol('fastify-sse-stream.resume')
export const kRelease = Symbol('fastify-sse-stream.release')
export const kShutdown = Symbol('fastify-sse-stream.shutdown')

/**
 * What feeds a stream (a source pump or a sink). Symbol-named, so that a sink handed to user
 * code shows no such methods, and methods rather than callbacks, so that nothing is allocated.
 */
export interface Producer {
  /** The socket drained after whenDrained(): write what waits, and go on. */
  [kResume]: () => void
  /** The stream closed: stop, and settle whatever was promised. */
  [kRelease]: () => void
  /** The server is closing (optional): a producer with no farewell to give ends the stream now. */
  [kShutdown]?: () => void
}

const OPEN = 0
const DRAINING = 1 // shutting down: the source may still send a farewell within the grace period
const CLOSED = 2

const HEARTBEAT = ': ping\n'

// Connection-specific headers, which HTTP/2 forbids (Node warns, Safari rejects the response).
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']
const STREAM_CACHE = ['no-cache', 'no-transform']

/** The app's Cache-Control directives (`private`, say), with those a stream needs added. */
function cacheControl (value: OutgoingHttpHeaders[string]): string {
  if (value === undefined) return 'no-cache, no-transform'
  const directives = String(value).split(',').map((d) => d.trim()).filter((d) => d !== '')
  const names = directives.map((d) => d.split('=')[0]!.trim().toLowerCase())
  for (const needed of STREAM_CACHE) if (!names.includes(needed)) directives.push(needed)
  return directives.join(', ')
}

const HEAD: OutgoingHttpHeaders = Object.freeze({
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no'
})
const KEEP_ALIVE_HEAD: OutgoingHttpHeaders = Object.freeze({ ...HEAD, connection: 'keep-alive' })

function isEmpty (headers: OutgoingHttpHeaders): boolean {
  for (const _ in headers) return false
  return true
}

// Where Fastify keeps a reply's own headers (see noHeaders()): looked up on the first reply, and again
// on a reply that lacks it (one of another copy of Fastify in the process: its symbols are its own).
let kReplyHeaders = Symbol('none')

/** The symbol with this description on `object` (Fastify's own stores); one that nothing has if none. */
export function fastifyKey (object: object, description: string): symbol {
  return Object.getOwnPropertySymbols(object).find((s) => s.description === description) ?? Symbol('none')
}

/**
 * Whether neither the reply nor its raw response has a header set. This is what most streams
 * ask, on every connect, and reply.getHeaders() answers it by copying both sets into a new
 * object, the raw response's into one made for the purpose. Fastify keeps a reply's own headers
 * in a plain object under a symbol of its own (Fastify 3 to 5): read there, the answer
 * costs no copy. Should a version keep them elsewhere, the answer is no, and getHeaders() is used.
 */
export function noHeaders (reply: FastifyReply): boolean {
  let own = (reply as unknown as Record<symbol, unknown>)[kReplyHeaders]
  if (own === undefined) {
    kReplyHeaders = fastifyKey(reply, 'fastify.reply.headers')
    own = (reply as unknown as Record<symbol, unknown>)[kReplyHeaders]
  }
  return typeof own === 'object' && own !== null && isEmpty(own as OutgoingHttpHeaders) && reply.raw.getHeaderNames().length === 0
}

// Where Fastify keeps a request's route context (see routeUrl()), found as kReplyHeaders is.
let kRouteContext = Symbol('none')
type WithRouteContext = Record<symbol, { config?: { url?: unknown } } | undefined>

/**
 * The route's URL as declared (`/events/:room`), '' for a not-found handler: for the stats and the
 * diagnostics channels. request.routeOptions answers it by making an object of a dozen fields,
 * and asking the server about its constraints, on every read: a fifth of a microsecond of every
 * connect (bench/RESULTS.md, session 10). Fastify keeps it in the config of the route context it
 * gives each request (Fastify 4 and 5); should a version keep it elsewhere, routeOptions answers.
 */
export function routeUrl (request: FastifyRequest): string {
  let context = (request as unknown as WithRouteContext)[kRouteContext]
  if (context === undefined) {
    kRouteContext = fastifyKey(request, 'fastify.context')
    context = (request as unknown as WithRouteContext)[kRouteContext]
    if (context === undefined) return request.routeOptions.url ?? ''
  }
  // routeOptions.url is this very field (a not-found handler's context has none).
  const url = context.config?.url
  return typeof url === 'string' ? url : ''
}

/**
 * Whether `log` writes at `level`. pino puts a function named `noop` in place of each level it
 * drops, and so does the logger Fastify uses when logging is off (abstract-logging): a line built
 * for one of those is thrown away, and so is the clock read that measured it.
 */
export function logsAt (log: FastifyBaseLogger, level: LogLevel): boolean {
  if (level === 'silent') return false
  // The last method asked about, and its answer: a function's name is read through a native
  // accessor, and every connect asks twice of the same one or two methods. (A logger without the
  // method, which a hook may have put on the request, writes nothing at that level.)
  const method = log[level] as unknown
  if (method !== lastMethod) {
    lastMethod = method
    lastWrites = typeof method === 'function' && method.name !== 'noop'
  }
  return lastWrites
}
let lastMethod: unknown = null
let lastWrites = false

/** performance.now() in whole ms: a small integer, which a field holds without a heap number. */
function clock (): number {
  return Math.floor(performance.now())
}

/**
 * Headers every stream sends, over those set earlier by hooks and plugins (CORS, say), on the
 * reply or on its raw response. `keepAlive` is whether to say `Connection: keep-alive` (HTTP/1.1
 * only); `http2` drops the connection-specific headers a hook may have set.
 */
function streamHeaders (reply: FastifyReply, keepAlive: boolean, http2: boolean): OutgoingHttpHeaders {
  // Most streams: the app set none, and the head is one of two objects made once (Node only reads
  // it; frozen, so that code that would write into it fails instead of changing every later head).
  if (noHeaders(reply)) return keepAlive ? KEEP_ALIVE_HEAD : HEAD
  // The reply's headers and its raw response's.
  const headers = reply.getHeaders() as OutgoingHttpHeaders
  // A stream has no length, and it is never compressed: a compressor would hold events back.
  // writeHead() merges its headers into those already set on the raw response (by middleware,
  // say): remove these there as well, or they would still go out. (Never transfer-encoding:
  // removing it, even when absent, turns chunked framing off.)
  const res = reply.raw
  if (headers['content-length'] !== undefined) {
    delete headers['content-length']
    if (res.hasHeader('content-length')) res.removeHeader('content-length')
  }
  if (headers['content-encoding'] !== undefined) {
    delete headers['content-encoding']
    if (res.hasHeader('content-encoding')) res.removeHeader('content-encoding')
  }
  if (headers['transfer-encoding'] !== undefined) delete headers['transfer-encoding']
  // Exactly this value: fetch-event-source's documented onopen check compares it with ===.
  headers['content-type'] = 'text/event-stream'
  headers['cache-control'] = cacheControl(headers['cache-control'])
  // An app that sets it has chosen; by default, nginx must not buffer the stream.
  headers['x-accel-buffering'] ??= 'no'
  if (http2) {
    for (const name of HOP_BY_HOP) if (headers[name] !== undefined) delete headers[name]
  } else if (keepAlive) {
    headers.connection = 'keep-alive'
  }
  return headers
}

// Listeners and timers are module functions that find their stream on the emitter or in their
// arguments, instead of closures made for every stream: an idle stream is mostly what it holds.
const kStream = Symbol('fastify-sse-stream.stream')
interface Carrier { [kStream]?: SseStream }

// The response's close and error (a pipelined response still queued has a listener of its own on
// the socket, see open()).
function onConnectionClose (this: Carrier): void {
  this[kStream]!.close('client-closed')
}
function onResponseDrain (this: Carrier): void {
  this[kStream]!.drained()
}
// The stream that writes its chunks to a socket (see open()), for the socket's drain listener.
const kChunked = Symbol('fastify-sse-stream.chunked')
interface ChunkCarrier { [kChunked]?: SseStream }
function onSocketDrain (this: ChunkCarrier): void {
  this[kChunked]!.drained()
}
// A pipelined response was given the socket: its write deadline may start now.
function onResponseSocket (this: Carrier): void {
  this[kStream]!.armDeadline()
}
function stall (stream: SseStream): void { stream.stall() }
const CRLF = Buffer.from('\r\n')
// Chunk heads for sizes below 64 KiB, from tables of 256 strings made once (one join of two above
// 255): Number#toString(16), which every frame would otherwise call, is a call into the runtime.
const HEX: string[] = []
const HEX_CRLF: string[] = []
const HEX2_CRLF: string[] = []
for (let i = 0; i < 256; i++) {
  const hex = i.toString(16)
  HEX.push(hex)
  HEX_CRLF.push(hex + '\r\n')
  HEX2_CRLF.push(hex.padStart(2, '0') + '\r\n')
}

/** The head of an HTTP/1.1 chunk of `length` bytes. */
export function chunkHead (length: number): string {
  if (length < 256) return HEX_CRLF[length]!
  if (length < 65536) return HEX[length >> 8]! + HEX2_CRLF[length & 255]!
  return length.toString(16) + '\r\n'
}
function uncork (socket: Socket): void { socket.uncork() }
// The streams opened in this turn, their sockets uncorked together at its end by one Immediate.
let corked: SseStream[] = []

function uncorkLater (stream: SseStream): void {
  if (corked.push(stream) === 1) setImmediate(uncorkAll)
}

// The end of the turn in which streams opened: their opening lines go out now if no frame took them.
function uncorkAll (): void {
  const streams = corked
  corked = []
  for (const stream of streams) stream.endFirstTurn()
}

function endFirstTick (stream: SseStream): void {
  stream.endFirstTurn()
}

// The resolve function of the promise just made with `new Promise(capture)`: one executor for
// every stream's `done`, instead of a closure (and its context) per stream.
let captured: (() => void) | null = null
function capture (resolve: () => void): void { captured = resolve }

// How long a shutdown waits for what the ended streams wrote to leave their sockets.
const FLUSH_LIMIT = 1000

function over (res: ServerResponse): boolean {
  return res.writableFinished || responseClosed(res)
}

/**
 * Settles once the response of every stream in `streams` is over: its data has left (or its
 * connection is gone); responses still open FLUSH_LIMIT ms from now are destroyed, so that a peer
 * that reads nothing is dropped. server.close() destroys every connection whose response has
 * ended (`finished`, set by end() before anything is flushed), which would cut whatever still
 * sits in the socket's buffer: the farewell, and always the `retry:` line. One timer for them
 * all, however many streams a shutdown ends.
 */
export async function flushed (streams: readonly SseStream[]): Promise<void> {
  const open: ServerResponse[] = []
  for (const stream of streams) if (!over(stream.res)) open.push(stream.res)
  if (open.length === 0) return
  // destroy() does nothing to a response that has closed.
  const timer = setTimeout(() => { for (const res of open) res.destroy() }, FLUSH_LIMIT)
  await Promise.all(open.map(closed))
  clearTimeout(timer)
}

function closed (res: ServerResponse): Promise<void> {
  return new Promise((resolve) => res.once('close', () => resolve()))
}

/**
 * Whether the response has closed (its 'close' has fired or is due): a client that left, or a
 * response that is over. Http2ServerResponse has no `destroyed` on Node 20: ask its stream.
 */
export function responseClosed (res: ServerResponse): boolean {
  return res.destroyed || (res as unknown as { stream?: { destroyed: boolean } }).stream?.destroyed === true
}

/** The `ctx` a source function receives. */
class StreamContext implements SseContext {
  constructor (private readonly stream: SseStream) {}
  get signal (): AbortSignal {
    return this.stream.signal
  }

  get lastEventId (): string | undefined {
    return this.stream.lastEventId
  }
}

/** Whether `error` is what an API waiting on a signal rejects with once it aborts with `reason`. */
function isAbortOf (error: unknown, reason: unknown): boolean {
  // fetch() and signal.throwIfAborted() reject with the reason itself; the Node APIs given a
  // signal (timers/promises, events.once and on, streams) reject with an AbortError.
  return error === reason || (error as { name?: unknown } | null | undefined)?.name === 'AbortError'
}

// A frame longer than this (UTF-16 units) goes out in pieces: each drain between two pieces is
// progress that the write deadline can see. One large write drains only once it has all gone.
const PIECE = 65536

function isHighSurrogate (code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff
}

/**
 * One SSE response: the single ordered write path, its timers and listeners, and its end.
 * A source pump or a sink feeds it; whichever ends first, `close()` runs exactly once.
 */
export class SseStream {
  /** The client's last event id, read once (see last-event-id.ts). */
  readonly lastEventId: string | undefined
  private ctx: StreamContext | null = null
  // Made on first use of the signal: most streams never read it, and an AbortController with its
  // reason is the largest thing a stream would otherwise hold.
  private controller: AbortController | null = null
  private abortedFor: SseCloseReason | undefined
  /** The pump or sink that feeds this stream: resumed on drain, released on close. */
  producer: Producer | null = null
  backpressured = false
  events = 0
  private state = OPEN
  /** Bytes written (the head not included). */
  bytes = 0
  // The opening lines, held until the first frame written in the tick (a sink) or turn (a source,
  // a subscription) the stream opens, which carries them in the same chunk (one write less per
  // stream), or until the end of that tick or turn (see open()).
  private opening = ''
  // Whole ms of clock(), or -1 until the scheduler's first look at a stream that opened without
  // reading the clock (see open()).
  private lastWrite = 0
  private started = 0
  private waitingForDrain = false
  // Whether the drain listener is on (see pressed()).
  private drainWatched = false
  // The socket's close listener of a pipelined response queued behind another (see open()).
  private onSocketClose: (() => void) | null = null
  // What is left of a frame written in pieces (see PIECE), sent as the socket drains.
  private rest: string | Buffer = ''
  // Whether a drain came since the write deadline was armed or last looked.
  private progressed = false
  private deadlineTimer: NodeJS.Timeout | undefined
  private socket: Socket | null = null
  // The socket, when frames are written to it as HTTP/1.1 chunks of their own (see open()).
  private chunked: Socket | null = null
  // Made on first use, like the controller: a sink's `done` is often never read.
  private donePromise: Promise<void> | null = null
  private resolveDone: (() => void) | null = null
  readonly res: ServerResponse
  /** The request's logger: the stream holds neither the request nor the reply once open. */
  readonly log: FastifyBaseLogger
  /** The route's URL as declared, for the stats and the diagnostics channels. */
  route = ''
  /** The request's id, for the diagnostics channels. */
  reqId = ''
  /** The admission key, when keys are counted (maxStreamsPerKey). */
  key: string | undefined = undefined
  // When the stream ends on its own (performance.now() ms), and as what; none by default.
  private endAt = 0
  private endFor: 'max-age' | 'expired' | undefined = undefined
  /** Its slot among the plugin's open streams (see OpenStreams). */
  slot = 0

  constructor (
    private readonly plugin: PluginState,
    request: FastifyRequest,
    res: ServerResponse,
    readonly options: ResolvedOptions
  ) {
    this.res = res
    this.log = request.log
    const defaults = plugin.options
    // Read once per request, unless this call reads another query parameter.
    this.lastEventId = options.lastEventIdQuery === defaults.lastEventIdQuery
      ? cachedLastEventId(request, defaults.lastEventIdQuery, defaults.lastEventIdMaxLength)
      : readLastEventId(request, options.lastEventIdQuery, defaults.lastEventIdMaxLength)
  }

  /** The `ctx` given to a source function; made only for those. */
  get context (): SseContext {
    if (this.ctx === null) this.ctx = new StreamContext(this)
    return this.ctx
  }

  /** Aborts when the stream ends; its reason is a FST_ERR_SSE_CLOSED naming why. */
  get signal (): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController()
      if (this.abortedFor !== undefined) this.controller.abort(new FST_ERR_SSE_CLOSED(this.abortedFor))
    }
    return this.controller.signal
  }

  /** Aborts the signal once, for the first reason given. */
  private abort (reason: SseCloseReason): void {
    if (this.abortedFor !== undefined) return
    this.abortedFor = reason
    this.controller?.abort(new FST_ERR_SSE_CLOSED(reason))
  }

  get closed (): boolean {
    return this.state === CLOSED
  }

  /**
   * Ends a stream that never opened and sends nothing: its reply is answered elsewhere (by
   * Fastify, with the error that stopped open(); or with the 503 of a shutdown). Aborts the signal.
   */
  abandon (reason: SseCloseReason): void {
    this.state = CLOSED
    this.abort(reason)
  }

  /**
   * Hijacks the reply, sends the headers at once, and starts watching the connection. `wholeTurn`:
   * the head waits for frames written until the end of the turn (a source's first event comes
   * after a few microtasks), else until the end of the tick (a sink's first send() comes in it).
   */
  open (reply: FastifyReply, wholeTurn = true): void {
    const { res, options, plugin } = this
    // Admission control first: refused, the stream has taken nothing, and Fastify answers.
    this.key = plugin.admit(reply)
    const request = reply.request
    const version = request.raw.httpVersionMajor
    const http1 = version < 2
    // Before hijack(): should a header set by the app be invalid, Fastify still answers the error.
    // HTTP/1.0 has no chunked framing: its stream ends by closing, never kept alive.
    const keepAlive = version === 1 && request.raw.httpVersionMinor >= 1 && res.shouldKeepAlive
    res.writeHead(reply.statusCode, streamHeaders(reply, keepAlive, !http1))
    reply.hijack()
    const target = res as ServerResponse & Carrier
    target[kStream] = this
    res.on('close', onConnectionClose)
    res.on('error', onConnectionClose)
    // The response's and the socket's close are the disconnect signals. The request's is not:
    // Node emits it as soon as the body has been read, while the client is still connected.
    const socket = request.raw.socket as Socket | null
    // HTTP/2 streams share their session's socket; inject() has a socket without Nagle to disable.
    if (http1 && socket !== null && typeof socket.setNoDelay === 'function') {
      this.socket = socket
      socket.setNoDelay(true)
      // A response that holds its socket closes with it. A pipelined one, queued behind another,
      // does not: until it has the socket, the socket's close is its disconnect signal.
      // A closure of its own: several such responses may wait on one socket.
      if (res.socket !== socket) {
        this.onSocketClose = () => this.close('client-closed')
        socket.on('close', this.onSocketClose)
      }
    }
    this.route = routeUrl(request)
    this.reqId = request.id
    plugin.opened(this)
    // The clock is read when something will want the stream's start: a lifetime, the end line, the
    // close channel. Otherwise (no logger, no subscriber, as Fastify itself reads no clock for a
    // request without a logger), the scheduler's first look, within a tick, stands for it: the
    // first heartbeat comes a whole interval after that look, never before. (A stream without a
    // heartbeat reads it: the scheduler may not be running to look at it.)
    const { maxAge, expiresAt } = options
    const timed = options.heartbeat === 0 || maxAge > 0 || expiresAt !== undefined ||
      channels.streamClose.hasSubscribers || logsAt(this.log, options.logLevel)
    const started = this.started = this.lastWrite = timed ? clock() : -1
    // The head is handed over at once, as a chunk of its own: Node keeps the head it sent, and
    // sent together with a first frame it stays a tree of every header line's pieces (about 450
    // bytes held by each idle stream); sent alone it is made one flat string. The socket stays
    // corked so that the first frames leave with the head, in one packet: a source's until the end
    // of the turn (its first event comes a few microtasks later), a sink's until the end of the tick,
    // as the response's own write() does (its first send() comes in the handler; one made after an
    // await in the handler leaves in a packet of its own).
    this.socket?.cork()
    res.flushHeaders()
    if (this.socket !== null) {
      if (wholeTurn) uncorkLater(this)
      else process.nextTick(endFirstTick, this)
    }
    // A HEAD, 204 or 304 response has no body: Node drops every write and reports it accepted.
    const bodiless = request.raw.method === 'HEAD' || reply.statusCode === 204 || reply.statusCode === 304
    // Once the head is out and the response holds its socket, frames go to the socket as chunks
    // framed here: one socket write per frame (or per batch of the hub's shared frames, framed
    // once for every subscriber), where the response makes four, each frame buffered until the
    // next tick. Nothing else writes to the socket until end(), which adds the last chunk.
    // Not for HTTP/1.0 (no chunks), HTTP/2, inject(), or a pipelined response waiting its turn.
    if (this.socket !== null && res.chunkedEncoding && res.socket === this.socket && !bodiless) {
      this.chunked = this.socket
    }
    // The opening lines, each without a blank line: a retry field takes effect as soon as its line
    // is read, and a blank line would make fetch-event-source fire an empty message (as it does
    // for `: ping\n\n`). The heartbeat interval is advertised as a comment, which EventSource
    // ignores, so that a client can tell a stale connection (`fastify-sse-stream/client` does).
    // None for a bodiless response: the log line would count bytes that never went out.
    if (options.opening !== '' && !bodiless) {
      if (this.socket === null) {
        this.write(options.opening)
      } else {
        this.opening = options.opening
        // ASCII: as many bytes as characters. Written, as far as the counts and the heartbeat go.
        this.bytes += options.opening.length
      }
    }
    if (options.heartbeat > 0) plugin.scheduler.watch(options.heartbeat)
    if (maxAge > 0) {
      // 80 to 100 % of it: streams opened together (after a deploy, say) do not end together.
      this.endAt = started + Math.floor(maxAge * (0.8 + 0.2 * Math.random()))
      this.endFor = 'max-age'
    }
    if (expiresAt !== undefined) {
      const at = started + Math.floor(expiresAt - Date.now())
      if (this.endFor === undefined || at < this.endAt) {
        this.endAt = at
        this.endFor = 'expired'
      }
    }
    if (this.endFor !== undefined) plugin.scheduler.watch(this.endAt - started)
    if (channels.streamOpen.hasSubscribers) channels.streamOpen.publish({ request, route: this.route, lastEventId: this.lastEventId })
    // The client may have left while an async handler awaited: its close events have already fired
    // (a pipelined response still queued has no close of its own: its socket tells).
    if (responseClosed(res) || (this.onSocketClose !== null && this.socket!.destroyed)) this.close('client-closed')
    // A bodiless response would take every frame and never push back on the source.
    else if (bodiless) this.close('done')
    // A token that has expired already: the stream ends at once.
    else if (this.endFor !== undefined && this.endAt <= started) this.close(this.endFor)
  }

  /**
   * Writes whole frames, as text or as bytes (the hub's shared, pre-encoded frames). Returns false
   * when the socket is full: wait for `whenDrained()`.
   */
  write (frame: string | Buffer): boolean {
    // Every frame resets the heartbeat. A clock read is cheaper than re-arming the timer on each
    // write: the timer looks at this when it fires, and waits out the rest of the interval. (Not
    // for a first frame that takes the opening lines: it goes out in the tick or turn the stream
    // opened, which read the clock or left it to the scheduler's first look.)
    if (this.opening === '') this.lastWrite = clock()
    const size = typeof frame === 'string' ? Buffer.byteLength(frame) : frame.length
    this.bytes += size
    // While the rest of a large frame waits (see PIECE), the socket is full: every producer waits
    // for the drain that sends it, and a heartbeat skips a full socket. A frame written in the same
    // turn (a subscription's priming id after its long comment) goes behind that rest, not into it.
    if (this.rest.length !== 0) {
      this.rest = Buffer.concat([Buffer.from(this.rest), Buffer.from(frame)])
      return false
    }
    if (this.opening !== '') {
      const opening = this.opening
      this.opening = ''
      // ASCII: as many bytes as characters.
      if (typeof frame === 'string') return this.send(opening + frame, opening.length + size)
      this.out(opening, opening.length)
    }
    return this.send(frame, size)
  }

  /** Writes frames made of parts (the hub's, for one subscriber): copied once, into one chunk. */
  writeParts (parts: Buffer[], size: number, events: number): boolean {
    const socket = this.chunked
    if (socket === null || size > PIECE || parts.length === 1) return this.writeFrames(parts.length === 1 ? parts[0]! : Buffer.concat(parts, size), events)
    const head = chunkHead(size)
    const chunk = Buffer.allocUnsafe(head.length + size + CRLF.length)
    let at = chunk.write(head, 0, 'latin1')
    for (const part of parts) at += part.copy(chunk, at)
    CRLF.copy(chunk, at)
    return this.writeShared(chunk.subarray(head.length, head.length + size), chunk, events)
  }

  /**
   * The end of the tick (a sink) or turn (a source, a subscription) the stream opened in: its
   * opening lines go out, unless it has closed (close() wrote them, or the peer is gone), and its
   * socket uncorks.
   */
  endFirstTurn (): void {
    if (this.state !== CLOSED) this.flushOpening()
    this.socket!.uncork()
  }

  /** Writes the opening lines if no frame has taken them yet (see open()). */
  flushOpening (): void {
    if (this.opening === '') return
    this.out(this.opening)
    this.opening = ''
  }

  /** Hands `text` to the response, in pieces of at most PIECE units; false when the socket is full. */
  private send (text: string | Buffer, size: number): boolean {
    while (text.length > PIECE) {
      size = -1
      // Never between the two halves of a surrogate pair: each piece is encoded on its own.
      const cut = typeof text === 'string' && isHighSurrogate(text.charCodeAt(PIECE - 1)) ? PIECE - 1 : PIECE
      const ok = this.out(text.slice(0, cut))
      text = text.slice(cut)
      if (!ok) {
        this.rest = text
        this.pressed()
        return false
      }
    }
    if (this.out(text, size)) return true
    this.pressed()
    return false
  }

  /**
   * One write to the response, or to the socket as a chunk framed here (see open()). `size`: the
   * bytes of `data`, when known (-1 when not).
   */
  private out (data: string | Buffer, size = -1): boolean {
    const socket = this.chunked
    if (socket === null) return this.res.write(data)
    // A chunk of no bytes would end the body.
    if (data.length === 0) return !socket.writableNeedDrain
    // Frames written in one tick (a source's batch) leave together, as the response would send them.
    if (socket.writableCorked === 0) {
      socket.cork()
      process.nextTick(uncork, socket)
    }
    if (typeof data === 'string') return socket.write(chunkHead(size < 0 ? Buffer.byteLength(data) : size) + data + '\r\n')
    socket.write(chunkHead(data.length), 'latin1')
    socket.write(data)
    return socket.write(CRLF)
  }

  /** The socket is full: arm the write deadline, unless it runs already. */
  private pressed (): void {
    // Already full (a frame written right after the one that filled it: a subscription's priming id
    // after its long comment): one deadline, and one listener for a response still without socket.
    if (this.backpressured) return
    this.backpressured = true
    // The drain is listened for from the first time the socket fills: most streams never fill it.
    if (!this.drainWatched) this.watchDrain()
    if (this.options.writeTimeout === 0) return
    // A pipelined HTTP/1.1 response waits for the one before it to end: no drain can come until it
    // has the socket, so its deadline starts then (Node flushes what it buffered, then drains).
    if (this.res.socket === null) this.res.once('socket', onResponseSocket)
    else this.armDeadline()
  }

  /** Listens for the socket's drain (or the response's, when the response writes the frames). */
  private watchDrain (): void {
    this.drainWatched = true
    const socket = this.chunked as (Socket & ChunkCarrier) | null
    if (socket === null) {
      this.res.on('drain', onResponseDrain)
    } else {
      socket[kChunked] = this
      socket.on('drain', onSocketDrain)
    }
  }

  /** Starts the write deadline of a stream that waits for a drain. */
  armDeadline (): void {
    if (!this.backpressured || this.state === CLOSED || this.deadlineTimer !== undefined) return
    this.progressed = false
    this.deadlineTimer = setTimeout(stall, this.options.writeTimeout, this).unref()
  }

  /** Writes whole frames that carry `events` events (0 for a comment), counting them. */
  writeFrames (frames: string | Buffer, events: number): boolean {
    this.events += events
    return this.write(frames)
  }

  /**
   * Writes frames shared by many streams (the hub's), as they are or, on a stream that writes its
   * own chunks, as `chunk`: the same frames with their chunk framing, made once for all. Frames
   * longer than PIECE go out in pieces like any other.
   */
  writeShared (frames: Buffer, chunk: Buffer, events: number): boolean {
    const socket = this.chunked
    // (Never while a large frame's rest waits: the socket is full then, and a subscriber writes
    // only once it drains.) A hub pass that was due before the stream opened can run before the end
    // of its first turn: the opening lines go first, through write().
    if (socket === null || frames.length > PIECE || this.opening !== '') return this.writeFrames(frames, events)
    this.events += events
    this.lastWrite = clock()
    this.bytes += frames.length
    if (socket.write(chunk)) return true
    this.pressed()
    return false
  }

  /** Settles when the stream has ended, for whatever reason. Never rejects. */
  get done (): Promise<void> {
    if (this.donePromise === null) {
      if (this.state === CLOSED) {
        this.donePromise = Promise.resolve()
      } else {
        this.donePromise = new Promise(capture)
        this.resolveDone = captured
        captured = null
      }
    }
    return this.donePromise
  }

  /** Resumes the producer once the socket drains; nothing happens if the stream closes first. */
  whenDrained (): void {
    this.waitingForDrain = true
  }

  /** Ends the stream because the source failed: logs it and sends the opt-in error event. */
  fail (error: unknown): void {
    if (this.state === CLOSED) return
    // In the shutdown grace period, a source that rejects because its signal aborted (a sleep or
    // a query given the signal) has stopped as asked: its end, not a failure to log or tell.
    if (this.state === DRAINING && this.controller !== null && isAbortOf(error, this.controller.signal.reason)) {
      this.log.debug({ err: error }, 'fastify-sse-stream: the event source stopped on its signal')
      this.close('shutdown')
      return
    }
    this.log.error({ err: error }, 'fastify-sse-stream: the event source failed')
    const errorEvent = this.options.errorEvent
    if (errorEvent !== false) {
      try {
        this.write(encodeEvent(errorEvent(error), this.options.serializer))
      } catch (err) {
        this.log.error({ err }, 'fastify-sse-stream: the errorEvent option failed')
      }
    }
    this.close('error')
  }


  /** Whether anything has read the stream's signal: only then can it learn of an end to come. */
  get signalRead (): boolean {
    return this.controller !== null
  }

  /**
   * Server shutdown: aborts the signal, and ends the stream at once unless its producer may still
   * send a farewell (see PluginState.shutdown(), which ends the others when their grace period is
   * over). Returns whether the stream is still open, waiting out its grace period.
   */
  shutdown (): boolean {
    if (this.state !== OPEN) return false
    this.state = DRAINING
    // Its listeners run at once and may end the stream (a sink's farewell and end()).
    this.abort('shutdown')
    if (this.options.shutdownGrace === 0) this.close('shutdown')
    else this.producer?.[kShutdown]?.()
    return this.state === DRAINING
  }

  /** Ends the stream once, for `reason`: stops timers, drops listeners, releases the producer. */
  close (reason: SseCloseReason): void {
    if (this.state === CLOSED) return
    this.state = CLOSED
    const gone = reason === 'client-closed'
    // Once shutdown has begun, that is why the stream ends, whatever ends it first.
    if (this.abortedFor === 'shutdown') reason = 'shutdown'
    if (this.deadlineTimer !== undefined) clearTimeout(this.deadlineTimer)
    // The response's close and error listeners stay: the response ends with the stream, and on a
    // later close or error they find it closed and do nothing.
    if (this.drainWatched) this.unwatchDrain()
    // The socket outlives the stream on a keep-alive connection.
    if (this.onSocketClose !== null) this.socket!.off('close', this.onSocketClose)
    this.waitingForDrain = false
    this.plugin.closed(this, reason)
    this.abort(reason)
    const producer = this.producer
    this.producer = null
    producer?.[kRelease]()
    // The peer is gone or not reading: a graceful end would wait on it forever.
    if (reason === 'stalled' || reason === 'overflow' || reason === 'client-closed') this.cut()
    else this.finish(reason, gone)
    this.ended(reason)
    this.resolveDone?.()
  }

  /** The stream has ended (close()): its log line, and its message on the close channel. */
  private ended (reason: SseCloseReason): void {
    const level = this.options.logLevel
    const logs = logsAt(this.log, level)
    const publish = channels.streamClose.hasSubscribers
    if (!logs && !publish) return
    // A stream that opened without reading the clock, and ended before the scheduler looked at it,
    // lasted less than a tick: 0.
    const durationMs = this.started < 0 ? 0 : Math.round(performance.now() - this.started)
    if (logs) {
      this.log[level]({ sse: { reason, durationMs, events: this.events, bytes: this.bytes } }, 'fastify-sse-stream: stream ended')
    }
    if (publish) {
      channels.streamClose.publish({ reqId: this.reqId, route: this.route, reason, durationMs, events: this.events, bytes: this.bytes })
    }
  }

  /** Drops the drain listeners (close()). */
  private unwatchDrain (): void {
    const chunked = this.chunked as (Socket & ChunkCarrier) | null
    if (chunked === null) {
      this.res.off('drain', onResponseDrain)
    } else {
      chunked.off('drain', onSocketDrain)
      chunked[kChunked] = undefined
    }
    this.res.off('socket', onResponseSocket)
  }

  /** Ends a response whose peer is gone or not reading (close()). */
  private cut (): void {
    const res = this.res
    // What this tick wrote is still corked with the head (see open()): send it first. Node 20
    // and 22 cork the socket; Node 24 corks the response, which then holds the tick's chunks.
    while (res.writableCorked > 0) res.uncork()
    this.socket?.uncork()
    res.destroy()
  }

  /** Ends the response gracefully, with a `retry:` line after a shutdown or a lifetime (close()). */
  private finish (reason: SseCloseReason, gone: boolean): void {
    const { res, socket } = this
    this.flushOpening()
    // What is left of a large frame goes out before the end (and the retry line).
    if (this.rest.length !== 0) this.out(this.rest)
    this.rest = ''
    // Clients come back spread over a window, not all in the same second: after a shutdown, and
    // after a lifetime (they resume by id, on whichever node takes them). Only the line: a
    // blank line would make fetch-event-source fire an empty message, and the field takes
    // effect as soon as it is read.
    const range = reason === 'shutdown'
      ? this.options.shutdownRetry
      : reason === 'max-age' || reason === 'expired' ? this.options.expiryRetry : false
    if (range !== false && !gone) {
      const line = 'retry: ' + (range[0] + Math.floor(Math.random() * (range[1] - range[0] + 1))) + '\n'
      // Not through write(): the stream is closed, and a write
      // that fills the socket would arm a write deadline that no drain clears any more.
      this.out(line)
      this.bytes += line.length
    }
    // At shutdown the connection goes once the response has left: destroySoon() ends the socket
    // and closes it as soon as its data is written, as Node does after a `Connection: close`
    // response, so that closing the server waits on no client's FIN.
    if (reason === 'shutdown' && socket !== null) res.once('finish', () => socket.destroySoon())
    res.end()
  }

  /**
   * A stream refused at shutdown, which never opens: `answered` settles once its 503 is out, and
   * so does `done`, so that a handler returning it does not settle while Fastify still sends.
   */
  refused (answered: Promise<void>): void {
    this.abandon('shutdown')
    this.donePromise = answered
  }

  /** The socket drained: Node emits 'drain' only after a write() that returned false. */
  drained (): void {
    this.progressed = true
    // The socket just took what waited: a heartbeat is due an interval from now, not before the
    // producer resumes (which it does on the next turn).
    this.lastWrite = clock()
    if (this.rest.length !== 0) {
      const rest = this.rest
      this.rest = ''
      // Should the next piece fill the socket again, the deadline runs on and sees this progress.
      this.backpressured = false
      if (!this.send(rest, -1)) return
    }
    this.backpressured = false
    clearTimeout(this.deadlineTimer)
    this.deadlineTimer = undefined
    if (this.waitingForDrain) {
      this.waitingForDrain = false
      this.producer![kResume]()
    }
  }


  /** The write deadline fired: a stream whose socket drained meanwhile gets another period. */
  stall (): void {
    if (this.progressed) {
      this.progressed = false
      this.deadlineTimer!.refresh()
      return
    }
    const writeTimeout = this.options.writeTimeout
    this.log.warn({ writeTimeout }, `fastify-sse-stream: the client made no progress for ${writeTimeout} ms; closing the stream`)
    this.close('stalled')
  }

  /**
   * The scheduler's look at this stream: a heartbeat goes out after a whole interval with no
   * write, and never into a full socket.
   */
  tick (now: number): void {
    // Opened without a clock read (see open()): this look is where its intervals start, full socket
    // or not. (The two are -1 together from the open; a write may have set lastWrite since.)
    if (this.started < 0) {
      this.started = Math.floor(now)
      if (this.lastWrite < 0) this.lastWrite = this.started
    }
    if (this.backpressured || this.state === CLOSED) return
    // Its lifetime is over: it ends between two frames (a full socket waits for its drain, or
    // for the write deadline). Not once a shutdown has begun: that ends it.
    if (this.endFor !== undefined && now >= this.endAt && this.state === OPEN) return this.close(this.endFor)
    const interval = this.options.heartbeat
    if (interval > 0 && now - this.lastWrite >= interval) this.write(HEARTBEAT)
  }

}

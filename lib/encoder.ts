import {
  FST_ERR_SSE_INVALID_COMMENT,
  FST_ERR_SSE_INVALID_DATA,
  FST_ERR_SSE_INVALID_EVENT,
  FST_ERR_SSE_INVALID_EVENT_NAME,
  FST_ERR_SSE_INVALID_ID,
  FST_ERR_SSE_INVALID_RETRY,
  describe
} from './errors.js'

/** One server-sent event. Every field is optional; see docs/framing.md for what each one sends. */
export interface EventObject {
  id?: string | number
  event?: string
  data?: unknown
  retry?: number
  comment?: string
}

/** Turns non-string `data` into text. It is called once per event and must return a string. */
export type Serializer = (data: unknown) => string

export const MAX_RETRY = 2147483647

// The default serializer, held at load time. JSON.stringify's output never holds a raw CR or LF:
// JSON escapes them inside strings, and without a `space` argument it adds no line breaks of its
// own. So its text skips the scan for line breaks, unless it fails a probe at load time (a
// JSON.stringify replaced by a pretty-printer, say); any other serializer's text is always scanned.
const stringify: Serializer = JSON.stringify
const stringifyIsFlat = stringify(['\r\n', { a: [1] }]) === '["\\r\\n",{"a":[1]}]'

const LINE_BREAK = /\r\n|\r|\n/g
// An id comes back in the Last-Event-ID header. HTTP trims spaces and tabs at its edges, and
// Node answers 400 to a header value holding any other C0 control (CR, LF and NUL among them) or
// DEL, which would stop a browser's EventSource for good.
const ID_UNSAFE = /^[ \t]|[ \t]$|[\0-\x08\n-\x1f\x7f]/

function hasLineBreak (s: string): boolean {
  return s.indexOf('\n') !== -1 || s.indexOf('\r') !== -1
}

/**
 * Prefixes every line of `text` with `prefix` (`data: ` or `: `), ending each with LF: every CR,
 * LF or CRLF starts a new line, and a raw CR never reaches the wire. The one place lines are split.
 */
function lines (prefix: string, text: string): string {
  // Fast path: one line, one string built.
  if (!hasLineBreak(text)) return prefix + text + '\n'
  return prefix + text.replace(LINE_BREAK, '\n' + prefix) + '\n'
}

// The data line or lines of a non-string `data`, without the frame's closing blank line.
function serializedData (data: unknown, serialize: Serializer): string {
  const text: unknown = serialize(data)
  if (typeof text !== 'string') throw new FST_ERR_SSE_INVALID_DATA(describe(text))
  return serialize === stringify && stringifyIsFlat ? 'data: ' + text + '\n' : lines('data: ', text)
}

/** Encodes a comment-only frame, as used for heartbeats: it never dispatches an event. */
export function encodeComment (text: unknown): string {
  if (typeof text !== 'string') throw new FST_ERR_SSE_INVALID_COMMENT(describe(text))
  return lines(': ', text)
}

/** Whether a non-empty string could be sent as an `id` and come back as a `Last-Event-ID`. */
export function isSafeId (id: string): boolean {
  return !ID_UNSAFE.test(id) && id.isWellFormed()
}

function checkId (id: unknown): string {
  if (typeof id === 'number') {
    if (Number.isFinite(id)) return String(id)
  } else if (typeof id === 'string') {
    if (id === '' || isSafeId(id)) return id
  }
  throw new FST_ERR_SSE_INVALID_ID(describe(id))
}

function checkEventName (name: unknown): string {
  if (typeof name !== 'string' || hasLineBreak(name) || !name.isWellFormed()) {
    throw new FST_ERR_SSE_INVALID_EVENT_NAME(describe(name))
  }
  return name
}

function checkRetry (retry: unknown): number {
  if (!Number.isInteger(retry) || (retry as number) < 0 || (retry as number) > MAX_RETRY) {
    throw new FST_ERR_SSE_INVALID_RETRY(describe(retry))
  }
  return retry as number
}

/**
 * Encodes one event as one SSE frame.
 *
 * Field order is fixed: comment lines, `event`, `retry`, `id`, then `data`. Every frame that
 * carries a field ends with one blank line; a comment-only frame does not, so that it never
 * dispatches an event (fetch-event-source fires an empty message for a bare blank line).
 * An event with no field at all encodes to the empty string.
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */
export function encodeEvent (ev: EventObject | PreparedEvent, serialize: Serializer = stringify): string {
  if (typeof ev !== 'object' || ev === null) throw new FST_ERR_SSE_INVALID_EVENT(describe(ev))
  // Fast path for the common frame, data and nothing else: one string built when it is one line.
  // Plain property reads, no destructuring: this runs once per event on every connection.
  const e = ev as EventObject
  const data = e.data
  if (data !== undefined && e.event === undefined && e.id === undefined && e.retry === undefined && e.comment === undefined) {
    if (typeof data !== 'string') return serializedData(data, serialize) + '\n'
    // The hottest line of the plugin: one string built for the common one-line event.
    return hasLineBreak(data) ? lines('data: ', data) + '\n' : 'data: ' + data + '\n\n'
  }
  const prepared = PreparedEvent.frameOf(ev)
  if (prepared !== undefined) return prepared
  // An array is most likely a batch yielded by mistake: it would encode to nothing.
  if (Array.isArray(ev)) throw new FST_ERR_SSE_INVALID_EVENT(describe(ev))
  const { event, id, retry, comment } = e

  let frame = comment === undefined ? '' : encodeComment(comment)
  let fields = false
  if (event !== undefined && checkEventName(event) !== '') {
    frame += 'event: ' + event + '\n'
    fields = true
  }
  if (retry !== undefined) {
    frame += 'retry: ' + checkRetry(retry) + '\n'
    fields = true
  }
  if (id !== undefined) {
    frame += 'id: ' + checkId(id) + '\n'
    fields = true
  }
  if (data !== undefined) {
    frame += typeof data === 'string' ? lines('data: ', data) : serializedData(data, serialize)
    fields = true
  } else if (event !== undefined && event !== '') {
    // A client dispatches nothing for an empty data buffer: a named event needs a data line.
    frame += 'data: \n'
  } else if (!fields && comment === undefined && typeof (ev as { frame?: unknown }).frame === 'string') {
    // A PreparedEvent of another copy of the package, or a copy of one (structuredClone(),
    // postMessage()): its frame cannot be trusted, and it must not vanish in silence.
    throw new FST_ERR_SSE_INVALID_EVENT('a PreparedEvent made by another copy of fastify-sse-stream, or a clone of one; make it with this copy\'s prepareEvent()')
  }
  return fields ? frame + '\n' : frame
}

const kPrepare = Symbol('fastify-sse-stream.prepare')
declare const kEventType: unique symbol
// The PreparedEvents this copy of the package made: no copy, clone or forgery is in it.
const genuine = new WeakSet<object>()

/**
 * An event encoded once, to be sent to many streams: `sink.send(prepared)` or `yield prepared`
 * writes its frame as it is. Made only by `prepareEvent()`, so its frame is always valid: only
 * the instances this copy of the package made are written, and they are frozen.
 */
export class PreparedEvent<E extends EventObject = EventObject> {
  readonly frame: string
  /** The event type it was made from, for the types only: a route's event map applies to it. */
  declare readonly [kEventType]?: E

  constructor (token: symbol, frame: string) {
    if (token !== kPrepare) throw new TypeError('Use prepareEvent() to make a PreparedEvent')
    this.frame = frame
    Object.freeze(this)
    genuine.add(this)
  }

  /** The frame of a PreparedEvent made by this copy of the package, else undefined. */
  static frameOf (value: object): string | undefined {
    return genuine.has(value) ? (value as PreparedEvent).frame : undefined
  }
}

/**
 * Validates and encodes `ev` once, for a broadcast: every stream it is sent to writes the same
 * frame, with no work per client. It is encoded with `serialize`, not the stream's serializer.
 */
export function prepareEvent<const E extends EventObject> (ev: E, serialize: Serializer = stringify): PreparedEvent<E> {
  return new PreparedEvent<E>(kPrepare, encodeEvent(ev, serialize))
}

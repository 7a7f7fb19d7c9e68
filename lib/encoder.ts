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

function encodeData (text: string): string {
  // Fast path: one line, one string built.
  if (!hasLineBreak(text)) return 'data: ' + text + '\n'
  // Every CR, LF or CRLF starts a new data line; a raw CR must never reach the wire.
  return 'data: ' + text.replace(LINE_BREAK, '\ndata: ') + '\n'
}

function encodeComment (text: unknown): string {
  if (typeof text !== 'string') throw new FST_ERR_SSE_INVALID_COMMENT(describe(text))
  if (!hasLineBreak(text)) return ': ' + text + '\n'
  return ': ' + text.replace(LINE_BREAK, '\n: ') + '\n'
}

// The data line or lines of a non-string `data`, without the frame's closing blank line.
function serializedData (data: unknown, serialize: Serializer): string {
  const text: unknown = serialize(data)
  if (typeof text !== 'string') throw new FST_ERR_SSE_INVALID_DATA(describe(text))
  return serialize === stringify && stringifyIsFlat ? 'data: ' + text + '\n' : encodeData(text)
}

function checkId (id: unknown): string {
  if (typeof id === 'number') {
    if (Number.isFinite(id)) return String(id)
  } else if (typeof id === 'string') {
    if (id === '') return id
    if (!ID_UNSAFE.test(id) && id.isWellFormed()) return id
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
    if (!hasLineBreak(data)) return 'data: ' + data + '\n\n'
    return 'data: ' + data.replace(LINE_BREAK, '\ndata: ') + '\n\n'
  }
  if (ev instanceof PreparedEvent) return ev.frame
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
    frame += typeof data === 'string' ? encodeData(data) : serializedData(data, serialize)
    fields = true
  } else if (event !== undefined && event !== '') {
    // A client dispatches nothing for an empty data buffer: a named event needs a data line.
    frame += 'data: \n'
  }
  return fields ? frame + '\n' : frame
}

const kPrepare = Symbol('fastify-sse-stream.prepare')

/**
 * An event encoded once, to be sent to many streams: `sink.send(prepared)` or `yield prepared`
 * writes its frame as it is. Made only by `prepareEvent()`, so its frame is always valid.
 */
export class PreparedEvent {
  readonly frame: string
  constructor (token: symbol, frame: string) {
    if (token !== kPrepare) throw new TypeError('Use prepareEvent() to make a PreparedEvent')
    this.frame = frame
    Object.freeze(this)
  }
}

/**
 * Validates and encodes `ev` once, for a broadcast: every stream it is sent to writes the same
 * frame, with no work per client. It is encoded with `serialize`, not the stream's serializer.
 */
export function prepareEvent (ev: EventObject, serialize: Serializer = stringify): PreparedEvent {
  return new PreparedEvent(kPrepare, encodeEvent(ev, serialize))
}

/** Encodes a comment-only frame, as used for heartbeats: it never dispatches an event. */
export function encodeCommentFrame (text: string): string {
  return encodeComment(text)
}

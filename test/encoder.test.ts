// The frame encoder, byte for byte: conformance cases 1–35 of protocol.md that concern the
// encoder, then each validation rule with its typed error.
import t from 'tap'
import { type EventObject, type Serializer, MAX_RETRY, encodeComment, encodeEvent } from '../lib/encoder.js'
import * as errors from '../lib/errors.js'
import { encodeEvent as publicEncodeEvent } from '../index.js'

const hex = (s: string): string => Buffer.from(s, 'utf8').toString('hex')

interface Case {
  name: string
  events: EventObject[]
  wire: string
  bytes?: string // the same wire, as UTF-8 hex, where the bytes themselves are the point
  serializer?: Serializer
}

// Every frame produced by this file goes through these checks as well (cases 30, 34, 35).
const produced: string[] = []
function encode (ev: EventObject, serializer?: Serializer): string {
  const out = serializer === undefined ? encodeEvent(ev) : encodeEvent(ev, serializer)
  produced.push(out)
  return out
}

const cases: Case[] = [
  // Data
  { name: '1: one line of data', events: [{ data: 'hello' }], wire: 'data: hello\n\n' },
  { name: '2: empty data still sends a data line', events: [{ data: '' }], wire: 'data: \n\n' },
  { name: '3: LF splits data lines', events: [{ data: 'a\nb' }], wire: 'data: a\ndata: b\n\n' },
  { name: '4: CRLF splits data lines', events: [{ data: 'a\r\nb' }], wire: 'data: a\ndata: b\n\n' },
  { name: '4: a lone CR splits data lines and never reaches the wire', events: [{ data: 'a\rb' }], wire: 'data: a\ndata: b\n\n' },
  { name: '4: CR LF CRLF LFCR mixed', events: [{ data: 'a\r\r\nb\n\rc' }], wire: 'data: a\ndata: \ndata: b\ndata: \ndata: c\n\n' },
  { name: '5: trailing LF gives a trailing empty line', events: [{ data: 'x\n' }], wire: 'data: x\ndata: \n\n' },
  { name: '6: leading LF gives a leading empty line', events: [{ data: '\nx' }], wire: 'data: \ndata: x\n\n' },
  { name: '7: a lone LF gives two empty lines', events: [{ data: '\n' }], wire: 'data: \ndata: \n\n' },
  { name: '8: a leading space survives (two spaces on the wire)', events: [{ data: ' lead' }], wire: 'data:  lead\n\n' },
  { name: '8: a leading tab survives', events: [{ data: '\tx' }], wire: 'data: \tx\n\n' },
  { name: '9: colons need no escaping', events: [{ data: 'a:b: c' }], wire: 'data: a:b: c\n\n' },
  {
    name: '10: U+2028 and U+0085 do not break lines',
    events: [{ data: 'x\u2028y\u0085z' }],
    wire: 'data: x\u2028y\u0085z\n\n',
    bytes: hex('data: x') + 'e280a8' + hex('y') + 'c285' + hex('z\n\n')
  },
  {
    name: '11: UTF-8 text on one line',
    events: [{ data: 'é…🦄' }],
    wire: 'data: é…🦄\n\n',
    bytes: hex('data: ') + 'c3a9' + 'e280a6' + 'f09fa684' + '0a0a'
  },
  {
    name: '12: a lone surrogate passes through and is written as U+FFFD (EF BF BD)',
    events: [{ data: '\uD800' }],
    wire: 'data: \uD800\n\n',
    bytes: hex('data: ') + 'efbfbd' + '0a0a'
  },
  { name: '13: NUL is legal in data', events: [{ data: '\0' }], wire: 'data: \0\n\n', bytes: hex('data: ') + '00' + '0a0a' },
  { name: '14: an object is serialised with JSON.stringify', events: [{ data: { a: 1, b: 'x y' } }], wire: 'data: {"a":1,"b":"x y"}\n\n' },
  { name: '14: an array is serialised', events: [{ data: [1, '2'] }], wire: 'data: [1,"2"]\n\n' },
  { name: '14: null is data, serialised as null', events: [{ data: null }], wire: 'data: null\n\n' },
  { name: '14: numbers and booleans are serialised', events: [{ data: 0 }, { data: false }], wire: 'data: 0\n\ndata: false\n\n' },
  { name: '14: escaped newlines in JSON stay on one line', events: [{ data: { s: 'a\nb\rc' } }], wire: 'data: {"s":"a\\nb\\rc"}\n\n' },
  {
    name: '14: a serializer result with LF and CR becomes several data lines',
    events: [{ data: { a: 1 } }],
    serializer: (d) => JSON.stringify(d, null, 1).replace('\n', '\r\n'),
    wire: 'data: {\ndata:  "a": 1\ndata: }\n\n'
  },
  {
    name: '14: a custom serializer with other fields',
    events: [{ id: 3, data: 7 }],
    serializer: (d) => `<${String(d)}>`,
    wire: 'id: 3\ndata: <7>\n\n'
  },
  // Event, id, retry, comments
  { name: '15: a named event', events: [{ event: 'add', data: 'x' }], wire: 'event: add\ndata: x\n\n' },
  { name: '16: an empty event name sends no event line', events: [{ event: '', data: 'x' }], wire: 'data: x\n\n' },
  { name: '16: an undefined event name sends no event line', events: [{ event: undefined, data: 'x' }], wire: 'data: x\n\n' },
  {
    name: '17: the event name is repeated on every event, never carried over',
    events: [{ event: 'a', data: '1' }, { data: '2' }, { event: 'a', data: '3' }],
    wire: 'event: a\ndata: 1\n\ndata: 2\n\nevent: a\ndata: 3\n\n'
  },
  { name: '19: colons in an event name', events: [{ event: 'a:b', data: 'x' }], wire: 'event: a:b\ndata: x\n\n' },
  { name: '19: an event name keeps a leading space', events: [{ event: ' x', data: '1' }], wire: 'event:  x\ndata: 1\n\n' },
  { name: '20: an id, then an event without id', events: [{ id: '42', data: 'x' }, { data: 'y' }], wire: 'id: 42\ndata: x\n\ndata: y\n\n' },
  { name: '21: an empty id is kept (it resets the last id)', events: [{ id: '', data: 'x' }], wire: 'id: \ndata: x\n\n' },
  {
    name: '24: a UTF-8 id',
    events: [{ id: 'é…', data: 'x' }],
    wire: 'id: é…\ndata: x\n\n',
    bytes: hex('id: ') + 'c3a9e280a6' + hex('\ndata: x\n\n')
  },
  { name: '24: a tab inside an id is kept', events: [{ id: 'a\tb' }], wire: 'id: a\tb\n\n' },
  { name: '25: an id alone sends no data line', events: [{ id: '7' }], wire: 'id: 7\n\n' },
  { name: '25: an empty id alone', events: [{ id: '' }], wire: 'id: \n\n' },
  { name: '26: retry alone', events: [{ retry: 5000 }], wire: 'retry: 5000\n\n' },
  { name: '27: 1e3 is the integer 1000', events: [{ retry: 1e3 }], wire: 'retry: 1000\n\n' },
  { name: '28: the largest retry, 2^31 - 1', events: [{ retry: MAX_RETRY }], wire: 'retry: 2147483647\n\n' },
  { name: '29: retry 0 is kept', events: [{ retry: 0 }], wire: 'retry: 0\n\n' },
  { name: '29: retry -0 is sent as 0', events: [{ retry: -0 }], wire: 'retry: 0\n\n' },
  { name: '31: a comment alone ends without a blank line', events: [{ comment: 'ping' }], wire: ': ping\n' },
  { name: '31: an empty comment', events: [{ comment: '' }], wire: ': \n' },
  { name: '32: LF in a comment gives several comment lines', events: [{ comment: 'a\nb' }], wire: ': a\n: b\n' },
  { name: '32: CRLF in a comment', events: [{ comment: 'a\r\nb' }], wire: ': a\n: b\n' },
  { name: '32: CR in a comment', events: [{ comment: 'a\rb' }], wire: ': a\n: b\n' },
  { name: '32: a comment cannot forge a field', events: [{ comment: 'x\ndata: forged\n\nevent: y' }], wire: ': x\n: data: forged\n: \n: event: y\n' },
  {
    name: '34: a BOM in data, event or comment never starts a line',
    events: [{ data: '\uFEFFx' }, { event: '\uFEFF', comment: '\uFEFF' }],
    wire: 'data: \uFEFFx\n\n: \uFEFF\nevent: \uFEFF\ndata: \n\n'
  },
  // Shapes from issue 2
  { name: 'field order: comment, event, retry, id, data', events: [{ data: 'd', id: 2, retry: 1, event: 'e', comment: 'c' }], wire: ': c\nevent: e\nretry: 1\nid: 2\ndata: d\n\n' },
  { name: 'a named event without data gets an empty data line', events: [{ event: 'end' }], wire: 'event: end\ndata: \n\n' },
  { name: 'a named event with a null data type and data undefined', events: [{ event: 'end', data: undefined }], wire: 'event: end\ndata: \n\n' },
  { name: 'an empty event name alone encodes to nothing', events: [{ event: '' }], wire: '' },
  { name: 'an empty object encodes to nothing', events: [{}], wire: '' },
  { name: 'all fields undefined encode to nothing', events: [{ id: undefined, event: undefined, data: undefined, retry: undefined, comment: undefined }], wire: '' },
  { name: 'id 0 is kept', events: [{ id: 0 }], wire: 'id: 0\n\n' },
  { name: 'number ids', events: [{ id: 42, data: 'x' }, { id: -1 }, { id: 1.5 }, { id: -0 }], wire: 'id: 42\ndata: x\n\nid: -1\n\nid: 1.5\n\nid: 0\n\n' },
  { name: 'id and retry without data', events: [{ id: 'a', retry: 10 }], wire: 'retry: 10\nid: a\n\n' },
  { name: 'a comment with fields ends with one blank line', events: [{ comment: 'hi', data: 'x' }], wire: ': hi\ndata: x\n\n' },
  { name: 'a comment with an id-only frame', events: [{ comment: 'a\nb', id: '1' }], wire: ': a\n: b\nid: 1\n\n' },
  { name: 'multi-line data after other fields', events: [{ event: 'e', data: 'a\r\nb\rc' }], wire: 'event: e\ndata: a\ndata: b\ndata: c\n\n' },
  { name: 'a non-ASCII event name', events: [{ event: 'ñ🦄', data: '1' }], wire: 'event: ñ🦄\ndata: 1\n\n' },
  { name: 'NUL is allowed in an event name', events: [{ event: 'a\0b', data: '1' }], wire: 'event: a\0b\ndata: 1\n\n' }
]

for (const c of cases) {
  t.test(c.name, async (t) => {
    const out = c.events.map((ev) => encode(ev, c.serializer)).join('')
    t.equal(out, c.wire, 'exact wire text')
    if (c.bytes !== undefined) t.equal(Buffer.from(out, 'utf8').toString('hex'), c.bytes, 'exact UTF-8 bytes')
  })
}

t.test('18: CR or LF in an event name or id throws instead of forging a field', async (t) => {
  for (const event of ['a\nb', 'a\rb', 'a\r\nb', '\n', 'x\n\ndata: forged']) {
    t.throws(() => encode({ event, data: 'x' }), { code: 'FST_ERR_SSE_INVALID_EVENT_NAME' }, JSON.stringify(event))
  }
  for (const id of ['1\nevent: x', '1\revent: x', '1\r\n', '\n']) {
    t.throws(() => encode({ id, data: 'x' }), { code: 'FST_ERR_SSE_INVALID_ID' }, JSON.stringify(id))
  }
})

t.test('22: an id with NUL throws', async (t) => {
  t.throws(() => encode({ id: 'a\0b' }), { code: 'FST_ERR_SSE_INVALID_ID' })
  t.throws(() => encode({ id: '\0' }), { code: 'FST_ERR_SSE_INVALID_ID' })
})

t.test('23: an id with leading or trailing space or tab throws', async (t) => {
  for (const id of [' x ', ' x', 'x ', '\tx', 'x\t', ' ', '\t']) {
    t.throws(() => encode({ id, data: 'x' }), { code: 'FST_ERR_SSE_INVALID_ID' }, JSON.stringify(id))
  }
})

t.test('an id with another control character or DEL throws (Node answers 400 to such a Last-Event-ID)', async (t) => {
  for (const id of ['a\x01b', 'a\x08', 'a\x0bb', 'a\x0cb', 'a\x1bb', 'a\x1f', 'a\x7fb']) {
    t.throws(() => encode({ id }), { code: 'FST_ERR_SSE_INVALID_ID' }, JSON.stringify(id))
  }
  t.equal(encode({ id: 'a\x80b' }), 'id: a\x80b\n\n', 'C1 controls are plain UTF-8 bytes in a header')
})

t.test('an id or event name with a lone surrogate throws (it cannot round-trip as UTF-8)', async (t) => {
  for (const bad of ['\uD800', 'a\uDC00', '\uDBFFx']) {
    t.throws(() => encode({ id: bad }), { code: 'FST_ERR_SSE_INVALID_ID' })
    t.throws(() => encode({ event: bad, data: 'x' }), { code: 'FST_ERR_SSE_INVALID_EVENT_NAME' })
  }
  t.equal(encode({ id: '🦄', event: '🦄' }), 'event: 🦄\nid: 🦄\ndata: \n\n', 'a surrogate pair is fine')
})

t.test('an id that is not a finite number or a string throws', async (t) => {
  for (const id of [NaN, Infinity, -Infinity, true, null, {}, [], 1n, Symbol('x')]) {
    t.throws(() => encode({ id } as unknown as EventObject), { code: 'FST_ERR_SSE_INVALID_ID' }, String(typeof id))
  }
})

t.test('an event name that is not a string throws', async (t) => {
  for (const event of [1, null, {}, true]) {
    t.throws(() => encode({ event, data: 'x' } as unknown as EventObject), { code: 'FST_ERR_SSE_INVALID_EVENT_NAME' })
  }
})

t.test('27, 28: retry must be an integer from 0 to 2147483647', async (t) => {
  for (const retry of [1.5, -1, -0.5, NaN, Infinity, -Infinity, MAX_RETRY + 1, 2 ** 53, '500', '', null, true, 1n]) {
    t.throws(() => encode({ retry } as unknown as EventObject), { code: 'FST_ERR_SSE_INVALID_RETRY' }, String(retry))
  }
})

t.test('a comment that is not a string throws', async (t) => {
  for (const comment of [1, null, {}, ['a']]) {
    t.throws(() => encode({ comment } as unknown as EventObject), { code: 'FST_ERR_SSE_INVALID_COMMENT' })
    t.throws(() => encodeComment(comment as unknown as string), { code: 'FST_ERR_SSE_INVALID_COMMENT' })
  }
})

t.test('an event that is not a plain object throws, arrays included', async (t) => {
  for (const ev of [null, undefined, 'data: x', 1, true, [], [{ data: 'x' }]]) {
    t.throws(() => encode(ev as unknown as EventObject), { code: 'FST_ERR_SSE_INVALID_EVENT' }, String(ev))
  }
})

t.test('a serializer returning a non-string throws FST_ERR_SSE_INVALID_DATA', async (t) => {
  const bad: unknown[] = [undefined, 1, null, { a: 1 }, Buffer.from('x')]
  for (const result of bad) {
    const serializer = (() => result) as unknown as Serializer
    t.throws(() => encode({ data: { x: 1 } }, serializer), { code: 'FST_ERR_SSE_INVALID_DATA' }, `alone: ${String(result)}`)
    t.throws(() => encode({ id: 1, data: { x: 1 } }, serializer), { code: 'FST_ERR_SSE_INVALID_DATA' }, `with an id: ${String(result)}`)
  }
  // JSON.stringify returns undefined for these.
  for (const data of [() => 1, Symbol('s')]) {
    t.throws(() => encode({ data }), { code: 'FST_ERR_SSE_INVALID_DATA' }, typeof data)
  }
})

t.test('a serializer that throws: its own error propagates unchanged', async (t) => {
  const own = new Error('cannot serialize')
  t.throws(() => encode({ data: 1 }, () => { throw own }), own)
  const circular: Record<string, unknown> = {}
  circular.self = circular
  t.throws(() => encode({ data: circular }), TypeError)
})

t.test('14: the serializer is called once per event, and never for string or undefined data', async (t) => {
  const calls: unknown[] = []
  const serializer: Serializer = (d) => {
    calls.push(d)
    return 'S'
  }
  const obj = { a: 1 }
  t.equal(encode({ data: obj }, serializer), 'data: S\n\n')
  t.equal(encode({ id: 1, data: obj }, serializer), 'id: 1\ndata: S\n\n')
  t.equal(encode({ data: 'str' }, serializer), 'data: str\n\n')
  t.equal(encode({ event: 'e' }, serializer), 'event: e\ndata: \n\n')
  t.same(calls, [obj, obj])
  t.equal(calls[0], obj, 'the serializer receives the data itself')
})

t.test('invalid events are rejected before anything is built, whatever the field order', async (t) => {
  // Data is valid but the id is not: nothing is returned, and the serializer is not even reached
  // for a later field's sake.
  let called = 0
  t.throws(() => encode({ data: { a: 1 }, id: 'a\nb' }, (d) => { called++; return JSON.stringify(d) }), { code: 'FST_ERR_SSE_INVALID_ID' })
  t.equal(called, 0)
})

t.test('typed errors: class, code, statusCode, name and message', async (t) => {
  const table: Array<[EventObject, errors.SseErrorConstructor<[string]>, ErrorConstructor, string]> = [
    [null as unknown as EventObject, errors.FST_ERR_SSE_INVALID_EVENT, TypeError, 'An SSE event must be an object, instead got null'],
    [{ event: 'a\nb' }, errors.FST_ERR_SSE_INVALID_EVENT_NAME, TypeError, 'instead got "a\\nb"'],
    [{ id: ' x' }, errors.FST_ERR_SSE_INVALID_ID, TypeError, 'instead got " x"'],
    [{ retry: 1.5 }, errors.FST_ERR_SSE_INVALID_RETRY, RangeError, 'retry must be an integer from 0 to 2147483647 (ms), instead got number 1.5'],
    [{ comment: 1 as unknown as string }, errors.FST_ERR_SSE_INVALID_COMMENT, TypeError, 'A comment must be a string, instead got number 1'],
    [{ data: () => 1 }, errors.FST_ERR_SSE_INVALID_DATA, TypeError, 'The serializer must return a string for event data, instead got']
  ]
  for (const [ev, Ctor, Base, message] of table) {
    let caught: unknown
    try {
      encode(ev)
    } catch (error) {
      caught = error
    }
    t.ok(caught instanceof Ctor, `${Ctor.code}: instanceof its constructor`)
    t.ok(caught instanceof Base, `${Ctor.code}: instanceof ${Base.name}`)
    t.ok(caught instanceof Error, `${Ctor.code}: instanceof Error`)
    const err = caught as errors.SseError
    t.equal(err.code, Ctor.code)
    t.equal(err.statusCode, 500)
    t.equal(err.name, 'FastifyError')
    t.ok(err.message.includes(message), `${Ctor.code}: ${err.message}`)
  }
})

t.test('encodeComment: heartbeats never dispatch an event', async (t) => {
  t.equal(encodeComment('ping'), ': ping\n')
  t.equal(encodeComment(''), ': \n')
  t.equal(encodeComment('a\r\nb\rc\nd'), ': a\n: b\n: c\n: d\n')
  t.equal(encodeComment('x\n\ndata: y'), ': x\n: \n: data: y\n')
  produced.push(encodeComment('\uFEFFbom'))
})

t.test('the package exports the same encoder', async (t) => {
  t.equal(publicEncodeEvent, encodeEvent)
})

t.test('14: JSON.stringify output is one data line; a JSON.stringify replaced before load is scanned', async (t) => {
  // Strings inside JSON keep their line breaks escaped, so the default serializer needs no split.
  t.equal(encode({ data: { text: 'a\r\nb\u2028' } }), 'data: {"text":"a\\r\\nb\u2028"}\n\n')
  t.equal(encode({ id: 1, data: ['\n'] }), 'id: 1\ndata: ["\\n"]\n\n')
  // A JSON.stringify replaced by a pretty-printer before the encoder loads: its raw line breaks
  // become data lines, never fields.
  const original = JSON.stringify
  JSON.stringify = ((value: unknown) => original(value, null, 1)) as typeof JSON.stringify
  let fresh: typeof import('../lib/encoder.js')
  try {
    // A query string loads a second, fresh copy of the module.
    const specifier = '../lib/encoder.js?pretty-json'
    fresh = await import(specifier) as typeof import('../lib/encoder.js')
  } finally {
    JSON.stringify = original
  }
  t.equal(fresh.encodeEvent({ data: { a: 1 } }), 'data: {\ndata:  "a": 1\ndata: }\n\n')
  t.equal(fresh.encodeEvent({ id: 2, data: [1] }), 'id: 2\ndata: [\ndata:  1\ndata: ]\n\n')
})

t.test('30, 34, 35: every frame built here is UTF-8 with LF only, no BOM, no bare retry', async (t) => {
  t.ok(produced.length > 60, `checked ${produced.length} frames`)
  const problems: string[] = []
  for (const frame of produced) {
    const bytes = Buffer.from(frame, 'utf8')
    if (bytes.subarray(0, 3).toString('hex') === 'efbbbf') problems.push(`UTF-8 BOM at offset 0: ${JSON.stringify(frame)}`)
    if (frame.includes('\r')) problems.push(`CR: ${JSON.stringify(frame)}`)
    if (frame !== '' && !frame.endsWith('\n')) problems.push(`no final LF: ${JSON.stringify(frame)}`)
    if (frame.endsWith('\n\n\n')) problems.push(`two blank lines: ${JSON.stringify(frame)}`)
    for (const line of frame.slice(0, -1).split('\n')) {
      if (line.startsWith('\uFEFF')) problems.push(`line starts with U+FEFF: ${JSON.stringify(line)}`)
      if (line.startsWith('retry') && !/^retry: \d+$/.test(line)) problems.push(`bad retry line: ${JSON.stringify(line)}`)
      if (!/^(?:data: |event: |id: |retry: |: |$)/.test(line)) problems.push(`unknown line: ${JSON.stringify(line)}`)
    }
  }
  t.same(problems, [])
})

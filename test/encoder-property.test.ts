// Property test of the encoder against real parsers (conformance case 52, encoder half).
//
// Random streams of valid and invalid events, with random unicode, CR, LF, NUL, spaces and colons
// in every field, are encoded; the UTF-8 bytes are split in random chunkings (1 byte, random
// sizes, whole), decoded with a streaming TextDecoder (so code points split across chunks) and fed
// to eventsource-parser. The whole stream also goes through the WHATWG interpretation steps
// (below), which, unlike eventsource-parser, keep the last event ID across events and see id-only
// frames. Every valid event must come back exactly; every invalid one must throw a typed error
// and add nothing; and no field, comment or event may appear that the input did not hold.
import assert from 'node:assert/strict'
import t, { type Test } from 'tap'
import fc from 'fast-check'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { type EventObject, type Serializer, MAX_RETRY, encodeEvent } from '../lib/encoder.js'
import * as errors from '../lib/errors.js'

const LINE_BREAK = /\r\n|\r|\n/g
const NUM_RUNS = 300

// Characters that matter to the format, plus any unicode. Units may be two code units long.
const special = fc.constantFrom('\r', '\n', '\r\n', '\0', ' ', ':', '\t', ': ', '\uFEFF', '\u2028', '\u0085', 'data: ', 'id', 'é', '…', '🦄', '\x7f', '\x01')
const unicode = fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })
const ascii = fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 1 })
const unit = fc.oneof({ arbitrary: special, weight: 3 }, { arbitrary: ascii, weight: 4 }, { arbitrary: unicode, weight: 2 })
const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c))

const text = fc.string({ unit, maxLength: 24 }) // well-formed
const textWithLoneSurrogates = fc.string({ unit: fc.oneof(unit, loneSurrogate), maxLength: 24 })
const withoutLineBreaks = (s: string): string => s.replace(/[\r\n]/g, '')
// Unsafe in an id: edge spaces or tabs, C0 controls other than an inner tab, DEL.
const idIsSafe = (s: string): boolean => !/^[ \t]|[ \t]$|[\0-\x08\n-\x1f\x7f]/.test(s)

const validEventName = text.map(withoutLineBreaks)
const validId = fc.oneof(
  text.filter(idIsSafe),
  fc.constant(''),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true })
)
const validRetry = fc.oneof(fc.integer({ min: 0, max: MAX_RETRY }), fc.constantFrom(0, MAX_RETRY))
const validData = fc.oneof(
  { arbitrary: text, weight: 4 },
  { arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 2 },
  { arbitrary: fc.constant(null), weight: 1 }
)

const validEvent: fc.Arbitrary<EventObject> = fc.record(
  { event: validEventName, id: validId, retry: validRetry, data: validData, comment: textWithLoneSurrogates },
  { requiredKeys: [] }
)

// One invalid field injected into a valid event, with the error it must raise.
type Invalid = { ev: unknown, code: string, Ctor: errors.SseErrorConstructor<[string]> }
const insertInto = (s: string, bad: fc.Arbitrary<string>) =>
  fc.tuple(fc.nat(), bad).map(([at, b]) => s.slice(0, at % (s.length + 1)) + b + s.slice(at % (s.length + 1)))
const nonString = fc.constantFrom<unknown>(1, 0, null, true, {}, [], Symbol('s'), 1n)

const badEventName = fc.oneof(
  validEventName.chain((s) => insertInto(s, fc.constantFrom('\r', '\n', '\r\n'))),
  validEventName.chain((s) => insertInto(s, loneSurrogate)),
  nonString
)
// Each bad value has exactly one fault, added to an otherwise valid value.
const safeIdText = text.filter(idIsSafe)
const badId = fc.oneof(
  safeIdText.chain((s) => insertInto(s, fc.constantFrom('\r', '\n', '\r\n', '\0', '\x01', '\x08', '\x0b', '\x1b', '\x1f', '\x7f'))),
  safeIdText.chain((s) => fc.constantFrom(' ' + s, '\t' + s, s + ' ', s + '\t')),
  safeIdText.chain((s) => insertInto(s, loneSurrogate)),
  fc.constantFrom<unknown>(NaN, Infinity, -Infinity, true, null, {}, [], 1n)
)
const badRetry = fc.oneof(
  fc.double({ noNaN: true }).filter((n) => !Number.isInteger(n)),
  fc.integer({ max: -1 }),
  fc.integer({ min: MAX_RETRY + 1, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom<unknown>(NaN, Infinity, -Infinity, '500', '', null, true, 1n)
)
const badComment = nonString.filter((v) => v !== 1n)
const badData = fc.constantFrom<unknown>(() => 1, Symbol('data')) // JSON.stringify returns undefined

const invalidEvent: fc.Arbitrary<Invalid> = fc.oneof(
  fc.tuple(validEvent, badEventName).map(([ev, v]) => ({ ev: { ...ev, event: v }, code: 'FST_ERR_SSE_INVALID_EVENT_NAME', Ctor: errors.FST_ERR_SSE_INVALID_EVENT_NAME })),
  fc.tuple(validEvent, badId).map(([ev, v]) => ({ ev: { ...ev, id: v }, code: 'FST_ERR_SSE_INVALID_ID', Ctor: errors.FST_ERR_SSE_INVALID_ID })),
  fc.tuple(validEvent, badRetry).map(([ev, v]) => ({ ev: { ...ev, retry: v }, code: 'FST_ERR_SSE_INVALID_RETRY', Ctor: errors.FST_ERR_SSE_INVALID_RETRY })),
  fc.tuple(validEvent, badComment).map(([ev, v]) => ({ ev: { ...ev, comment: v }, code: 'FST_ERR_SSE_INVALID_COMMENT', Ctor: errors.FST_ERR_SSE_INVALID_COMMENT })),
  fc.tuple(validEvent, badData).map(([ev, v]) => ({ ev: { ...ev, data: v }, code: 'FST_ERR_SSE_INVALID_DATA', Ctor: errors.FST_ERR_SSE_INVALID_DATA })),
  fc.constantFrom<unknown>(null, undefined, 'data: x', 7, true).map((ev) => ({ ev, code: 'FST_ERR_SSE_INVALID_EVENT', Ctor: errors.FST_ERR_SSE_INVALID_EVENT }))
)

type Item = { valid: true, ev: EventObject } | ({ valid: false } & Invalid)
const stream = fc.array(
  fc.oneof(
    { arbitrary: validEvent.map((ev): Item => ({ valid: true, ev })), weight: 3 },
    { arbitrary: invalidEvent.map((inv): Item => ({ valid: false, ...inv })), weight: 1 }
  ),
  { maxLength: 8 }
)

// A serializer whose output has CRLF line breaks, besides the default JSON.stringify.
const prettyCrlf: Serializer = (v) => {
  const s = JSON.stringify(v, null, 1) as string | undefined
  return typeof s === 'string' ? s.replace(/\n/g, '\r\n') : (s as unknown as string)
}
const serializer = fc.constantFrom<Serializer>(JSON.stringify, prettyCrlf)

type Chunking = { kind: 'whole' } | { kind: 'bytes' } | { kind: 'sizes', sizes: number[] }
const chunking: fc.Arbitrary<Chunking> = fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 6 })
  .map((sizes) => ({ kind: 'sizes' as const, sizes }))

function split (bytes: Uint8Array, how: Chunking): Uint8Array[] {
  if (how.kind === 'whole') return [bytes]
  const chunks: Uint8Array[] = []
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const size = how.kind === 'bytes' ? 1 : how.sizes[i % how.sizes.length]
    chunks.push(bytes.subarray(at, at + size))
    at += size
  }
  return chunks
}

interface Parsed {
  events: EventSourceMessage[]
  retries: number[]
  comments: string[]
  errors: string[]
}

// Feeds the bytes to eventsource-parser through a streaming UTF-8 decoder that keeps any BOM.
function parseChunks (chunks: Uint8Array[]): Parsed {
  const out: Parsed = { events: [], retries: [], comments: [], errors: [] }
  const parser = createParser({
    onEvent: (ev) => out.events.push(ev),
    onRetry: (ms) => out.retries.push(ms),
    onComment: (c) => out.comments.push(c),
    onError: (err) => out.errors.push(err.message)
  })
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true })
  for (const chunk of chunks) parser.feed(decoder.decode(chunk, { stream: true }))
  parser.feed(decoder.decode())
  return out
}

interface Interpreted {
  events: Array<{ type: string, data: string, lastEventId: string }>
  lastEventId: string
  fields: Record<string, number>
}

// The WHATWG "interpreting an event stream" steps, for what eventsource-parser does not report.
function interpret (body: string): Interpreted {
  const out: Interpreted = { events: [], lastEventId: '', fields: {} }
  let data = ''
  let type = ''
  const lines = body.split(LINE_BREAK)
  lines.pop() // the text after the last line break is an incomplete line: discarded at EOF
  for (const line of lines) {
    if (line === '') {
      // Dispatch: the last event ID persists; no event for an empty data buffer.
      if (data !== '') out.events.push({ type: type === '' ? 'message' : type, data: data.slice(0, -1), lastEventId: out.lastEventId })
      data = ''
      type = ''
      continue
    }
    const colon = line.indexOf(':')
    const name = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    const field = colon === 0 ? 'comment' : name
    out.fields[field] = (out.fields[field] ?? 0) + 1
    if (field === 'event') type = value
    else if (field === 'data') data += value + '\n'
    else if (field === 'id' && !value.includes('\0')) out.lastEventId = value
  }
  return out
}

// What a client must see for the valid events.
function model (items: Item[], serialize: Serializer) {
  const events: Array<{ id: string | undefined, event: string | undefined, data: string, lastEventId: string }> = []
  const retries: number[] = []
  const comments: string[] = []
  const fields: Record<string, number> = {}
  const count = (name: string, n = 1) => { if (n > 0) fields[name] = (fields[name] ?? 0) + n }
  let lastEventId = ''
  for (const item of items) {
    if (!item.valid) continue
    const { event, id, retry, data, comment } = item.ev
    if (comment !== undefined) {
      const lines = comment.split(LINE_BREAK).map((l) => l.toWellFormed())
      comments.push(...lines)
      count('comment', lines.length)
    }
    if (event !== undefined && event !== '') count('event')
    if (retry !== undefined) { retries.push(retry); count('retry') }
    const frameId = id === undefined ? undefined : String(id)
    if (frameId !== undefined) { lastEventId = frameId; count('id') }
    const named = event !== undefined && event !== ''
    if (data !== undefined || named) {
      const textData = data === undefined ? '' : typeof data === 'string' ? data : serialize(data)
      const lines = textData.split(LINE_BREAK)
      count('data', lines.length)
      events.push({ id: frameId, event: named ? event : undefined, data: lines.join('\n'), lastEventId })
    }
  }
  return { events, retries, comments, fields, lastEventId }
}

// Runs a property; a failure reports fast-check's shrunk counterexample as one tap failure.
function holds (t: Test, name: string, property: fc.IRawProperty<unknown[]>, runs = NUM_RUNS): void {
  try {
    fc.assert(property, { numRuns: runs })
    t.pass(name)
  } catch (error) {
    t.fail(`${name}\n${(error as Error).message}`)
  }
}

t.test('random streams round-trip through eventsource-parser in every chunking', async (t) => {
  let validSeen = 0
  let invalidSeen = 0
  holds(t, 'valid events come back exactly; invalid ones throw and add nothing', fc.property(stream, serializer, chunking, (items, serialize, sizes) => {
    let body = ''
    for (const item of items) {
      if (item.valid) {
        body += encodeEvent(item.ev, serialize)
        validSeen++
        continue
      }
      invalidSeen++
      assert.throws(() => { body += encodeEvent(item.ev as EventObject, serialize) }, (error: unknown) => {
        assert.ok(error instanceof item.Ctor, `${String(error)} is not a ${item.code}`)
        assert.equal((error as errors.SseError).code, item.code)
        return true
      })
    }
    const bytes = new TextEncoder().encode(body)
    const expected = model(items, serialize)

    // The wire: UTF-8 with LF only and no BOM.
    assert.ok(!body.includes('\r'), 'no CR on the wire')
    assert.notEqual(Buffer.from(bytes.subarray(0, 3)).toString('hex'), 'efbbbf', 'no BOM')

    // The WHATWG steps: events, persisted last id, and exactly the fields put in.
    const seen = interpret(new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes))
    assert.deepStrictEqual(seen.events, expected.events.map((e) => ({ type: e.event ?? 'message', data: e.data, lastEventId: e.lastEventId })))
    assert.equal(seen.lastEventId, expected.lastEventId, 'last event id after the stream')
    assert.deepStrictEqual(seen.fields, expected.fields, 'no field that was not in the input')

    // eventsource-parser, in three chunkings.
    for (const how of [{ kind: 'whole' }, { kind: 'bytes' }, sizes] as Chunking[]) {
      const parsed = parseChunks(split(bytes, how))
      assert.deepStrictEqual(parsed.events, expected.events.map((e) => ({ id: e.id, event: e.event, data: e.data })), `events (${how.kind})`)
      assert.deepStrictEqual(parsed.retries, expected.retries, `retries (${how.kind})`)
      assert.deepStrictEqual(parsed.comments, expected.comments, `comments (${how.kind})`)
      assert.deepStrictEqual(parsed.errors, [], `no parse error (${how.kind})`)
    }
  }))
  t.ok(validSeen > NUM_RUNS, `${validSeen} valid events`)
  t.ok(invalidSeen > NUM_RUNS / 4, `${invalidSeen} invalid events`)
})

t.test('lone surrogates in data and comments arrive as U+FFFD, lines intact', async (t) => {
  holds(t, 'U+FFFD for each lone surrogate', fc.property(textWithLoneSurrogates, textWithLoneSurrogates, chunking, (data, comment, sizes) => {
    const bytes = new TextEncoder().encode(encodeEvent({ comment, data }))
    const parsed = parseChunks(split(bytes, sizes))
    const lines = (s: string) => s.toWellFormed().split(LINE_BREAK)
    assert.deepStrictEqual(parsed.events, [{ id: undefined, event: undefined, data: lines(data).join('\n') }])
    assert.deepStrictEqual(parsed.comments, lines(comment))
  }))
})

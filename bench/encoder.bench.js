// Encoder throughput next to a naive template-string baseline, measured in the same run.
//
//   npm run bench:encoder                     (builds, then runs this file)
//   node bench/encoder.bench.js --rounds 7 --ms 200 --strings-only --filter '16 B string, 1 line'
//
// The baseline is what a hand-rolled SSE route writes: `data: ${s}\n\n` (split on LF for
// multi-line text), with no validation at all. The encoder validates every field and splits on
// CR, LF and CRLF. Before timing, both outputs are compared byte for byte with each other and
// parsed back with eventsource-parser, and after timing the total output length is checked, so
// neither side can win by being wrong.
//
// Both sides take the same event object, `{ data }`, built before timing (in a stream the producer
// makes it and the encoder only reads it), and its data is a flat string, as text read from a
// socket, a file or JSON.parse is.
//
// Three measures:
// - "string" times building the frame only. V8 builds the baseline's template string as a rope
//   without reading the payload, so any check that reads the data costs about as much as the
//   whole baseline; the 64 KiB string rows show it (the baseline is O(1), the encoder reads 64 KiB).
// - "bytes" also writes each frame as UTF-8 into a reused buffer, which is what the socket write
//   (writeUtf8String) does with a frame that is written on its own, as a stream that sends events
//   as they happen does. This is the measure of the target.
// - "burst" joins the 64 frames of a pool into batches of up to 16384 characters and writes each
//   batch once, as the plugin batches the frames of one tick when a source yields many at once.
//   The write is shared among the frames of a batch, so the encoder's checks weigh more.
// `--strings-only` runs the first measure alone.
import os from 'node:os'
import { parseArgs } from 'node:util'
import { createParser } from 'eventsource-parser'
import { encodeEvent } from '../dist/index.js'

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    ms: { type: 'string', default: '100' },
    'strings-only': { type: 'boolean', default: false },
    filter: { type: 'string', default: '' }
  }
})
const ROUNDS = Number(args.rounds)
const ROUND_MS = Number(args.ms)
const POOL = 64 // distinct events per case, used in turn, so nothing can be cached

const KiB = 1024
const SIZES = [['16 B', 16], ['1 KiB', KiB], ['64 KiB', 64 * KiB]]
const WORDS = ['lorem', 'ipsum', 'dolor', 'sit', 'amet', 'tick', 'price', 'é…', 'ok', 'x:y']

// Deterministic text of exactly `bytes` UTF-8 bytes; `lineLength` > 0 inserts LFs.
function text (bytes, seed, lineLength = 0) {
  let s = ''
  let i = seed
  let size = 0
  let line = 0
  while (size < bytes) {
    let piece = WORDS[i++ % WORDS.length] + ' '
    if (lineLength > 0 && line + piece.length > lineLength) {
      piece = '\n'
      line = 0
    } else {
      line += piece.length
    }
    const pieceBytes = Buffer.byteLength(piece)
    if (size + pieceBytes > bytes) piece = 'abcdefghijklmnop'.slice(0, bytes - size)
    s += piece
    size += Buffer.byteLength(piece)
  }
  return s
}

// Text built with += is a rope in V8; data read from a socket, a file or JSON.parse is flat.
// Payloads are made flat the same way, so that neither side pays for walking a rope.
function flat (data) {
  if (typeof data === 'string') return Buffer.from(data).toString()
  if (typeof data.text === 'string') data.text = Buffer.from(data.text).toString()
  return data
}

// An object whose JSON is exactly `bytes` long: {"n":<seed>,"text":"..."}.
function object (bytes, seed) {
  const head = JSON.stringify({ n: seed, text: '' }).length
  return { n: seed, text: text(Math.max(0, bytes - head), seed) }
}

const pretty = (value) => JSON.stringify(value, null, 1)

// Both sides take the same event object, built before timing: in a stream the producer makes it,
// and the encoder only reads it.
const KINDS = [
  {
    name: 'string, 1 line',
    make: (bytes, seed) => text(bytes, seed),
    encoder: (ev) => encodeEvent(ev),
    naive: (ev) => `data: ${ev.data}\n\n`
  },
  {
    name: 'string, lines of 64',
    make: (bytes, seed) => text(bytes, seed, bytes <= 16 ? 6 : 64),
    encoder: (ev) => encodeEvent(ev),
    naive: (ev) => `data: ${ev.data.split('\n').join('\ndata: ')}\n\n`
  },
  {
    name: 'object, JSON',
    make: (bytes, seed) => object(bytes, seed),
    serialize: JSON.stringify,
    encoder: (ev) => encodeEvent(ev),
    naive: (ev) => `data: ${JSON.stringify(ev.data)}\n\n`
  },
  {
    name: 'object, pretty JSON',
    make: (bytes, seed) => object(bytes, seed),
    serialize: pretty,
    encoder: (ev) => encodeEvent(ev, pretty),
    naive: (ev) => `data: ${pretty(ev.data).split('\n').join('\ndata: ')}\n\n`
  }
]

function check (condition, message) {
  if (!condition) throw new Error(`bench check failed: ${message}`)
}

function parseBack (frame) {
  const events = []
  const parser = createParser({
    onEvent: (ev) => events.push(ev),
    onError: (err) => check(false, `parser error ${err.message}`)
  })
  parser.feed(frame)
  return events
}

// Both implementations must produce the same bytes, and those bytes must parse back to the input.
function verify (kind, events) {
  for (const ev of events) {
    const payload = ev.data
    const a = kind.encoder(ev)
    const b = kind.naive(ev)
    check(Buffer.from(a).equals(Buffer.from(b)), `${kind.name}: encoder and baseline differ`)
    const events = parseBack(a)
    const expected = typeof payload === 'string' ? payload : kind.serialize(payload)
    check(events.length === 1 && events[0].data === expected && events[0].event === undefined,
      `${kind.name}: the frame does not parse back to its data`)
  }
}

// Runs `fn` over the pool for about ROUND_MS; returns events/s and checks the output length.
function round (fn, events, poolLength, mode) {
  let n = 0
  let total = 0
  let expected = 0
  const start = process.hrtime.bigint()
  const deadline = start + BigInt(ROUND_MS * 1e6)
  let now = start
  do {
    if (mode === 'string') {
      for (let i = 0; i < POOL; i++) total += fn(events[i]).length
    } else if (mode === 'bytes') {
      for (let i = 0; i < POOL; i++) total += sink.write(fn(events[i]), 0)
    } else {
      // As the plugin does: frames join one batch, written once it reaches 16384 characters
      // and at the end of the tick (here, of the pool).
      let burst = ''
      for (let i = 0; i < POOL; i++) {
        burst += fn(events[i])
        if (burst.length >= BATCH_LIMIT) {
          total += sink.write(burst, 0)
          burst = ''
        }
      }
      if (burst !== '') total += sink.write(burst, 0)
    }
    expected += poolLength
    n += POOL
    now = process.hrtime.bigint()
  } while (now < deadline)
  check(total === expected, 'output length drifted during timing')
  return n / (Number(now - start) / 1e9)
}

const BATCH_LIMIT = 16384 // lib/source.ts
const sink = Buffer.allocUnsafe(1 << 20) // bigger than any frame or batch here
const median = (xs) => xs.slice().sort((a, b) => a - b)[xs.length >> 1]

function measure (kind, bytes, mode) {
  const events = Array.from({ length: POOL }, (_, i) => ({ data: flat(kind.make(bytes, i)) }))
  verify(kind, events)
  const frames = events.map((ev) => kind.naive(ev))
  const poolBytes = frames.reduce((sum, f) => sum + Buffer.byteLength(f), 0)
  const poolLength = mode === 'string' ? frames.reduce((sum, f) => sum + f.length, 0) : poolBytes
  const frameBytes = poolBytes / POOL
  // Warm-up: let both reach their optimised tier before any round counts.
  round(kind.encoder, events, poolLength, mode)
  round(kind.naive, events, poolLength, mode)
  const enc = []
  const naive = []
  for (let r = 0; r < ROUNDS; r++) { // interleaved, so drift on a shared machine hits both
    enc.push(round(kind.encoder, events, poolLength, mode))
    naive.push(round(kind.naive, events, poolLength, mode))
  }
  return { frameBytes, enc: median(enc), naive: median(naive) }
}

const fmt = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(0))
const mbs = (eventsPerSecond, frameBytes) => ((eventsPerSecond * frameBytes) / 1e6).toFixed(1)

const cpus = os.cpus()
console.log(`Machine: ${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${os.type()} ${os.release()}, Node ${process.version}`)
console.log(`${ROUNDS} rounds of ${ROUND_MS} ms per side, median; ${POOL} distinct events per case.\n`)

const TITLES = {
  string: '### Frame built as a string\n',
  bytes: '\n### Each frame written as UTF-8 bytes, as the socket does (the target\'s measure)\n',
  burst: '\n### A burst of 64 frames, batched into writes of up to 16384 characters as the plugin does\n'
}
const modes = args['strings-only'] ? ['string'] : ['string', 'bytes', 'burst']
const target = {}
for (const mode of modes) {
  console.log(TITLES[mode])
  console.log('| Payload | Data | Frame (B) | Encoder events/s | Encoder MB/s | Naive events/s | Naive MB/s | Ratio |')
  console.log('|---|---|--:|--:|--:|--:|--:|--:|')
  for (const kind of KINDS) {
    for (const [label, bytes] of SIZES) {
      if (!`${label} ${kind.name}`.includes(args.filter)) continue
      const r = measure(kind, bytes, mode)
      const ratio = r.enc / r.naive
      if (kind === KINDS[0] && bytes === 16) target[mode] = ratio
      console.log(`| ${label} | ${kind.name} | ${r.frameBytes.toFixed(0)} | ${fmt(r.enc)} | ${mbs(r.enc, r.frameBytes)} | ${fmt(r.naive)} | ${mbs(r.naive, r.frameBytes)} | ${ratio.toFixed(2)}x |`)
    }
  }
}
const summary = Object.entries(target).map(([mode, ratio]) => `${mode} ${ratio.toFixed(2)}x`).join(', ')
console.log(`\nSingle-line 16 B string, encoder / naive baseline: ${summary}.`)
if (target.bytes !== undefined) {
  console.log(`Target, >= 0.90x in the bytes measure: ${target.bytes >= 0.9 ? 'met' : 'missed'}.`)
}

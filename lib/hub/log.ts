import type { EventObject } from '../encoder.js'
import { chunkHead } from '../stream.js'
import { ORIGIN, type Position } from './position.js'

/** One stored event of a topic, shared by every subscriber: encoded once, never copied per socket. */
export interface Entry extends Position {
  /**
   * The whole frame: the event's fields, then `id: <t>-<o>`, then the blank line. A one-topic
   * subscriber writes it as it is; a subscriber of several topics writes its first `bodyLength`
   * bytes and an id line of its own.
   */
  readonly frame: Buffer
  /** The frame as an HTTP/1.1 chunk (its length, the frame, CRLF): `frame` is a view into it. */
  readonly chunk: Buffer
  readonly bodyLength: number
  /** The event as published, for subscribers' filters and conflation keys (undefined for markers). */
  readonly event: EventObject | undefined
  /** The end of a piped stream: subscribers that reach it end cleanly. */
  readonly end: boolean
  /** Bytes appended to the topic up to and including this entry, to measure lag in bytes. */
  readonly total: number
}

/** What a broker hands the hub: a stored event and its position. */
export interface Stored extends Position {
  readonly body: Buffer
  readonly event?: EventObject | undefined
  readonly end?: boolean
}

export interface Retention {
  /** Events kept per topic. */
  readonly size: number
  /** ms an event is kept. */
  readonly maxAge: number
  /** Bytes kept per topic. */
  readonly bytes: number
}

const ID = Buffer.from('id: ')
const NL2 = Buffer.from('\n\n')
const CRLF = Buffer.from('\r\n')

export function makeEntry (stored: Stored, total: number): Entry {
  const id = stored.t + '-' + stored.o
  const length = stored.body.length + ID.length + id.length + NL2.length
  const head = chunkHead(length)
  // One allocation: the chunk's head, the fields, the id line, the blank line, the chunk's end.
  const chunk = Buffer.allocUnsafe(head.length + length + CRLF.length)
  let at = chunk.write(head, 0, 'latin1')
  const start = at
  at += stored.body.copy(chunk, at)
  const bodyLength = at - start
  at += ID.copy(chunk, at)
  at += chunk.write(id, at, 'latin1')
  at += NL2.copy(chunk, at)
  CRLF.copy(chunk, at)
  const frame = chunk.subarray(start, start + length)
  return { t: stored.t, o: stored.o, frame, chunk, bodyLength, event: stored.event, end: stored.end === true, total: total + length }
}

/**
 * A topic's bounded history: its newest events, contiguous by offset, so that an event is found by
 * index and a subscriber is just a position in it. Replay and live delivery are the same read.
 */
export class TopicLog {
  private entries: Entry[] = []
  private start = 0
  /** The newest position ever appended, kept when its entry is trimmed. */
  head: Position = ORIGIN
  /** Bytes held. */
  bytes = 0
  /** Bytes ever appended (see Entry.total). */
  total = 0
  /** A terminal marker was appended: nothing follows it. */
  ended = false
  /** The subscribers reading it. */
  readonly subscribers = new Set<{ wake: () => void }>()

  constructor (readonly name: string) {}

  get size (): number {
    return this.entries.length - this.start
  }

  /** The offset of the oldest entry held (head.o + 1 when none is). */
  get firstOffset (): number {
    return this.head.o - this.size + 1
  }

  first (): Entry | undefined {
    return this.entries[this.start]
  }

  /** The entry at offset `o`, if held. */
  at (o: number): Entry | undefined {
    const i = o - this.firstOffset
    return i >= 0 && i < this.size ? this.entries[this.start + i] : undefined
  }

  append (stored: Stored): Entry {
    const entry = makeEntry(stored, this.total)
    this.entries.push(entry)
    this.head = { t: entry.t, o: entry.o }
    this.total = entry.total
    this.bytes += entry.frame.length
    if (entry.end) this.ended = true
    return entry
  }

  /** Drops the oldest entry; returns its size. */
  shift (): number {
    const entry = this.entries[this.start]!
    this.entries[this.start++] = undefined as unknown as Entry
    this.bytes -= entry.frame.length
    if (this.start === this.entries.length) {
      this.entries = []
      this.start = 0
    } else if (this.start >= 1024 && this.start * 2 >= this.entries.length) {
      this.entries = this.entries.slice(this.start)
      this.start = 0
    }
    return entry.frame.length
  }

  /** Trims to the retention; returns the bytes freed. */
  trim (retention: Retention, now: number): number {
    let freed = 0
    const oldest = now - retention.maxAge
    while (this.size > 0 && (this.size > retention.size || this.bytes > retention.bytes || this.first()!.t < oldest)) {
      freed += this.shift()
    }
    return freed
  }
}

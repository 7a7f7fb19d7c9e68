// Helpers for the hub's tests: a broker that wraps the memory broker and keeps the hub it is
// attached to (the only way a test reaches the hub's topic count without new public API), and an
// SSE reader over node:http that parses frames as they arrive.
import http from 'node:http'
import type { BrokerHost, BrokerRecord, HubBroker, Position } from '../../index.js'
import { memoryBroker } from '../../index.js'
import { within } from './http.js'

/** The hub as its broker sees it, plus the `size` getter (topics held) the Hub class has. */
export type ProbedHub = BrokerHost & { readonly size: number }

/** The memory broker, with the host it was attached to kept for the test to look at. */
export interface ProbeBroker extends HubBroker {
  readonly hub: ProbedHub
  readonly appended: number
}

export function probeBroker (inner: HubBroker = memoryBroker()): ProbeBroker {
  let host: ProbedHub | undefined
  let appended = 0
  return {
    get hub (): ProbedHub {
      if (host === undefined) throw new Error('the broker was never attached')
      return host
    },
    get appended () { return appended },
    attach (h: BrokerHost) {
      host = h as ProbedHub
      inner.attach(h)
    },
    append (topic: string, record: BrokerRecord): Promise<Position> {
      appended++
      return inner.append(topic, record)
    },
    watch: (topic, after) => inner.watch(topic, after),
    unwatch: (topic) => inner.unwatch(topic),
    range: (topic, after, limit) => inner.range(topic, after, limit),
    close: () => inner.close()
  }
}

/** One parsed frame. `id` is undefined when the frame has no id field; `retry` likewise. */
export interface Frame {
  event?: string
  data?: string
  id?: string
  retry?: string
}

/** Parses complete frames out of `text` (comments dropped); returns them and the incomplete rest. */
export function parseFrames (text: string): { frames: Frame[], rest: string } {
  const frames: Frame[] = []
  let start = 0
  for (;;) {
    const end = text.indexOf('\n\n', start)
    if (end === -1) break
    const frame: Frame = {}
    let any = false
    for (const line of text.slice(start, end).split('\n')) {
      if (line === '' || line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const name = colon === -1 ? line : line.slice(0, colon)
      let value = colon === -1 ? '' : line.slice(colon + 1)
      if (value.startsWith(' ')) value = value.slice(1)
      if (name === 'data') frame.data = frame.data === undefined ? value : frame.data + '\n' + value
      else if (name === 'event' || name === 'id' || name === 'retry') frame[name] = value
      else throw new Error(`unexpected field ${JSON.stringify(line)}`)
      any = true
    }
    if (any) frames.push(frame)
    start = end + 2
  }
  return { frames, rest: text.slice(start) }
}

/**
 * An SSE response read with node:http: every frame parsed as it arrives, a `lastId` kept as a
 * browser keeps it, and waits on frames (never sleeps).
 */
export class SseReader {
  readonly frames: Frame[] = []
  status = 0
  headers: http.IncomingHttpHeaders = {}
  /** The last id field seen, as EventSource keeps it. */
  lastId: string | undefined
  /** Text after the last complete frame (a shutdown's `retry:` line ends up here). */
  rest = ''
  ended = false
  readonly closed: Promise<void>
  readonly req: http.ClientRequest
  private waiters = new Set<() => void>()

  private res: http.IncomingMessage | undefined

  constructor (url: string, options: { lastEventId?: string, method?: string, body?: string, agent?: http.Agent, paused?: boolean } = {}, onFrame?: (frame: Frame) => void) {
    const headers: http.OutgoingHttpHeaders = { accept: 'text/event-stream' }
    if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId
    this.req = http.request(url, { method: options.method ?? 'GET', headers, agent: options.agent ?? false })
    this.closed = new Promise((resolve) => {
      const done = (): void => {
        if (this.ended) return
        this.ended = true
        this.wake()
        resolve()
      }
      this.req.on('error', done)
      this.req.on('response', (res) => {
        this.status = res.statusCode ?? 0
        this.headers = res.headers
        this.res = res
        if (options.paused === true) res.pause()
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          const { frames, rest } = parseFrames(this.rest + chunk)
          this.rest = rest
          for (const frame of frames) {
            if (frame.id !== undefined) this.lastId = frame.id
            this.frames.push(frame)
            onFrame?.(frame)
          }
          this.wake()
        })
        res.on('error', () => {})
        res.on('close', done)
      })
    })
    this.req.end(options.body)
  }

  /** Frames that carry an event (not the id-only priming frame). */
  get events (): Frame[] {
    return this.frames.filter((f) => f.data !== undefined || f.event !== undefined)
  }

  /** Resolves once `pred` holds for the frames so far; rejects if the stream ends first, or after `ms`. */
  waitFor (pred: (frames: Frame[]) => boolean, ms = 5000, what = 'frames'): Promise<Frame[]> {
    return within(new Promise<Frame[]>((resolve, reject) => {
      const check = (): void => {
        if (pred(this.frames)) {
          this.waiters.delete(check)
          resolve(this.frames)
        } else if (this.ended) {
          this.waiters.delete(check)
          reject(new Error(`the stream ended before ${what}; frames: ${JSON.stringify(this.frames.slice(-5))}`))
        }
      }
      this.waiters.add(check)
      check()
    }), ms, what)
  }

  /** Resolves once `n` frames have come. */
  waitForFrames (n: number, ms?: number): Promise<Frame[]> {
    return this.waitFor((f) => f.length >= n, ms, `${n} frames`)
  }

  destroy (): void {
    this.req.destroy()
  }

  /** Starts reading a reader opened with `paused: true` (the kernel's buffers held the rest). */
  resume (): void {
    this.res!.resume()
  }

  private wake (): void {
    for (const check of Array.from(this.waiters)) check()
  }
}

/** Opens a reader and resolves once its response head has arrived. */
export async function subscribe (url: string, options?: ConstructorParameters<typeof SseReader>[1], onFrame?: (frame: Frame) => void): Promise<SseReader> {
  const reader = new SseReader(url, options, onFrame)
  await within(new Promise<void>((resolve, reject) => {
    reader.req.once('response', () => resolve())
    reader.req.once('error', reject)
  }), 5000, 'the response head')
  return reader
}

/** The offset of a one-topic id `<t>-<o>`. */
export function offsetOf (id: string): number {
  const m = /^(\d+)-(\d+)$/.exec(id)
  if (m === null) throw new Error(`not a one-topic id: ${JSON.stringify(id)}`)
  return Number(m[2])
}

/** The reset payload of a reset frame. */
export interface ResetData { topic: string, reason: string, from: string, head: string }

export function resetData (frame: Frame): ResetData {
  return JSON.parse(frame.data!) as ResetData
}

/**
 * Checks a one-topic stream's frames against what the hub promises: every event exactly once and in
 * order (offsets contiguous from `after`), except across an explicit reset, whose `from` is the
 * position the client had and whose `head` is its own id, after which the events go on from the
 * head. Throws on the first breach; returns the offsets delivered and the resets seen.
 */
export function checkOneTopic (frames: readonly Frame[], after: string | undefined, resetEvent = 'sse-reset'): { offsets: number[], resets: ResetData[], last: string | undefined } {
  const offsets: number[] = []
  const resets: ResetData[] = []
  let last = after
  let expected = after === undefined ? undefined : offsetOf(after) + 1
  for (const frame of frames) {
    if (frame.event === resetEvent) {
      const reset = resetData(frame)
      if (reset.reason !== 'unknown' && reset.from !== (last ?? '')) throw new Error(`reset from ${reset.from}, but the client had ${last}`)
      if (frame.id !== reset.head) throw new Error(`reset id ${frame.id} is not its head ${reset.head}`)
      resets.push(reset)
    } else if (frame.data === undefined && frame.event === undefined) {
      // A position only: the priming frame (where the client is), or a piped stream's end marker
      // (the next position, which carries no event).
      if (frame.id === undefined) throw new Error('an empty frame')
      const o = offsetOf(frame.id)
      if (expected !== undefined && o !== expected - 1 && o !== expected) throw new Error(`an id-only frame ${frame.id} where ${expected} was due`)
    } else {
      if (frame.id === undefined) throw new Error(`an event without an id: ${JSON.stringify(frame)}`)
      const o = offsetOf(frame.id)
      if (expected !== undefined && o !== expected) throw new Error(`offset ${o} where ${expected} was due (after ${last})`)
      offsets.push(o)
    }
    if (frame.id !== undefined) {
      last = frame.id
      expected = offsetOf(frame.id) + 1
    }
  }
  return { offsets, resets, last }
}

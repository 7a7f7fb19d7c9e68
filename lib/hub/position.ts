/**
 * Positions in a topic's history, and the event ids that carry them.
 *
 * Every event of a topic has a position `t-o`: `o` is its offset, 1, 2, 3… with no gap, and `t` a
 * time in ms that never goes down within the topic (`max(now, previous t)`). It is also the entry
 * id a Redis Stream would give it. `o` finds an event in O(1) and shows any gap; `t` tells two
 * histories apart, so a cursor from a history that was lost (a restart of the memory broker, Redis
 * without persistence) is recognised, never mistaken for a position in the new one.
 *
 * Event ids (the `id:` field, sent back as `Last-Event-ID`):
 * - one topic: its position, `1795902266143-42`;
 * - several topics: `<hash>.<t>-<o>,<t>-<o>,…` in subscription order, in base 36, where `<hash>`
 *   names the topic list, so a cursor from another subscription is never read as this one's.
 *   100 topics take about 1.3 KB.
 */
export interface Position {
  readonly t: number
  readonly o: number
}

/** Before the first event of a topic. */
export const ORIGIN: Position = Object.freeze({ t: 0, o: 0 })

const SINGLE = /^(\d{1,16})-(\d{1,16})$/
const PART = /^([0-9a-z]{1,11})-([0-9a-z]{1,11})$/

export function formatPosition (p: Position): string {
  return p.t + '-' + p.o
}

/** FNV-1a over the topic names, in base 36: tells one subscription's ids from another's. */
export function topicsHash (topics: readonly string[]): string {
  let h = 0x811c9dc5
  for (const topic of topics) {
    for (let i = 0; i < topic.length; i++) {
      h ^= topic.charCodeAt(i)
      h = Math.imul(h, 0x01000193)
    }
    h ^= 0x0a
    h = Math.imul(h, 0x01000193)
  }
  return (h >>> 0).toString(36)
}

/** The id for the positions of a subscription's topics (`hash` is that of their names). */
export function formatId (hash: string, positions: readonly Position[]): string {
  if (positions.length === 1) return formatPosition(positions[0]!)
  let id = hash + '.'
  for (let i = 0; i < positions.length; i++) {
    const p = positions[i]!
    id += (i === 0 ? '' : ',') + p.t.toString(36) + '-' + p.o.toString(36)
  }
  return id
}

function safe (n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0
}

/**
 * Reads an id back into one position per topic, or undefined when it is not an id this
 * subscription gave (another topic list, a foreign format, numbers out of range). Its cost is
 * bounded by the id's length, which the plugin bounds.
 */
export function parseId (id: string, hash: string, count: number): Position[] | undefined {
  if (count === 1) {
    const m = SINGLE.exec(id)
    if (m === null) return undefined
    const p = { t: Number(m[1]), o: Number(m[2]) }
    return safe(p.t) && safe(p.o) ? [p] : undefined
  }
  const dot = id.indexOf('.')
  if (dot === -1 || id.slice(0, dot) !== hash) return undefined
  const parts = id.slice(dot + 1).split(',', count + 1)
  if (parts.length !== count) return undefined
  const out: Position[] = []
  for (const part of parts) {
    const m = PART.exec(part)
    if (m === null) return undefined
    const p = { t: parseInt(m[1]!, 36), o: parseInt(m[2]!, 36) }
    if (!safe(p.t) || !safe(p.o)) return undefined
    out.push(p)
  }
  return out
}

// The load generator: one process holding many raw SSE connections, driven by bench/run.js.
import { SseConnection } from './lib/sse-client.js'
import { monoMs } from './lib/payload.js'

const conns = new Set()
let waiting = null // set by a mode that waits for the parent's next 'finish' or 'go'

/** The parent's next 'finish' or 'go' message. */
function command () {
  return new Promise((resolve) => { waiting = resolve })
}

function send (msg) {
  process.send(msg)
}

function timeout (ms) {
  let timer
  const promise = new Promise((resolve) => { timer = setTimeout(resolve, ms) })
  return { promise, cancel: () => clearTimeout(timer) }
}

function open (port, path, handlers) {
  const c = new SseConnection(port, path, { now: monoMs, ...handlers })
  conns.add(c)
  return c
}

function closeAll () {
  for (const c of conns) c.close()
  conns.clear()
}

/** One client pulling a whole stream as fast as it can. */
async function stream ({ port, path, expect, timeoutMs }) {
  const start = monoMs()
  let last = start
  let first = 0
  let frames = 0
  let status = 0
  let resolveDone
  const done = new Promise((resolve) => { resolveDone = resolve })
  const c = open(port, path, {
    onHead: (s) => { status = s },
    onFrame: (t, now) => {
      if (Number.isNaN(t)) return
      if (frames++ === 0) first = now
      last = now
      if (frames >= expect) resolveDone()
    },
    onEnd: () => resolveDone()
  })
  const limit = timeout(timeoutMs)
  await Promise.race([done, limit.promise])
  limit.cancel()
  const bytes = c.bytes
  c.close()
  return { status, frames, bytes, ms: last - start, firstMs: first - start }
}

/**
 * Opens `count` connections, at most `inFlight` connecting at a time; resolves when each got its
 * hello. With `readyOnHead` (subjects that send no hello, such as hub subscriptions), a 200 head is
 * enough, and another status fails the connection at once; every frame then goes to onFrame.
 * `options` go to each SseConnection (index, ids).
 */
async function openMany (port, path, count, inFlight, timeoutMs, onFrame, { readyOnHead = false, ...options } = {}) {
  let opened = 0
  let ready = 0
  let failed = 0
  let resolveAll
  const all = new Promise((resolve) => { resolveAll = resolve })
  const check = () => { if (ready + failed >= count) resolveAll() }
  const next = () => {
    if (opened >= count) return
    opened++
    let hello = false
    const c = open(port, path, {
      ...options,
      onHead: readyOnHead
        ? (status) => {
            hello = true
            if (status === 200) {
              ready++
            } else {
              failed++
              c.close()
            }
            check()
            next()
          }
        : undefined,
      onFrame: (t, now, i) => {
        if (!hello) {
          hello = true
          ready++
          check()
          next()
          return
        }
        onFrame?.(c, t, now, i)
      },
      onEnd: () => {
        if (!hello) {
          hello = true
          failed++
          check()
          next()
        }
      }
    })
  }
  for (let i = 0; i < Math.min(inFlight, count); i++) next()
  const limit = timeout(timeoutMs)
  await Promise.race([all, limit.promise])
  limit.cancel()
  return { ready, failed }
}

/**
 * Fan-out: every connection counts the broadcast frames and the latency of each (emit to receive).
 * Each delivery's event index and receive time are kept too: with the schedule the parent sends
 * in 'finish', they give the lag behind schedule, and the time each event reached its last client.
 */
async function fan ({ port, count, expect, timeoutMs, readyOnHead }) {
  const samples = new Float64Array(count * expect)
  const index = new Int32Array(count * expect)
  const received = new Float64Array(count * expect)
  let n = 0
  let complete = 0
  let resolveAll
  const all = new Promise((resolve) => { resolveAll = resolve })
  const got = new Map()
  const { ready, failed } = await openMany(port, '/sub', count, 200, timeoutMs, (c, t, now, i) => {
    if (Number.isNaN(t)) return
    if (n < samples.length) {
      samples[n] = now - t
      index[n] = i
      received[n++] = now
    }
    const k = (got.get(c) ?? 0) + 1
    got.set(c, k)
    if (k === expect && ++complete === count) resolveAll()
  }, { readyOnHead, index: true })
  send({ type: 'ready', ready, failed })
  // Wait for the parent's 'finish' (the broadcast is over), then a grace period for stragglers.
  const { graceMs = 0, startMono, period } = await command()
  const limit = timeout(graceMs)
  await Promise.race([all, limit.promise])
  limit.cancel()
  closeAll()
  // Frames without an event index (none expected here) are left out of both.
  const lag = new Float64Array(n)
  const lastArrival = new Float64Array(expect)
  let m = 0
  for (let k = 0; k < n; k++) {
    const i = index[k]
    if (i < 0 || i >= expect) continue
    if (startMono !== undefined) lag[m++] = received[k] - (startMono + i * period)
    if (received[k] > lastArrival[i]) lastArrival[i] = received[k]
  }
  return { ready, failed, delivered: n, samples: samples.subarray(0, n), lag: lag.subarray(0, m), lastArrival }
}

/** Idle streams: open, then hold until the parent says close. */
async function idle ({ port, count, timeoutMs, readyOnHead }) {
  const { ready, failed } = await openMany(port, '/sub', count, 200, timeoutMs, undefined, { readyOnHead })
  send({ type: 'ready', ready, failed })
  await command()
  closeAll()
  return { ready, failed }
}

/** Connect rate: `concurrency` loops of open, first event, close, for `durationMs`. */
async function connect ({ port, concurrency, durationMs }) {
  const cpu0 = process.cpuUsage()
  const start = monoMs()
  const deadline = start + durationMs
  const ttfe = []
  let errors = 0
  const loop = () => new Promise((resolve) => {
    const once = () => {
      if (monoMs() >= deadline) return resolve()
      const t0 = monoMs()
      let settled = false
      const c = open(0 + port, '/sub', {
        onFrame: (t, now) => {
          if (settled) return
          settled = true
          ttfe.push(now - t0)
          c.close()
          conns.delete(c)
          setImmediate(once)
        },
        onEnd: () => {
          if (settled) return
          settled = true
          errors++
          conns.delete(c)
          setImmediate(once)
        }
      })
    }
    once()
  })
  await Promise.all(Array.from({ length: concurrency }, loop))
  const elapsedMs = monoMs() - start
  closeAll()
  const cpu = process.cpuUsage(cpu0)
  return { completed: ttfe.length, errors, elapsedMs, ttfe: Float64Array.from(ttfe), clientCpuUs: cpu.user + cpu.system }
}

/** A client that sends its request and never reads; holds until the parent says close. */
async function slow ({ port, path }) {
  const c = open(port, path, { pause: true })
  await new Promise((resolve) => c.socket.once('connect', resolve))
  send({ type: 'ready' })
  await command()
  closeAll()
  return {}
}

/** The offset of a hub id (`<t>-<o>`). */
function offsetOf (id) {
  return id === undefined ? -1 : Number(id.slice(id.indexOf('-') + 1))
}

/**
 * Resume storm. Every connection subscribes and takes the first `warm` events, remembering the
 * last id and event index it saw; on 'finish' all are dropped at once. While they are away the
 * server publishes more; on 'go' every one reconnects at the same moment with its Last-Event-ID,
 * and each is caught up when it has the event `head`. Exactness is checked per connection: each
 * event after its last seen one, once, in order.
 */
async function storm ({ port, resumePort = port, count, warm, timeoutMs, catchUpMs, readyOnHead, byOffset = false }) {
  // byOffset (several publishers, whose events reach the topic in any order of their index): an
  // event's place is the offset of its id (t-o, o = 1, 2, 3… per topic) instead of its index.
  const place = byOffset ? (c) => offsetOf(c.lastId) : (c, i) => i
  const warmLast = byOffset ? warm : warm - 1
  let warmed = 0
  let resolveWarm
  const allWarm = new Promise((resolve) => { resolveWarm = resolve })
  const seen = new Map() // connection -> last event index
  const { ready, failed } = await openMany(port, '/sub', count, 200, timeoutMs, (c, t, now, i) => {
    if (i < 0) return
    const p = place(c, i)
    seen.set(c, p)
    if (p === warmLast && ++warmed === count) resolveWarm()
  }, { readyOnHead, index: true, ids: true })
  send({ type: 'ready', ready, failed })
  const { graceMs = 0 } = await command()
  const limit = timeout(graceMs)
  await Promise.race([allWarm, limit.promise])
  limit.cancel()
  // Drop them all, keeping what each would resume from.
  const away = []
  for (const c of conns) away.push({ lastId: c.lastId, lastI: seen.get(c) ?? -1 })
  closeAll()
  send({ type: 'dropped', warmed, withId: away.filter((a) => a.lastId !== undefined).length })

  const { head } = await command()
  const t0 = monoMs()
  const times = []
  let settled = 0
  let gaps = 0
  let duplicates = 0
  let exact = 0
  let resets = 0
  let ended = 0
  let resolveAll
  const all = new Promise((resolve) => { resolveAll = resolve })
  const settle = () => { if (++settled === away.length) resolveAll() }
  for (const a of away) {
    let next = a.lastI + 1
    let ok = true
    let done = false
    const c = open(resumePort, '/sub', {
      index: true,
      ids: true,
      lastEventId: a.lastId,
      onFrame: (t, now, i) => {
        if (c.lastEvent === 'sse-reset') {
          resets++
          ok = false
          return
        }
        if (i < 0 || done) return
        const p = place(c, i)
        if (p === next) next++
        else if (p < next) { duplicates++; ok = false } else { gaps++; ok = false; next = p + 1 }
        if (p >= head) {
          done = true
          times.push(now - t0)
          if (ok) exact++
          settle()
        }
      },
      onEnd: () => {
        if (done) return
        done = true
        ended++
        settle()
      }
    })
  }
  if (away.length === 0) resolveAll()
  const limit2 = timeout(catchUpMs)
  await Promise.race([all, limit2.promise])
  limit2.cancel()
  closeAll()
  return {
    ready,
    failed,
    warmed,
    reconnected: away.length,
    caughtUp: times.length,
    exact,
    gaps,
    duplicates,
    resets,
    ended,
    times: Float64Array.from(times)
  }
}

/**
 * Joins with a Last-Event-ID (the Redis benchmark's connects whose cursor is in the node's cache):
 * `count` connections, each ready once it has the `expect` events replayed after `lastEventId`.
 * They then stay subscribed until the parent's 'finish'.
 */
async function join ({ port, count, expect, lastEventId, timeoutMs }) {
  const got = new Map()
  let complete = 0
  let resolveAll
  const all = new Promise((resolve) => { resolveAll = resolve })
  const { ready, failed } = await openMany(port, '/sub', count, 200, timeoutMs, (c, t, now, i) => {
    const k = (got.get(c) ?? 0) + 1
    got.set(c, k)
    if (k === expect && ++complete === count) resolveAll()
  }, { readyOnHead: true, index: true, lastEventId })
  if (ready === 0) resolveAll()
  const limit = timeout(timeoutMs)
  await Promise.race([all, limit.promise])
  limit.cancel()
  send({ type: 'ready', ready, failed, complete })
  await command()
  closeAll()
  return { ready, failed, complete }
}

/**
 * Exactness through an outage (the Redis restart): `count` subscriptions record every event index
 * they get. On 'finish' the parent says which events were published (`expected`: the publishes
 * that resolved); after a grace period for stragglers each connection is checked: an expected
 * event never received is lost, one received twice a duplicate. Events received but not in
 * `expected` (a publish that rejected yet was stored) are counted apart. Where frames carry hub
 * ids, the topic's order is checked too: each frame's offset one past the one before (a gap, or
 * an offset repeated or going back, counted).
 */
async function track ({ port, count, timeoutMs }) {
  const seqs = new Map()
  const resets = { n: 0 }
  let want = null
  const have = new Map()
  let done = 0
  let resolveAll = null
  // The topic's own order, where frames carry hub ids (t-o): each offset one past the one before.
  const offsets = { gaps: 0, repeats: 0 }
  const lastO = new Map()
  const { ready, failed } = await openMany(port, '/sub', count, 200, timeoutMs, (c, t, now, i) => {
    if (c.lastEvent === 'sse-reset') { resets.n++; return }
    if (i < 0) return
    const o = offsetOf(c.lastId)
    if (o >= 0) {
      const prev = lastO.get(c)
      if (prev !== undefined && o <= prev) offsets.repeats++
      else if (prev !== undefined && o > prev + 1) offsets.gaps++
      lastO.set(c, o)
    }
    let s = seqs.get(c)
    if (s === undefined) seqs.set(c, s = [])
    s.push(i)
    // Once the parent said what to expect: done when every expected event is in.
    if (want !== null && want.has(i)) {
      const h = have.get(c) ?? new Set()
      have.set(c, h)
      if (!h.has(i)) {
        h.add(i)
        if (h.size === want.size && ++done === ready) resolveAll?.()
      }
    }
  }, { readyOnHead: true, index: true, ids: true })
  send({ type: 'ready', ready, failed })
  const { graceMs = 0, expected = [] } = await command()
  const wanted = new Set(expected)
  for (const [c, s] of seqs) {
    const h = new Set(s.filter((i) => wanted.has(i)))
    have.set(c, h)
    if (h.size === wanted.size) done++
  }
  want = wanted
  if (done < ready) {
    const limit = timeout(graceMs)
    await Promise.race([new Promise((resolve) => { resolveAll = resolve }), limit.promise])
    limit.cancel()
  }
  let alive = 0
  for (const c of conns) if (!c.ended) alive++
  closeAll()
  const lostPer = []
  let duplicates = 0
  let unexpected = 0
  let exact = 0
  const all = [...seqs.values()]
  let lostExample = []
  const dupExample = []
  for (let k = 0; k < ready; k++) {
    // A connection that got no event at all has no entry: everything is lost for it.
    const s = all[k] ?? []
    const seen = new Set()
    let dup = 0
    for (const i of s) {
      if (seen.has(i)) { dup++; if (dupExample.length < 10) dupExample.push(i) }
      seen.add(i)
      if (!wanted.has(i)) unexpected++
    }
    const missing = expected.filter((i) => !seen.has(i))
    if (missing.length > lostExample.length) lostExample = missing.slice(0, 40)
    lostPer.push(missing.length)
    duplicates += dup
    if (missing.length === 0 && dup === 0) exact++
  }
  return { ready, failed, alive, exact, lostPer, lostExample, dupExample, duplicates, offsetGaps: offsets.gaps, offsetRepeats: offsets.repeats, unexpected, resets: resets.n }
}

const modes = { stream, fan, idle, connect, slow, storm, join, track }

process.on('message', (msg) => {
  if (msg.cmd === 'run') {
    modes[msg.mode](msg).then(
      (result) => send({ type: 'result', result }),
      (err) => send({ type: 'error', error: String(err?.stack ?? err) })
    )
  } else if (msg.cmd === 'finish' || msg.cmd === 'go') {
    const w = waiting
    waiting = null
    w?.(msg)
  } else if (msg.cmd === 'exit') {
    closeAll()
    process.exit(0)
  }
})
process.on('disconnect', () => {
  closeAll()
  process.exit(0)
})
send({ type: 'up' })

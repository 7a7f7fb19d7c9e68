// The load generator: one process holding many raw SSE connections, driven by bench/run.js.
import { SseConnection } from './lib/sse-client.js'
import { monoMs } from './lib/payload.js'

const conns = new Set()
let finish = null // set by a mode that waits for the parent's 'finish'

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

/** Opens `count` connections, at most `inFlight` connecting at a time; resolves when each got its hello. */
async function openMany (port, path, count, inFlight, timeoutMs, onFrame) {
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
      onFrame: (t, now) => {
        if (!hello) {
          hello = true
          ready++
          check()
          next()
          return
        }
        onFrame?.(c, t, now)
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

/** Fan-out: every connection counts the broadcast frames and the latency of each. */
async function fan ({ port, count, expect, timeoutMs }) {
  const samples = new Float64Array(count * expect)
  let n = 0
  let complete = 0
  let resolveAll
  const all = new Promise((resolve) => { resolveAll = resolve })
  const got = new Map()
  const { ready, failed } = await openMany(port, '/sub', count, 200, timeoutMs, (c, t, now) => {
    if (Number.isNaN(t)) return
    if (n < samples.length) samples[n++] = now - t
    const k = (got.get(c) ?? 0) + 1
    got.set(c, k)
    if (k === expect && ++complete === count) resolveAll()
  })
  send({ type: 'ready', ready, failed })
  // Wait for the parent's 'finish' (the broadcast is over), then a grace period for stragglers.
  const graceMs = await new Promise((resolve) => { finish = resolve })
  const limit = timeout(graceMs)
  await Promise.race([all, limit.promise])
  limit.cancel()
  closeAll()
  return { ready, failed, delivered: n, samples: samples.subarray(0, n) }
}

/** Idle streams: open, then hold until the parent says close. */
async function idle ({ port, count, timeoutMs }) {
  const { ready, failed } = await openMany(port, '/sub', count, 200, timeoutMs)
  send({ type: 'ready', ready, failed })
  await new Promise((resolve) => { finish = resolve })
  closeAll()
  return { ready, failed }
}

/** Connect rate: `concurrency` loops of open, first event, close, for `durationMs`. */
async function connect ({ port, concurrency, durationMs }) {
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
  return { completed: ttfe.length, errors, elapsedMs, ttfe: Float64Array.from(ttfe) }
}

/** A client that sends its request and never reads; holds until the parent says close. */
async function slow ({ port, path }) {
  const c = open(port, path, { pause: true })
  await new Promise((resolve) => c.socket.once('connect', resolve))
  send({ type: 'ready' })
  await new Promise((resolve) => { finish = resolve })
  closeAll()
  return {}
}

const modes = { stream, fan, idle, connect, slow }

process.on('message', (msg) => {
  if (msg.cmd === 'run') {
    modes[msg.mode](msg).then(
      (result) => send({ type: 'result', result }),
      (err) => send({ type: 'error', error: String(err?.stack ?? err) })
    )
  } else if (msg.cmd === 'finish') {
    finish?.(msg.graceMs ?? 0)
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

// The events every subject sends, built the same way for all of them.

// A monotonic clock shared by all processes on the machine (CLOCK_MONOTONIC), in ms.
export function monoMs () {
  return Number(process.hrtime.bigint() / 1000n) / 1000
}

// Pads each JSON payload to about 100 bytes: {"i":123456,"t":12345678.123,"pad":"xx…"}.
const PAD = 'x'.repeat(60)

export const counters = { pulled: 0 }

export function payload (i, t) {
  return { i, t, pad: PAD }
}

/** The throughput source: n events `{ data: object }`, each pull counted. */
export async function * events (n) {
  for (let i = 0; i < n; i++) {
    counters.pulled++
    yield { data: payload(i, Date.now()) }
  }
}

/** The same events with `data` already a JSON string (fastify-sse-v2 requires string data). */
export async function * stringEvents (n) {
  for (let i = 0; i < n; i++) {
    counters.pulled++
    yield { data: JSON.stringify(payload(i, Date.now())) }
  }
}

/** The same payloads as bare values (better-sse's session.iterate() sends each value as data). */
export async function * values (n) {
  for (let i = 0; i < n; i++) {
    counters.pulled++
    yield payload(i, Date.now())
  }
}

export function readCount (url, fallback) {
  const m = /[?&]n=(\d+)/.exec(url)
  return m === null ? fallback : Number(m[1])
}

export const HELLO = { hello: true }
export const HELLO_JSON = JSON.stringify(HELLO)

import { monoMs, payload } from './payload.js'

/**
 * The broadcaster of the fan-out scenarios. Subscribers get each event as an object, as its JSON
 * text and as a ready SSE frame, all built once per event; each subject uses what its README does.
 */
export class Hub {
  subscribers = new Set()
  sent = 0
  pending = []

  add (fn) {
    this.subscribers.add(fn)
    return () => { this.subscribers.delete(fn) }
  }

  get size () {
    return this.subscribers.size
  }

  emit (i) {
    const obj = payload(i, monoMs())
    const json = JSON.stringify(obj)
    const frame = 'data: ' + json + '\n\n'
    for (const fn of this.subscribers) {
      // A subscriber that returns a promise (a hub publish) is waited for at the end of run().
      const r = fn(obj, json, frame)
      if (r !== undefined) this.pending.push(r)
    }
    this.sent++
  }

  /**
   * Emits `count` events, numbered from `first`, at `rate` per second on a fixed schedule; resolves
   * after the last with the schedule on the shared monotonic clock (the k-th event emitted is due at
   * startMono + k * period) and the rate the loop achieved from the first emit to the last.
   */
  run (count, rate, first = 0) {
    const period = 1000 / rate
    const start = performance.now()
    const startMono = monoMs()
    let lastEmit = start
    let i = 0
    this.pending = []
    return new Promise((resolve) => {
      const tick = () => {
        lastEmit = performance.now()
        this.emit(first + i++)
        if (i >= count) {
          const durationMs = performance.now() - start
          const emitRate = count > 1 ? (count - 1) / ((lastEmit - start) / 1000) : NaN
          // Measured before the wait: publishes still settling are the subject's delivery work.
          const pending = this.pending
          this.pending = []
          Promise.allSettled(pending).then(() => resolve({ durationMs, startMono, period, emitRate }))
          return
        }
        // Scheduled from the start, so a slow emit does not push every later one back.
        const delay = Math.max(0, start + i * period - performance.now())
        setTimeout(tick, delay)
      }
      tick()
    })
  }
}

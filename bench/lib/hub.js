import { monoMs, payload } from './payload.js'

/**
 * The broadcaster of the fan-out scenarios. Subscribers get each event as an object, as its JSON
 * text and as a ready SSE frame, all built once per event; each subject uses what its README does.
 */
export class Hub {
  subscribers = new Set()
  sent = 0

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
    for (const fn of this.subscribers) fn(obj, json, frame)
    this.sent++
  }

  /** Emits `count` events at `rate` per second on a fixed schedule; resolves after the last. */
  run (count, rate) {
    const period = 1000 / rate
    const start = performance.now()
    let i = 0
    return new Promise((resolve) => {
      const tick = () => {
        this.emit(i++)
        if (i >= count) return resolve({ durationMs: performance.now() - start })
        // Scheduled from the start, so a slow emit does not push every later one back.
        const delay = Math.max(0, start + i * period - performance.now())
        setTimeout(tick, delay)
      }
      tick()
    })
  }
}

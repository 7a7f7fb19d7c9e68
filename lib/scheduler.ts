import { performance } from 'node:perf_hooks'

/** What the scheduler asks of a stream. */
export interface Scheduled {
  /** Does what is due at `now` (a heartbeat, an end of life). */
  tick (now: number): void
}

// The scheduler looks at every stream this often, at most: a heartbeat goes out between one and
// 1.25 intervals after the last write (sooner for short intervals, see watch()), or after its first
// look at a stream that opened without reading the clock (SseStream.open()).
const MAX_TICK = 1000

/**
 * One timer for every stream of a plugin instance, instead of one `Timeout` per stream: an idle
 * stream holds no timer at all, and 20,000 of them cost one interval that looks at each (a
 * comparison or two of numbers) a few times per heartbeat interval.
 */
export class Scheduler {
  private timer: NodeJS.Timeout | null = null
  private tick = MAX_TICK

  constructor (private readonly streams: Iterable<Scheduled>) {}

  /**
   * A stream opened that needs a look every `period` ms or so (its heartbeat interval, its
   * lifetime): the scheduler looks a quarter of that often, or once a second at most.
   */
  watch (period: number): void {
    const tick = Math.max(1, Math.min(MAX_TICK, Math.floor(period / 4)))
    if (this.timer !== null && tick >= this.tick) return
    this.stop()
    this.tick = tick
    this.timer = setInterval(this.run, tick).unref()
  }

  private readonly run = (): void => {
    const now = performance.now()
    let any = false
    for (const stream of this.streams) {
      any = true
      stream.tick(now)
    }
    // No stream left: no timer either, and the next one sets the pace again.
    if (!any) this.stop()
  }

  stop (): void {
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    this.tick = MAX_TICK
  }
}

// Helpers for the client's tests: a real Fastify app with the plugin on 127.0.0.1:0, a fake clock
// for the client's injected timers, and a reader of a stream's events.
import type { Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import sse, { type SsePluginOptions } from '../../index.js'
import { listen } from './http.js'
import type { Timers } from '../../lib/client/index.js'

/** Starts an app with the plugin and the test's routes; closes it, connections included, at teardown. */
export async function startApp (t: Test, routes: (app: FastifyInstance) => void | Promise<void>, options: SsePluginOptions = {}): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify()
  await app.register(sse, options)
  await routes(app)
  const url = await listen(app)
  t.teardown(async () => {
    // A fetch aborted mid-stream can leave a keep-alive socket that would hold app.close().
    app.server.closeAllConnections()
    await app.close()
  })
  return { app, url }
}

export interface FakeClock {
  timers: Timers
  /** Delays of the timers now pending, in the order they were set. */
  pending (): number[]
  /** Resolves with the delay of the next timer set (or one already pending), without firing it. */
  nextTimer (): Promise<number>
  /** Waits for a pending timer, moves the clock to it and runs it; resolves with its delay. */
  fire (): Promise<number>
  advance (ms: number): void
}

/** A clock that moves only when the test fires a timer; the client's network I/O stays real. */
export function fakeClock (): FakeClock {
  let now = 1_000_000
  let seq = 0
  const timers = new Map<number, { at: number, ms: number, fn: () => void }>()
  let waiter: (() => void) | undefined
  const clock: FakeClock = {
    timers: {
      setTimeout: (fn, ms) => {
        const id = ++seq
        timers.set(id, { at: now + ms, ms, fn })
        waiter?.()
        return id
      },
      clearTimeout: (id: number) => { timers.delete(id) },
      now: () => now
    },
    pending: () => [...timers.values()].map((timer) => timer.ms),
    async nextTimer () {
      while (timers.size === 0) await new Promise<void>((resolve) => { waiter = resolve })
      waiter = undefined
      return [...timers.values()][0]!.ms
    },
    async fire () {
      await clock.nextTimer()
      const [id, timer] = [...timers.entries()].sort((a, b) => a[1].at - b[1].at)[0]!
      timers.delete(id)
      now = Math.max(now, timer.at)
      timer.fn()
      return timer.ms
    },
    advance: (ms) => { now += ms }
  }
  return clock
}

/** Reads `count` events from an async iterable (or all of them), then leaves it open. */
export async function take<E> (stream: AsyncIterable<E>, count = Infinity): Promise<E[]> {
  const got: E[] = []
  if (count === 0) return got
  const iterator = stream[Symbol.asyncIterator]()
  for (let result = await iterator.next(); !result.done; result = await iterator.next()) {
    got.push(result.value)
    if (got.length >= count) break
  }
  return got
}

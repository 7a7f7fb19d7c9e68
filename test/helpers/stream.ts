import Fastify, { type FastifyInstance } from 'fastify'
import http from 'node:http'
import { captureLogs, deferred } from './http.js'
import sse, { type SsePluginOptions } from '../../index.js'

// The socket, promise and log helpers shared with the HTTP-layer tests.
export { captureLogs as logCollector, deferred, listen } from './http.js'

type LogLine = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

/** An app with the plugin registered, logging at debug level into a collector; closed at teardown. */
export async function build (
  t: { teardown: (fn: () => unknown) => void },
  options: SsePluginOptions = {}
): Promise<{ app: FastifyInstance, logs: ReturnType<typeof captureLogs> }> {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'debug', stream: logs.stream } })
  t.teardown(() => app.close())
  await app.register(sse, options)
  return { app, logs }
}

/** Stream-end log lines carry `sse`. */
export const isEnd = (line: LogLine): boolean => line.sse !== undefined

/** An open SSE response read with node:http, accumulating its text. */
export class Client {
  text = ''
  ended = false
  closed: Promise<void>
  private waiters: Array<() => void> = []

  constructor (readonly req: http.ClientRequest, readonly res: http.IncomingMessage, read = true) {
    res.setEncoding('utf8')
    this.closed = new Promise((resolve) => {
      res.on('close', () => { this.ended = true; this.wake(); resolve() })
    })
    res.on('error', () => {})
    req.on('error', () => {})
    if (read) this.resume()
  }

  resume (): void {
    this.res.on('data', (chunk: string) => { this.text += chunk; this.wake() })
  }

  /** Resolves when the text read so far satisfies `pred` (or contains the string). */
  waitFor (pred: string | ((text: string) => boolean), ms = 5000): Promise<string> {
    const test = typeof pred === 'string' ? (t: string) => t.includes(pred) : pred
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`stream text not seen in time; got ${JSON.stringify(this.text.slice(-200))}`)), ms)
      const check = (): void => {
        if (test(this.text)) { clearTimeout(timer); resolve(this.text); return }
        if (this.ended) { clearTimeout(timer); reject(new Error(`stream ended first; got ${JSON.stringify(this.text.slice(-200))}`)); return }
        this.waiters.push(check)
      }
      check()
    })
  }

  destroy (): void {
    this.req.destroy()
  }

  private wake (): void {
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w()
  }
}

/** Opens a request and resolves once the response head has arrived. */
export function open (url: string, options: http.RequestOptions & { body?: string, read?: boolean } = {}): Promise<Client> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false, ...options }, (res) => resolve(new Client(req, res, options.read !== false)))
    req.on('error', reject)
    req.end(options.body)
  })
}

/** Splits an SSE body into complete frames (blank-line terminated), dropping comment lines. */
export function frames (text: string): string[] {
  return text.split('\n\n').slice(0, -1).map((f) => f.split('\n').filter((l) => !l.startsWith(':')).join('\n')).filter((f) => f !== '')
}

/**
 * A client that sends a request and then reads nothing at all: its socket is paused from the
 * start, so only the kernel's buffers take the server's bytes.
 */
export async function silentClient (url: string): Promise<import('node:net').Socket> {
  const { connect } = await import('node:net')
  const u = new URL(url)
  const socket = connect(Number(u.port), u.hostname)
  socket.on('error', () => {})
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.pause()
  socket.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nAccept: text/event-stream\r\n\r\n`)
  return socket
}

/**
 * Holds requests in their handlers until the server has begun to close, so that a test can
 * start a stream during shutdown. Handlers call `hold()`; the test sends its requests, then
 * `close(n)` waits for n of them to arrive, starts app.close(), and lets them go once the
 * plugin's preClose has run. It gives back app.close()'s promise as `closed`.
 */
export function holdUntilClosing (app: FastifyInstance): { hold: () => Promise<void>, close: (expected?: number) => Promise<{ closed: Promise<undefined> }> } {
  const gate = deferred()
  const closing = deferred()
  let arrivals = 0
  let wanted = { count: 1, reached: deferred() }
  app.addHook('preClose', async () => { closing.resolve() })
  return {
    async hold () {
      if (++arrivals >= wanted.count) wanted.reached.resolve()
      await gate.promise
    },
    async close (expected = 1) {
      wanted = { count: expected, reached: deferred() }
      if (arrivals >= expected) wanted.reached.resolve()
      await wanted.reached.promise
      const closed = app.close()
      await closing.promise
      gate.resolve()
      return { closed }
    }
  }
}

/**
 * A stream ended by a shutdown ends with the line `retry: <ms>` (the `shutdownRetry` option).
 * Returns the frames before it and its value (undefined when the text has no such last line).
 */
export function splitShutdownRetry (text: string): { frames: string, retry: number | undefined } {
  const match = /(?:^|\n)retry: (\d+)\n$/.exec(text)
  if (match === null) return { frames: text, retry: undefined }
  return { frames: text.slice(0, text.length - match[1].length - 8), retry: Number(match[1]) }
}

/** Whether `retry` was drawn from the default shutdownRetry window, [2000, 10000] ms. */
export const inDefaultShutdownWindow = (retry: number | undefined): boolean =>
  retry !== undefined && retry >= 2000 && retry <= 10000

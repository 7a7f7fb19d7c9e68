// Small helpers for tests over real sockets: start an app on 127.0.0.1:0, read a stream with
// node:http as it arrives, hold a source until the test lets it go, and capture log lines.
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http'
import type { Server } from 'node:net'
import { Writable } from 'node:stream'

/** Listens on an ephemeral loopback port; returns the base URL (`http://127.0.0.1:PORT`). */
export async function listen (app: {
  listen: (options: { port: number, host: string }) => Promise<string>
  server: Server
}): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('not listening on TCP')
  return `http://127.0.0.1:${address.port}`
}

/** A promise with its settle functions exposed, for sources and clients the test steps by hand. */
export interface Deferred<T = void> {
  promise: Promise<T>
  resolve: (value: T) => void
  reject: (reason: unknown) => void
}

export function deferred<T = void> (): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (reason: unknown) => void
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

/** Rejects after `ms` with a message naming what was awaited: an upper bound, never a sleep. */
export function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

export interface StreamRequestOptions {
  method?: string
  headers?: OutgoingHttpHeaders
  body?: string | Buffer
  /** Defaults to none: one connection per request, closed after it. */
  agent?: http.Agent
}

/** A response read with node:http as it arrives; the body is decoded as UTF-8 across chunks. */
export interface StreamClient {
  /** Settles when the response head arrives, before any body byte. */
  readonly response: Promise<IncomingMessage>
  /** Settles with the whole body when the response ends, or rejects if it is cut off. */
  readonly ended: Promise<string>
  /** Body received so far. */
  readonly body: string
  /** Resolves with the body so far once it contains `needle`; rejects if the response ends first. */
  waitFor (needle: string, ms?: number): Promise<string>
  /** Drops the connection, as a client that goes away does. */
  destroy (): void
}

export function openStream (url: string, options: StreamRequestOptions = {}): StreamClient {
  const response = deferred<IncomingMessage>()
  const ended = deferred<string>()
  // A rejection nobody awaits (the test only looked at the head) must not fail the run.
  ended.promise.catch(() => {})
  response.promise.catch(() => {})
  let body = ''
  let done = false
  const waiters = new Set<() => void>()
  const notify = (): void => { for (const check of waiters) check() }

  const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers, agent: options.agent ?? false })
  req.on('error', (err) => {
    done = true
    response.reject(err)
    ended.reject(err)
    notify()
  })
  req.on('response', (res) => {
    response.resolve(res)
    res.setEncoding('utf8')
    res.on('data', (chunk: string) => { body += chunk; notify() })
    res.on('end', () => { done = true; ended.resolve(body); notify() })
    res.on('aborted', () => { done = true; ended.reject(new Error('response aborted')); notify() })
  })
  req.end(options.body)

  return {
    response: response.promise,
    ended: ended.promise,
    get body () { return body },
    waitFor (needle: string, ms = 2000): Promise<string> {
      const found = new Promise<string>((resolve, reject) => {
        const check = (): void => {
          if (body.includes(needle)) {
            waiters.delete(check)
            resolve(body)
          } else if (done) {
            waiters.delete(check)
            reject(new Error(`the response ended without ${JSON.stringify(needle)}; body: ${JSON.stringify(body)}`))
          }
        }
        waiters.add(check)
        check()
      })
      return within(found, ms, JSON.stringify(needle))
    },
    destroy (): void {
      req.destroy()
    }
  }
}

/** Fetches a whole response with node:http: status, headers and body. */
export async function get (url: string, options: StreamRequestOptions = {}): Promise<{
  status: number
  headers: IncomingMessage['headers']
  body: string
}> {
  const client = openStream(url, options)
  const res = await client.response
  const body = await client.ended
  return { status: res.statusCode ?? 0, headers: res.headers, body }
}

type LogLine = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

/** A log destination for `Fastify({ logger: { level, stream } })` that keeps each line parsed. */
export interface LogCapture {
  readonly stream: Writable
  readonly lines: LogLine[]
  /** Lines whose `msg` contains `text`. */
  find (text: string): LogLine[]
  /** Resolves with the first line, seen or to come, that satisfies `pred`; rejects after `ms`. */
  waitFor (pred: (line: LogLine) => boolean, ms?: number): Promise<LogLine>
}

export function captureLogs (): LogCapture {
  const lines: LogLine[] = []
  const waiters: Array<{ pred: (line: LogLine) => boolean, resolve: (line: LogLine) => void }> = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (text === '') continue
        const line = JSON.parse(text) as LogLine
        lines.push(line)
        for (const waiter of waiters.slice()) {
          if (waiter.pred(line)) {
            waiters.splice(waiters.indexOf(waiter), 1)
            waiter.resolve(line)
          }
        }
      }
      callback()
    }
  })
  return {
    stream,
    lines,
    find: (text) => lines.filter((line) => typeof line.msg === 'string' && line.msg.includes(text)),
    waitFor (pred, ms = 5000) {
      const found = lines.find(pred)
      if (found !== undefined) return Promise.resolve(found)
      const seen = deferred<LogLine>()
      waiters.push({ pred, resolve: seen.resolve })
      return within(seen.promise, ms, 'a log line')
    }
  }
}

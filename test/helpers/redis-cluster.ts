// Nodes of a deployment in child processes (test/helpers/redis-node.ts), and an SSE reader that
// keeps its Last-Event-ID and can move from node to node.
import { type ChildProcess, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const script = fileURLToPath(new URL('./redis-node.ts', import.meta.url))

export interface Node {
  readonly port: number
  readonly child: ChildProcess
  publish (topic: string, data: unknown): Promise<string>
  /** `app.sse.pipe()` of `count` events, `interval` ms apart (runs counted in the list `runs:<topic>`); settles with it. */
  pipe (topic: string, count: number, interval: number): Promise<void>
  stats (): Promise<Record<string, number>>
  memory (): Promise<number>
  close (): Promise<void>
}

export async function startNode (redisPort: number, options: { broker?: Record<string, unknown>, hub?: Record<string, unknown> } = {}): Promise<Node> {
  const child = fork(script, [], {
    execArgv: [...process.execArgv, '--expose-gc'],
    env: { ...process.env, REDIS_PORT: String(redisPort), BROKER_OPTIONS: JSON.stringify(options.broker ?? {}), HUB_OPTIONS: JSON.stringify(options.hub ?? {}) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  let n = 0
  const pending = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void }>()
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error('node exited with ' + String(code))))
    child.on('message', (message: { ready?: number, n?: number, value?: unknown, error?: string }) => {
      if (message.ready !== undefined) return resolve(message.ready)
      const waiter = pending.get(message.n!)
      pending.delete(message.n!)
      if (message.error !== undefined) waiter?.reject(new Error(message.error))
      else waiter?.resolve(message.value)
    })
  })
  const ask = (message: Record<string, unknown>): Promise<unknown> => new Promise((resolve, reject) => {
    const id = ++n
    pending.set(id, { resolve, reject })
    child.send({ ...message, n: id })
  })
  return {
    port,
    child,
    publish: (topic, data) => ask({ cmd: 'publish', topic, data }) as Promise<string>,
    pipe: async (topic, count, interval) => { await ask({ cmd: 'pipe', topic, count, interval }) },
    stats: () => ask({ cmd: 'stats' }) as Promise<Record<string, number>>,
    memory: () => ask({ cmd: 'memory' }) as Promise<number>,
    async close () {
      if (child.exitCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      await ask({ cmd: 'close' })
      await exited
    }
  }
}

export interface Frame {
  event?: string
  data?: string
  id?: string
}

/**
 * An SSE client over fetch: parses frames, keeps the last id, and can reconnect with it to any
 * node (as EventSource would, to whatever the load balancer picks).
 */
export class Reader {
  lastEventId: string | undefined
  readonly frames: Frame[] = []
  private controller: AbortController | null = null
  private waiters: Array<() => void> = []
  done: Promise<void> = Promise.resolve()

  constructor (readonly topics: string) {}

  connect (port: number): Promise<void> {
    this.controller = new AbortController()
    const headers: Record<string, string> = {}
    if (this.lastEventId !== undefined) headers['last-event-id'] = this.lastEventId
    const url = `http://127.0.0.1:${port}/s?topics=${encodeURIComponent(this.topics)}`
    return new Promise((resolve, reject) => {
      this.done = fetch(url, { headers, signal: this.controller!.signal }).then(async (res) => {
        resolve()
        const decoder = new TextDecoder()
        let text = ''
        for await (const chunk of res.body!) {
          text += decoder.decode(chunk as Uint8Array, { stream: true })
          let end
          while ((end = text.indexOf('\n\n')) !== -1) {
            this.frame(text.slice(0, end))
            text = text.slice(end + 2)
          }
        }
      }).catch((error: Error) => {
        // A node that closes under the client ends its stream: the client just stops reading.
        reject(error)
      })
    })
  }

  private frame (block: string): void {
    const frame: Frame = {}
    for (const line of block.split('\n')) {
      if (line.startsWith(':') || line === '') continue
      const at = line.indexOf(': ')
      const field = line.slice(0, at)
      const value = line.slice(at + 2)
      if (field === 'data') frame.data = frame.data === undefined ? value : frame.data + '\n' + value
      else if (field === 'id' || field === 'event') frame[field] = value
    }
    if (frame.id !== undefined) this.lastEventId = frame.id
    if (frame.data !== undefined || frame.event !== undefined) this.frames.push(frame)
    for (const waiter of this.waiters.splice(0)) waiter()
  }

  /** Resolves once `test` holds over the frames received. */
  async until (test: (frames: Frame[]) => boolean, ms = 15000): Promise<void> {
    const deadline = Date.now() + ms
    while (!test(this.frames)) {
      if (Date.now() > deadline) throw new Error(`timed out with ${this.frames.length} frames: ${JSON.stringify(this.frames.slice(-3))}`)
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve)
        setTimeout(resolve, 200).unref()
      })
    }
  }

  /** The data of the events received (resets excluded), parsed. */
  get values (): unknown[] {
    return this.frames.filter((f) => f.event === undefined).map((f) => /^[\d"{[]/.test(f.data!) ? JSON.parse(f.data!) : f.data)
  }

  get resets (): Array<Record<string, string>> {
    return this.frames.filter((f) => f.event === 'sse-reset').map((f) => JSON.parse(f.data!))
  }

  async disconnect (): Promise<void> {
    this.controller?.abort()
    await this.done.catch(() => {})
  }
}

// The demo as `npm start` runs it (node examples/demo.js, on the built package), in a child
// process on a free port (PORT=0): started, found by the line it prints, and stopped by SIGTERM.
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

export const DEMO = fileURLToPath(new URL('../../examples/demo.js', import.meta.url))

export interface DemoProcess {
  readonly port: number
  readonly url: string
  readonly child: ChildProcess
  /** The line the demo printed when it started listening. */
  readonly banner: string
  /** Lines it wrote to stderr. */
  readonly stderr: string[]
  /** SIGTERM, and the exit code once it has exited. */
  stop (): Promise<number | null>
}

/**
 * Starts `node [execArgv] examples/demo.js` with `env` over this process's environment (minus
 * REDIS_URL and NODE_NAME, which the caller sets when it wants them), and resolves once it listens.
 */
export async function startDemo (env: Record<string, string> = {}, execArgv: string[] = []): Promise<DemoProcess> {
  const base = { ...process.env }
  delete base.REDIS_URL
  delete base.NODE_NAME
  const child = spawn(process.execPath, [...execArgv, DEMO], {
    env: { ...base, PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const stderr: string[] = []
  createInterface({ input: child.stderr! }).on('line', (line) => stderr.push(line))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const banner = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! })
    lines.on('line', (line) => {
      if (line.includes('fastify-sse-stream demo')) resolve(line.trim())
    })
    void exited.then((code) => reject(new Error(`the demo exited with ${String(code)}: ${stderr.join('\n')}`)))
  })
  const port = Number(/http:\/\/127\.0\.0\.1:(\d+)\//.exec(banner)?.[1])
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    child,
    banner,
    stderr,
    async stop () {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      return exited
    }
  }
}

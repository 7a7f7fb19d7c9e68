// A real redis-server per test file, on a free loopback port, started and stopped by its pid.
// Without redis-server the Redis tests are skipped with a notice, unless CI is set: then they fail.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'

export const REDIS_SERVER = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((path) => existsSync(path)) ??
  (spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim() || undefined)

/** Options for tap: skips the file without Redis, with a notice (but not under CI, where it must run). */
export function redisAvailable (): { skip?: string } {
  if (REDIS_SERVER !== undefined) return {}
  if (process.env.CI !== undefined && process.env.CI !== '') throw new Error('redis-server is missing, and CI is set: install it (apt-get install redis-server)')
  return { skip: 'redis-server is not installed: the Redis tests are skipped' }
}

export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

export interface RedisServer {
  readonly port: number
  readonly url: string
  readonly dir: string
  pid: number
  /** Starts it again on the same port and directory (after a kill). */
  start (): Promise<void>
  /** Sends a signal to the server's pid. */
  signal (signal: NodeJS.Signals): void
  /** SIGKILL, and waits until the pid is gone. */
  kill (): Promise<void>
  /** Stops it and removes its directory. */
  stop (): Promise<void>
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Starts a redis-server; `aof` turns on the append-only file with fsync on every write. */
export async function startRedis (options: { aof?: boolean } = {}): Promise<RedisServer> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'sse-redis-'))
  const pidfile = join(dir, 'redis.pid')
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    pid: 0,
    async start () {
      rmSync(pidfile, { force: true })
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--daemonize', 'yes', '--dir', dir, '--pidfile', pidfile, '--loglevel', 'warning', '--logfile', join(dir, 'redis.log')]
      args.push(...(options.aof === true ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']))
      execFileSync(REDIS_SERVER!, args)
      // Ready once it answers PING (the pidfile comes first).
      for (let i = 0; i < 200; i++) {
        if (existsSync(pidfile)) {
          const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
          client.on('error', () => {})
          try {
            await client.connect()
            await client.ping()
            server.pid = Number(readFileSync(pidfile, 'utf8').trim())
            client.disconnect()
            return
          } catch {
            client.disconnect()
          }
        }
        await sleep(25)
      }
      throw new Error('redis-server did not start on port ' + port)
    },
    signal (signal) {
      process.kill(server.pid, signal)
    },
    async kill () {
      process.kill(server.pid, 'SIGKILL')
      for (let i = 0; i < 400 && alive(server.pid); i++) await sleep(10)
    },
    async stop () {
      if (server.pid !== 0 && alive(server.pid)) {
        try { process.kill(server.pid, 'SIGCONT') } catch {}
        await server.kill()
      }
      rmSync(dir, { recursive: true, force: true })
    }
  }
  await server.start()
  return server
}

/** A client for the broker (or for checks), on that server. */
export function client (server: RedisServer, options: Record<string, unknown> = {}): Redis {
  const c = new Redis({ port: server.port, host: '127.0.0.1', ...options })
  c.on('error', () => {})
  return c
}

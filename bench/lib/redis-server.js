// A redis-server for the Redis benchmark: its own directory, a free loopback port, no RDB
// snapshots, a pidfile; stopped by its pid. With `aof`, the append-only file with an fsync on
// every write, so that a restart on the same directory keeps every write it acknowledged.
// Also: INFO figures (command counts, CPU) and a MONITOR tap that tells client commands from the
// commands a script runs inside Redis.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'

export const REDIS_SERVER = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p)) ??
  (spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim() || undefined)

function freePort () {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

function alive (pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Parses INFO text into { key: value } (numbers where they are). */
function parseInfo (text) {
  const out = {}
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':')
    if (colon <= 0 || line.startsWith('#')) continue
    out[line.slice(0, colon)] = line.slice(colon + 1)
  }
  return out
}

export async function startRedis ({ aof = false } = {}) {
  if (REDIS_SERVER === undefined) throw new Error('redis-server is not installed')
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'sse-bench-redis-'))
  const pidfile = join(dir, 'redis.pid')
  let control = null
  const server = {
    port,
    dir,
    pid: 0,
    async start () {
      rmSync(pidfile, { force: true })
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--daemonize', 'yes', '--dir', dir,
        '--pidfile', pidfile, '--loglevel', 'warning', '--logfile', join(dir, 'redis.log'),
        ...(aof ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'])]
      execFileSync(REDIS_SERVER, args)
      for (let i = 0; i < 400; i++) {
        if (existsSync(pidfile)) {
          const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
          c.on('error', () => {})
          try {
            await c.connect()
            await c.ping()
            server.pid = Number(readFileSync(pidfile, 'utf8').trim())
            c.disconnect()
            return
          } catch {
            c.disconnect()
          }
        }
        await sleep(25)
      }
      throw new Error('redis-server did not start on port ' + port)
    },
    /** SIGKILL, and waits until the pid is gone. */
    async kill () {
      if (server.pid === 0) return
      try { process.kill(server.pid, 'SIGKILL') } catch {}
      for (let i = 0; i < 400 && alive(server.pid); i++) await sleep(10)
    },
    async stop () {
      control?.disconnect()
      control = null
      if (server.pid !== 0 && alive(server.pid)) await server.kill()
      rmSync(dir, { recursive: true, force: true })
    },
    /** The control connection (the benchmark's own commands: INFO, CONFIG RESETSTAT, FLUSHALL). */
    control () {
      if (control === null) {
        control = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 })
        control.on('error', () => {})
      }
      return control
    },
    async info (section) {
      return parseInfo(await server.control().info(section))
    },
    /** Calls per command since the last CONFIG RESETSTAT (commands run by scripts included). */
    async commandStats () {
      const info = await server.info('commandstats')
      const out = {}
      for (const [key, value] of Object.entries(info)) {
        const m = /^cmdstat_(.+)$/.exec(key)
        if (m !== null) out[m[1]] = Number(/calls=(\d+)/.exec(value)[1])
      }
      return out
    },
    async resetStats () {
      await server.control().config('RESETSTAT')
    },
    /** CPU seconds (user + sys) of the server since it started. */
    async cpuSeconds () {
      const info = await server.info('cpu')
      return Number(info.used_cpu_user) + Number(info.used_cpu_sys)
    }
  }
  process.once('exit', () => { if (server.pid !== 0 && alive(server.pid)) try { process.kill(server.pid, 'SIGKILL') } catch {} })
  await server.start()
  return server
}

/**
 * A MONITOR tap on its own connection: counts each command by name, split into those sent by
 * clients and those run inside scripts ("lua"). Its own connection's commands are not seen (MONITOR
 * does not show itself); the control connection's are left out by name (info, config, monitor).
 */
export async function monitor (port) {
  const socket = net.connect(port, '127.0.0.1')
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  socket.on('error', () => {})
  const counts = { client: {}, lua: {} }
  let carry = ''
  let ok = false
  let resolveOk
  const started = new Promise((resolve) => { resolveOk = resolve })
  socket.setEncoding('latin1')
  socket.on('data', (chunk) => {
    const text = carry + chunk
    const lines = text.split('\r\n')
    carry = lines.pop()
    for (const line of lines) {
      if (!ok) {
        if (line === '+OK') { ok = true; resolveOk() }
        continue
      }
      const m = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"/.exec(line)
      if (m === null) continue
      const name = m[2].toLowerCase()
      if (name === 'info' || name === 'config' || name === 'monitor' || name === 'ping') continue
      const side = m[1] === 'lua' ? counts.lua : counts.client
      side[name] = (side[name] ?? 0) + 1
    }
  })
  socket.write('MONITOR\r\n')
  await started
  return {
    counts,
    reset () {
      counts.client = {}
      counts.lua = {}
    },
    /** Waits a moment for lines still on their way, then returns the counts. */
    async read () {
      await sleep(100)
      return { client: { ...counts.client }, lua: { ...counts.lua } }
    },
    close () { socket.destroy() }
  }
}

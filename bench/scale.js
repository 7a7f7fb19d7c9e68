// Scale: 20,000 idle streams in one server process on loopback. Reports the heap and RSS per
// connection at 5,000 and at the full count, and how long app.close() takes to end them all.
//
//   npm run build && node bench/scale.js [--count=20000] [--step=5000] [--subject=fastify-sse-stream] [--grace=ms]
//
// The server runs in a process of its own, with `ulimit -n` raised by the shell that starts it
// (to the hard limit at most: raising that needs privileges); the clients run in separate
// processes of at most 10,000 sockets each. Every wait is bounded. Subjects: fastify-sse-stream
// (reply.sseSink(), one hello event, then idle) and fastify-floor (Fastify, hijack, raw frames).
import { fork, execSync } from 'node:child_process'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const args = Object.fromEntries(process.argv.slice(2).map((a) => /^--([^=]+)(?:=(.*))?$/.exec(a)).filter(Boolean).map((m) => [m[1], m[2] ?? true]))
const PER_CLIENT = 10_000

function hardLimit () {
  const value = execSync('ulimit -Hn', { shell: '/bin/bash' }).toString().trim()
  return value === 'unlimited' ? Infinity : Number(value)
}

/** A child of this script in `mode`, its soft fd limit raised to `fds` by the shell that starts it. */
function child (mode, fds, extra = []) {
  const proc = fork(fileURLToPath(import.meta.url), [`--mode=${mode}`, ...extra], {
    execPath: '/bin/bash',
    execArgv: ['-c', `ulimit -n ${fds} && exec "${process.execPath}" --expose-gc "$0" "$@"`],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const pending = new Map()
  let seq = 0
  let onReady
  const ready = new Promise((resolve) => { onReady = resolve })
  proc.on('message', (msg) => {
    if (msg.ready !== undefined) return onReady(msg)
    const p = pending.get(msg.id)
    pending.delete(msg.id)
    if (msg.error !== undefined) p.reject(new Error(msg.error))
    else p.resolve(msg.value)
  })
  proc.on('exit', (code) => { for (const p of pending.values()) p.reject(new Error(`${mode} exited with ${code}`)) })
  return {
    ready,
    call (cmd, body = {}, ms = 120_000) {
      const id = ++seq
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${mode}: ${cmd} took over ${ms} ms`)), ms)
        pending.set(id, { resolve: (v) => { clearTimeout(timer); resolve(v) }, reject: (e) => { clearTimeout(timer); reject(e) } })
        proc.send({ id, cmd, ...body })
      })
    },
    kill: () => proc.kill()
  }
}

// The server process.
async function serve () {
  const subject = args.subject ?? 'fastify-sse-stream'
  const { default: Fastify } = await import('fastify')
  const app = Fastify()
  if (subject === 'fastify-floor') {
    app.get('/sub', (request, reply) => {
      reply.hijack()
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      reply.raw.write('data: hello\n\n')
    })
  } else {
    const { default: sse } = await import('../dist/index.js')
    await app.register(sse, args.grace === undefined ? {} : { shutdownGrace: Number(args.grace) })
    app.get('/sub', (request, reply) => { void reply.sseSink().send({ data: 'hello' }) })
  }
  await app.listen({ port: 0, host: '127.0.0.1' })
  const memory = () => {
    globalThis.gc(); globalThis.gc()
    const m = process.memoryUsage()
    return { heapUsed: m.heapUsed, rss: m.rss }
  }
  const handlers = {
    memory,
    stats: () => app.sse?.stats().streams ?? {},
    close: async () => {
      const t0 = performance.now()
      await app.close()
      return { closeMs: performance.now() - t0 }
    }
  }
  process.on('message', async (msg) => {
    try {
      process.send({ id: msg.id, value: await handlers[msg.cmd](msg) })
    } catch (error) {
      process.send({ id: msg.id, error: String(error?.stack ?? error) })
    }
  })
  process.on('disconnect', () => process.exit(0))
  process.send({ ready: true, port: app.server.address().port })
}

// A client process: raw sockets, each ready once its hello event is in, then idle.
async function clients () {
  const sockets = []
  let closed = 0
  const openOne = (port) => new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    let text = ''
    let done = false
    const settle = (ok) => { if (!done) { done = true; resolve(ok) } }
    socket.setEncoding('latin1')
    socket.on('connect', () => socket.write('GET /sub HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n'))
    socket.on('data', (chunk) => {
      if (done) return
      text += chunk
      if (text.includes('data: hello')) settle(true)
    })
    socket.on('error', () => settle(false))
    socket.on('close', () => { closed++; settle(false) })
    sockets.push(socket)
  })
  const handlers = {
    async open ({ port, count }) {
      let ok = 0
      let next = 0
      await Promise.all(Array.from({ length: 200 }, async () => {
        while (next < count) {
          next++
          if (await openOne(port)) ok++
        }
      }))
      return { ok }
    },
    // Resolves once every socket has been closed by the server (or after `ms`).
    async waitClosed ({ ms }) {
      const deadline = Date.now() + ms
      while (closed < sockets.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
      return { closed, total: sockets.length }
    },
    destroy () {
      for (const s of sockets) s.destroy()
      return {}
    }
  }
  process.on('message', async (msg) => {
    try {
      process.send({ id: msg.id, value: await handlers[msg.cmd](msg) })
    } catch (error) {
      process.send({ id: msg.id, error: String(error?.stack ?? error) })
    }
  })
  process.on('disconnect', () => process.exit(0))
  process.send({ ready: true })
}

async function main () {
  const hard = hardLimit()
  const wanted = Number(args.count ?? 20_000)
  const step = Number(args.step ?? 5_000)
  // The server needs a descriptor per stream and a few of its own.
  const count = Math.min(wanted, hard - 64)
  if (count < wanted) console.log(`ulimit -Hn is ${hard}: ${count} streams, not ${wanted} (raising the hard limit needs privileges)`)
  const server = child('server', Math.min(hard, count + 1024), [
    ...(args.subject === undefined ? [] : [`--subject=${args.subject}`]),
    ...(args.grace === undefined ? [] : [`--grace=${args.grace}`])
  ])
  const { port } = await server.ready
  const pool = []
  const mb = (b) => (b / 1048576).toFixed(1) + ' MiB'
  try {
    // Warm-up: the code paths compiled and the pools made before the baseline.
    const warm = child('client', 2048)
    await warm.ready
    await warm.call('open', { port, count: 500 })
    await warm.call('destroy')
    warm.kill()
    await new Promise((resolve) => setTimeout(resolve, 500))
    const base = await server.call('memory')
    console.log(`baseline heap ${mb(base.heapUsed)}, RSS ${mb(base.rss)}`)
    let opened = 0
    const rows = []
    const t0 = performance.now()
    while (opened < count) {
      const n = Math.min(step, count - opened)
      // A client process per 10,000 sockets.
      let c = pool.at(-1)
      if (c === undefined || c.held + n > PER_CLIENT) {
        c = child('client', PER_CLIENT + 256)
        c.held = 0
        await c.ready
        pool.push(c)
      }
      const { ok } = await c.call('open', { port, count: n })
      c.held += n
      opened += n
      if (ok !== n) throw new Error(`${n - ok} of ${n} streams failed to open`)
      const m = await server.call('memory')
      const row = { streams: opened, heapPerConn: Math.round((m.heapUsed - base.heapUsed) / opened), rssPerConn: Math.round((m.rss - base.rss) / opened) }
      rows.push(row)
      console.log(`${opened} streams (${Math.round(performance.now() - t0)} ms): heap ${row.heapPerConn} B/conn, RSS ${row.rssPerConn} B/conn`)
    }
    const stats = await server.call('stats')
    if (stats.open !== undefined) console.log(`app.sse.stats(): ${stats.open} open`)
    const { closeMs } = await server.call('close')
    const closedBy = await Promise.all(pool.map((c) => c.call('waitClosed', { ms: 5000 })))
    const all = closedBy.reduce((n, r) => n + r.closed, 0)
    console.log(`app.close() with ${opened} streams: ${Math.round(closeMs)} ms; ${all} of ${opened} client sockets closed by the server`)
    const first = rows.find((r) => r.streams >= 5000) ?? rows[0]
    const last = rows.at(-1)
    console.log(JSON.stringify({ subject: args.subject ?? 'fastify-sse-stream', count: opened, at5000: first, atFull: last, closeMs: Math.round(closeMs), closedByServer: all }))
  } finally {
    for (const c of pool) { c.call('destroy').catch(() => {}); setTimeout(() => c.kill(), 200).unref() }
    setTimeout(() => server.kill(), 300).unref()
  }
}

if (args.mode === 'server') await serve()
else if (args.mode === 'client') await clients()
else await main()

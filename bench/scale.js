// Scale: 20,000 idle streams in one server process on loopback. Reports the heap and RSS per
// connection (stream) at every step (5,000, 10,000, ...) and how long app.close() takes to end them all.
//
//   npm run build && node bench/scale.js [--count=20000] [--step=5000] [--subject=fastify-sse-stream] [--grace=ms] [--http2]
//     [--dist=DIR (this plugin from another build)]
//
// HTTP/1.1 (the default): a socket per stream. The server runs in a process of its own, with
// `ulimit -n` raised by the shell that starts it (to the hard limit at most: raising that needs
// privileges, so the count stops a little short of that limit); the clients run in separate
// processes of at most 10,000 sockets each.
// --http2: h2c (`Fastify({ http2: true })`), the server's maxConcurrentStreams raised to
// --per-session (1,000 by default); each client session (one socket) carries that many streams,
// so 20,000 streams take 20 sockets and no fd limit applies. A client closes a session once the
// server has ended all its streams (Fastify's close waits for open sessions on Node 20).
// Every wait is bounded. Subjects: fastify-sse-stream (reply.sseSink(), one hello event, then
// idle) and fastify-floor (Fastify, hijack, raw frames).
import { fork, execSync } from 'node:child_process'
import http2 from 'node:http2'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
const args = Object.fromEntries(process.argv.slice(2).map((a) => /^--([^=]+)(?:=(.*))?$/.exec(a)).filter(Boolean).map((m) => [m[1], m[2] ?? true]))
const PER_CLIENT = 10_000
const HTTP2 = args.http2 === true
const PER_SESSION = Number(args['per-session'] ?? 1000)

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
  // h2c, each session allowed PER_SESSION streams (and the memory they take; Node's default of
  // 10 MB per session refuses new streams well before 1,000 idle ones).
  const app = HTTP2
    ? Fastify({ http2: true, http: { settings: { maxConcurrentStreams: PER_SESSION }, maxSessionMemory: 1000 } })
    : Fastify()
  if (subject === 'fastify-floor') {
    app.get('/sub', (request, reply) => {
      reply.hijack()
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
      reply.raw.write('data: hello\n\n')
    })
  } else {
    const { default: sse } = await import(args.dist === undefined ? '../dist/index.js' : 'file://' + path.resolve(String(args.dist), 'index.js'))
    await app.register(sse, args.grace === undefined ? {} : { shutdownGrace: Number(args.grace) })
    app.get('/sub', (request, reply) => { void reply.sseSink().send({ data: 'hello' }) })
  }
  // The phases of app.close(): the plugin's preClose (every stream ended and flushed) runs before
  // this hook; Fastify then closes the server and its connections, and runs the onClose hooks.
  const phases = {}
  app.addHook('preClose', (done) => { phases.preClose = performance.now(); done() })
  app.addHook('onClose', (instance, done) => { phases.onClose = performance.now(); done() })
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
      const cpu0 = process.cpuUsage()
      await app.close()
      const end = performance.now()
      const cpu = process.cpuUsage(cpu0)
      return { closeCpuMs: (cpu.user + cpu.system) / 1000, closeMs: end - t0, preCloseMs: (phases.preClose ?? t0) - t0, serverCloseMs: (phases.onClose ?? end) - (phases.preClose ?? t0) }
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
  // HTTP/2: streams on shared sessions, PER_SESSION each.
  const sessions = []
  const openStream = (port) => new Promise((resolve) => {
    let session = sessions.at(-1)
    if (session === undefined || session.streams >= PER_SESSION) {
      session = http2.connect(`http://127.0.0.1:${port}`, { maxSessionMemory: 1000, settings: { enablePush: false } })
      session.streams = 0
      session.ended = 0
      session.on('error', () => {})
      sessions.push(session)
    }
    session.streams++
    const stream = session.request({ ':path': '/sub', accept: 'text/event-stream' })
    let text = ''
    let done = false
    const settle = (ok) => { if (!done) { done = true; resolve(ok) } }
    stream.setEncoding('latin1')
    stream.on('data', (chunk) => {
      if (done) return
      text += chunk
      if (text.includes('data: hello')) settle(true)
    })
    stream.on('error', () => settle(false))
    stream.on('close', () => {
      closed++
      settle(false)
      // A client leaves a session once the server has ended all its streams (as one would on the
      // GOAWAY of a closing server): Fastify's close waits for the sessions on Node 20.
      if (++session.ended === session.streams) session.close()
    })
    sockets.push(stream)
  })
  const handlers = {
    async open ({ port, count }) {
      let ok = 0
      let next = 0
      await Promise.all(Array.from({ length: 200 }, async () => {
        while (next < count) {
          next++
          if (await (HTTP2 ? openStream(port) : openOne(port))) ok++
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
      for (const session of sessions) session.destroy()
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
  // Over HTTP/1.1 the server needs a descriptor per stream and a few of its own.
  const count = HTTP2 ? wanted : Math.min(wanted, hard - 64)
  if (count < wanted) console.log(`ulimit -Hn is ${hard}: ${count} streams, not ${wanted} (raising the hard limit needs privileges)`)
  const flags = HTTP2 ? ['--http2', `--per-session=${PER_SESSION}`] : []
  const server = child('server', Math.min(hard, count + 1024), [
    ...flags,
    ...(args.subject === undefined ? [] : [`--subject=${args.subject}`]),
    ...(args.grace === undefined ? [] : [`--grace=${args.grace}`]),
    ...(args.dist === undefined ? [] : [`--dist=${args.dist}`])
  ])
  const { port } = await server.ready
  const pool = []
  const mb = (b) => (b / 1048576).toFixed(1) + ' MiB'
  try {
    // Warm-up: the code paths compiled and the pools made before the baseline.
    const warm = child('client', 2048, flags)
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
        c = child('client', PER_CLIENT + 256, flags)
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
    const { closeMs, closeCpuMs, preCloseMs, serverCloseMs } = await server.call('close')
    const closedBy = await Promise.all(pool.map((c) => c.call('waitClosed', { ms: 5000 })))
    const all = closedBy.reduce((n, r) => n + r.closed, 0)
    console.log(`app.close() with ${opened} streams: ${Math.round(closeMs)} ms (the streams' shutdown ${Math.round(preCloseMs)} ms, then the server's close ${Math.round(serverCloseMs)} ms; server CPU ${Math.round(closeCpuMs)} ms); ${all} of ${opened} client ${HTTP2 ? 'streams' : 'sockets'} closed by the server`)
    console.log(JSON.stringify({ subject: args.subject ?? 'fastify-sse-stream', http2: HTTP2, count: opened, rows, closeMs: Math.round(closeMs), closeCpuMs: Math.round(closeCpuMs), preCloseMs: Math.round(preCloseMs), closedByServer: all }))
  } finally {
    for (const c of pool) { c.call('destroy').catch(() => {}); setTimeout(() => c.kill(), 200).unref() }
    setTimeout(() => server.kill(), 300).unref()
  }
}

if (args.mode === 'server') await serve()
else if (args.mode === 'client') await clients()
else await main()

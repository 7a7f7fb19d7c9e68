// Benchmarks this plugin against a hand-written node:http baseline and its peers.
//
//   npm run bench                 full run: 3 runs of every scenario, medians (about 15 minutes)
//   npm run bench -- --quick      smoke run: one small run of each (about a minute)
//
// Options: --runs=N  --subjects=a,b  --scenarios=throughput,fanout,idle,connect,slow,storm
//          --only=a,b (subject and scenario names mixed: --only=idle,connect,fastify-sse-stream,fastify-floor)
//          --only=redis (the Redis scenario alone, bench/redis.js: its own redis-server and subjects;
//                     skipped with a notice when redis-server is not installed)
//          --redis-phases=fanout,commands,restart (a part of it)
//          --fanout-clients=N,M  --idle-clients=N  --connect-ms=N  --storm-clients=N
//                     (override the counts of the chosen mode)
//          --profile  (every server runs with --cpu-prof into bench/out/prof/; --profile-us=N samples
//                      every N µs instead of every 1000)
//          --alloc-prof[=N] (connect: each server's allocations, sampled every N bytes, into bench/out/prof/,
//                      the last run's; sampling slows the servers, so the run's figures are not comparable)
//          --server-flags=A,B (more Node or V8 flags for every server: --trace-deopt, say)
//          --dist=DIR (load this plugin from DIR/index.js: a build with a proposed patch)
//          --label=TEXT (names the JSON and Markdown output)
//
// Each subject runs in its own server process; the load comes from separate client processes
// over 127.0.0.1. Subjects never take load at the same time (in the connect scenario their servers
// are up together, and the client loads one at a time, in turns). Every wait is bounded.
import { fork } from 'node:child_process'
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { median, percentile, concatSorted } from './lib/stats.js'
import { runRedis, redisAvailable } from './redis.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const outDir = path.join(here, 'out')

const SUBJECTS = {
  'node-http': 'node:http (baseline)',
  'fastify-floor': 'Fastify floor (hijack + raw frames)',
  'fastify-sse-stream': 'fastify-sse-stream',
  'fastify-sse-stream-hub': 'fastify-sse-stream hub',
  'fastify-sse': '@fastify/sse 0.6.0',
  'fastify-sse-replay': '@fastify/sse 0.6.0 + replay',
  'fastify-sse-v2': 'fastify-sse-v2 4.2.2',
  'better-sse': 'better-sse 0.16.1',
  // The floor again, in a process of its own: two identical subjects in the same run show what
  // the measurement's noise is, beside the gaps it reports (the connect scenario only).
  'fastify-floor-control': 'Fastify floor again (noise control)'
}
const BASELINE = 'node-http'
// What Fastify itself costs: the limit for any Fastify plugin (issues 10 and 13).
const FLOOR = 'fastify-floor'
const OURS = 'fastify-sse-stream'
// The hub (issue 10): publish() and sseSubscribe(), measured where there is a broadcast.
const HUB = 'fastify-sse-stream-hub'
const CONTROL = 'fastify-floor-control'
const PEERS = ['fastify-sse', 'fastify-sse-v2', 'better-sse']
// The phases each subject takes part in, where not all but the resume storm. The storm needs
// resume by Last-Event-ID: the hub, and @fastify/sse's README replay idiom (better-sse and
// fastify-sse-v2 keep no history, and the others are measured without ids).
const PHASES = {
  [HUB]: ['fanout', 'idle', 'storm'],
  'patched-hub': ['fanout', 'idle', 'storm'],
  'fastify-sse-replay': ['storm'],
  'fastify-floor-control': ['connect']
}
// Subjects that send no hello frame: a connection is ready once a 200 head is in.
const READY_ON_HEAD = new Set([HUB, 'patched-hub'])

function parseArgs (argv) {
  const args = {}
  for (const a of argv) {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(a)
    if (m !== null) args[m[1]] = m[2] ?? true
  }
  return args
}

const args = parseArgs(process.argv.slice(2))
const quick = args.quick === true
const CONFIG = quick
  ? {
      runs: 1,
      throughput: { events: 20_000 },
      fanout: { clients: [200], events: 50, rate: 50 },
      idle: { clients: 500 },
      connect: { concurrency: 50, durationMs: 1500, warmMs: 500, slices: 2 },
      slow: { events: 500_000, stallMs: 1000 },
      storm: { clients: 200, warm: 5, behind: 100, catchUpMs: 10_000 }
    }
  : {
      runs: 3,
      throughput: { events: 200_000 },
      fanout: { clients: [1000, 5000], events: 200, rate: 50 },
      idle: { clients: 5000 },
      connect: { concurrency: 50, durationMs: 5000, warmMs: 2000, slices: 10 },
      slow: { events: 500_000, stallMs: 3000 },
      // Issue 10: 1,000 clients reconnect at once, each 100 events behind.
      storm: { clients: 1000, warm: 10, behind: 100, catchUpMs: 10_000 }
    }
if (args.runs !== undefined) CONFIG.runs = Number(args.runs)
if (args['fanout-clients'] !== undefined) CONFIG.fanout.clients = String(args['fanout-clients']).split(',').map(Number)
if (args['idle-clients'] !== undefined) CONFIG.idle.clients = Number(args['idle-clients'])
if (args['connect-ms'] !== undefined) CONFIG.connect.durationMs = Number(args['connect-ms'])
if (args['connect-warm-ms'] !== undefined) CONFIG.connect.warmMs = Number(args['connect-warm-ms'])
// Turns per subject: an even number, so that the ABBA order is balanced.
if (args['connect-slices'] !== undefined) CONFIG.connect.slices = 2 * Math.max(1, Math.round(Number(args['connect-slices']) / 2))
if (args['storm-clients'] !== undefined) CONFIG.storm.clients = Number(args['storm-clients'])
const ALL_SCENARIOS = ['throughput', 'fanout', 'idle', 'connect', 'slow', 'storm', 'redis']
const takesPart = (subject, scenario) => (PHASES[subject] ?? ['throughput', 'fanout', 'idle', 'connect', 'slow']).includes(scenario)
// --only takes subject and scenario names in one list; --subjects and --scenarios still work.
const only = args.only === undefined ? [] : String(args.only).split(',')
for (const name of only) {
  if (!(name in SUBJECTS) && !ALL_SCENARIOS.includes(name) && name !== 'patched' && name !== 'patched-hub') {
    throw new Error(`--only: unknown name ${name}; subjects: ${Object.keys(SUBJECTS)}; scenarios: ${ALL_SCENARIOS}`)
  }
}
const onlySubjects = only.filter((n) => !ALL_SCENARIOS.includes(n))
const onlyScenarios = only.filter((n) => ALL_SCENARIOS.includes(n))
const subjects = args.subjects !== undefined
  ? String(args.subjects).split(',')
  : onlySubjects.length > 0 ? onlySubjects : Object.keys(SUBJECTS)
const scenarios = args.scenarios !== undefined
  ? String(args.scenarios).split(',')
  : onlyScenarios.length > 0 ? onlyScenarios : ALL_SCENARIOS
for (const s of scenarios) if (!ALL_SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}; one of ${ALL_SCENARIOS}`)
const profDir = path.join(outDir, 'prof')
// --dist adds the subjects 'patched' and 'patched-hub': this plugin (and its hub) loaded from another
// build, measured beside ours.
const dist = args.dist === undefined ? undefined : path.resolve(String(args.dist), 'index.js')
if (dist !== undefined) {
  SUBJECTS.patched = 'fastify-sse-stream + patch'
  SUBJECTS['patched-hub'] = 'fastify-sse-stream hub + patch'
  if (args.subjects === undefined && onlySubjects.length === 0) subjects.splice(3, 0, 'patched')
}
for (const s of subjects) if (!(s in SUBJECTS)) throw new Error(`unknown subject ${s}; one of ${Object.keys(SUBJECTS)}`)

// ---------------------------------------------------------------------------------------------
// Child processes: every one is tracked and killed on the way out, whatever happens.

const children = new Set()

function killAll () {
  for (const child of children) {
    try { child.kill('SIGKILL') } catch {}
  }
  children.clear()
}
process.on('exit', killAll)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    killAll()
    process.exit(130)
  })
}

function spawn (script, argv, execArgv, env) {
  const child = fork(path.join(here, script), argv, {
    execArgv,
    env: { ...process.env, ...env },
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

function waitMessage (child, pred, ms, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { cleanup(); reject(new Error(`timed out after ${ms} ms waiting for ${what}`)) }, ms)
    const onMessage = (msg) => {
      if (msg?.type === 'error' || (msg?.error !== undefined && pred(msg))) {
        cleanup()
        reject(new Error(`${what}: ${msg.error}`))
      } else if (pred(msg)) {
        cleanup()
        resolve(msg)
      }
    }
    const onExit = (code) => { cleanup(); reject(new Error(`${what}: process exited (${code})`)) }
    const cleanup = () => {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

async function stop (child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
  try { child.send({ cmd: 'exit', id: -1 }) } catch { child.kill('SIGKILL') }
  await exited
  clearTimeout(timer)
}

let rpcId = 0

async function startServer (subject) {
  const execArgv = ['--expose-gc']
  // --server-flags=A,B: more Node or V8 flags for every server (--trace-deopt, say).
  if (args['server-flags'] !== undefined) execArgv.push(...String(args['server-flags']).split(','))
  if (args.profile === true) {
    mkdirSync(profDir, { recursive: true })
    const interval = args['profile-us'] === undefined || args['profile-us'] === true ? 1000 : Number(args['profile-us'])
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-interval=${interval}`)
  }
  const child = spawn('server.js', [subject], execArgv, subject.startsWith('patched') ? { BENCH_DIST: dist } : {})
  let port
  try {
    ({ port } = await waitMessage(child, (m) => m?.ready === true, 15_000, `${subject} server start`))
  } catch (err) {
    // A server that did not come up is stopped now, not left running through the other scenarios.
    await stop(child)
    throw err
  }
  const call = async (msg, ms = 120_000) => {
    const id = ++rpcId
    child.send({ ...msg, id })
    const reply = await waitMessage(child, (m) => m?.id === id, ms, `${subject} server ${msg.cmd}`)
    return reply.value
  }
  return { child, port, call }
}

async function startClient () {
  const child = spawn('client.js', [], [])
  await waitMessage(child, (m) => m?.type === 'up', 10_000, 'client start')
  return {
    child,
    run: (msg) => child.send({ cmd: 'run', ...msg }),
    finish: (graceMs, more) => child.send({ cmd: 'finish', graceMs, ...more }),
    go: (more) => child.send({ cmd: 'go', ...more }),
    ready: (ms) => waitMessage(child, (m) => m?.type === 'ready', ms, 'clients ready'),
    step: (type, ms) => waitMessage(child, (m) => m?.type === type, ms, `clients ${type}`),
    result: (ms) => waitMessage(child, (m) => m?.type === 'result', ms, 'client result').then((m) => m.result)
  }
}

async function withProcesses (subject, nClients, fn) {
  const server = await startServer(subject)
  const clients = []
  try {
    for (let i = 0; i < nClients; i++) clients.push(await startClient())
    return await fn(server, clients)
  } finally {
    await Promise.all(clients.map((c) => stop(c.child)))
    await stop(server.child)
  }
}

function split (total, parts) {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0))
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------
// Scenarios: each returns one run's metrics for one subject.

async function throughput (subject) {
  const n = CONFIG.throughput.events
  return withProcesses(subject, 1, async (server, [client]) => {
    await server.call({ cmd: 'cpu-start' })
    client.run({ mode: 'stream', port: server.port, path: `/stream?n=${n}`, expect: n, timeoutMs: 120_000 })
    const r = await client.result(130_000)
    const cpu = await server.call({ cmd: 'cpu-stop' })
    // Rated from the first event to the last: the connection set-up is the connect scenario's.
    const secs = (r.ms - r.firstMs) / 1000
    return {
      eventsPerSec: (r.frames - 1) / secs,
      mbPerSec: r.bytes / 1e6 / secs,
      cpuMsPer1k: cpu.cpuUs / 1000 / (r.frames / 1000),
      userMsPer1k: cpu.userUs / 1000 / (r.frames / 1000),
      delivered: r.frames / n
    }
  })
}

async function fanout (subject, count) {
  const { events, rate } = CONFIG.fanout
  const nClients = count >= 1000 ? 2 : 1
  return withProcesses(subject, nClients, async (server, clients) => {
    const shares = split(count, nClients)
    const readyOnHead = READY_ON_HEAD.has(subject)
    clients.forEach((c, i) => c.run({ mode: 'fan', port: server.port, count: shares[i], expect: events, timeoutMs: 60_000, readyOnHead }))
    const ready = await Promise.all(clients.map((c) => c.ready(70_000)))
    const connected = ready.reduce((s, r) => s + r.ready, 0)
    await delay(200)
    await server.call({ cmd: 'cpu-start' })
    const { durationMs, startMono, period, emitRate } = await server.call({ cmd: 'broadcast', count: events, rate }, 120_000)
    clients.forEach((c) => c.finish(5000, { startMono, period }))
    const results = await Promise.all(clients.map((c) => c.result(20_000)))
    const cpu = await server.call({ cmd: 'cpu-stop' })
    const delivered = results.reduce((s, r) => s + r.delivered, 0)
    const sorted = concatSorted(results.map((r) => r.samples))
    // Lag behind schedule: receive time minus the time the event was due (not emitted), so a
    // broadcaster that falls behind shows it. Achieved: the rate at which events reached their
    // last client, from the first event's arrival to the last's.
    const lag = concatSorted(results.map((r) => r.lag))
    const arrival = new Float64Array(events)
    for (const r of results) for (let i = 0; i < events; i++) arrival[i] = Math.max(arrival[i], r.lastArrival[i])
    const span = arrival[events - 1] - arrival[0]
    return {
      connected: connected / count,
      delivered: delivered / (count * events),
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: sorted.length === 0 ? NaN : sorted[sorted.length - 1],
      cpuUsPerDelivery: delivered === 0 ? NaN : cpu.cpuUs / delivered,
      userUsPerDelivery: delivered === 0 ? NaN : cpu.userUs / delivered,
      broadcastMs: durationMs,
      emitRate,
      achievedRate: arrival[0] > 0 && arrival[events - 1] > 0 && span > 0 ? (events - 1) / (span / 1000) : NaN,
      lagP50: percentile(lag, 50),
      lagP99: percentile(lag, 99)
    }
  })
}

async function idle (subject) {
  const count = CONFIG.idle.clients
  const nClients = count >= 1000 ? 2 : 1
  return withProcesses(subject, nClients, async (server, clients) => {
    const before = await server.call({ cmd: 'memory' })
    const shares = split(count, nClients)
    clients.forEach((c, i) => c.run({ mode: 'idle', port: server.port, count: shares[i], timeoutMs: 60_000, readyOnHead: READY_ON_HEAD.has(subject) }))
    const ready = await Promise.all(clients.map((c) => c.ready(70_000)))
    const connected = ready.reduce((s, r) => s + r.ready, 0)
    await delay(500)
    const after = await server.call({ cmd: 'memory' })
    clients.forEach((c) => c.finish(0))
    await Promise.all(clients.map((c) => c.result(20_000)))
    return {
      connected: connected / count,
      heapPerConn: (after.heapUsed - before.heapUsed) / connected,
      rssPerConn: (after.rss - before.rss) / connected,
      externalPerConn: (after.external - before.external) / connected
    }
  })
}

/**
 * Connect rate. Every subject of the run is measured in the same window, in turns: a server per
 * subject, all up at once, and one client that opens, reads the first event and closes
 * connections on one of them at a time, in `slices` short turns per subject (ABBA order, so that a
 * machine that speeds up or slows down over the run weighs on each subject alike). Measured one
 * after the other in 5 s windows, two identical subjects differed by up to 2 % in one run. Returns
 * each subject's metrics, summed over its turns.
 */
async function connectAll (order, log) {
  const { concurrency, durationMs, warmMs, slices } = CONFIG.connect
  const servers = new Map()
  let client
  // A subject that fails (its server does not start, a turn fails) is left out of this run, with a
  // line in the log; the others go on.
  const failed = (subject, err) => {
    log(`  connect ${subject}: FAILED ${err.message}`)
    const server = servers.get(subject)
    servers.delete(subject)
    return server === undefined ? undefined : stop(server.child)
  }
  try {
    client = await startClient()
    for (const subject of order) {
      try {
        servers.set(subject, await startServer(subject))
      } catch (err) {
        await failed(subject, err)
      }
    }
    // Warm-up first, unmeasured: compiling and optimising the code a connect runs is paid once per
    // process, not per connect, and a subject with more code would pay more of it in the window.
    if (warmMs > 0) {
      for (const subject of [...servers.keys()]) {
        try {
          client.run({ mode: 'connect', port: servers.get(subject).port, concurrency, durationMs: warmMs })
          await client.result(warmMs + 30_000)
        } catch (err) {
          await failed(subject, err)
        }
      }
    }
    // --alloc-prof: each server samples its allocations over the measured turns, written to
    // bench/out/prof/<subject>.heapprofile; --alloc-prof=N samples every N bytes (1024 by default).
    if (args['alloc-prof'] !== undefined) {
      mkdirSync(profDir, { recursive: true })
      for (const server of servers.values()) await server.call({ cmd: 'alloc-start', interval: args['alloc-prof'] === true ? 1024 : Number(args['alloc-prof']) })
      // (Sampling slows the servers: a run with --alloc-prof is for its profiles, not its figures.)
    }
    const sums = new Map(order.map((s) => [s, { completed: 0, elapsedMs: 0, cpuUs: 0, userUs: 0, clientCpuUs: 0, errors: 0, ttfe: [] }]))
    const sliceMs = durationMs / slices
    for (let i = 0; i < slices; i++) {
      for (const subject of i % 2 === 0 ? order : [...order].reverse()) {
        const server = servers.get(subject)
        if (server === undefined) continue
        const sum = sums.get(subject)
        let r, cpu
        try {
          await server.call({ cmd: 'cpu-start' })
          client.run({ mode: 'connect', port: server.port, concurrency, durationMs: sliceMs })
          r = await client.result(sliceMs + 30_000)
          // The server's share of the last connections' closes lands in its turn.
          await delay(20)
          cpu = await server.call({ cmd: 'cpu-stop' })
        } catch (err) {
          await failed(subject, err)
          continue
        }
        sum.completed += r.completed
        sum.elapsedMs += r.elapsedMs
        sum.cpuUs += cpu.cpuUs
        sum.userUs += cpu.userUs
        sum.clientCpuUs += r.clientCpuUs
        sum.errors += r.errors
        sum.ttfe.push(r.ttfe)
      }
    }
    if (args['alloc-prof'] !== undefined) {
      for (const [subject, server] of servers) await server.call({ cmd: 'alloc-stop', file: path.join(profDir, `${subject}.heapprofile`) })
    }
    const out = {}
    for (const [subject, sum] of sums) {
      if (!servers.has(subject)) continue
      const sorted = concatSorted(sum.ttfe)
      out[subject] = {
        connPerSec: sum.completed / (sum.elapsedMs / 1000),
        cpuUsPerConn: sum.cpuUs / sum.completed,
        userUsPerConn: sum.userUs / sum.completed,
        clientCpuUsPerConn: sum.clientCpuUs / sum.completed,
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
        errors: sum.errors
      }
    }
    return out
  } finally {
    if (client !== undefined) await stop(client.child)
    for (const server of servers.values()) await stop(server.child)
  }
}

async function slow (subject) {
  const { events, stallMs } = CONFIG.slow
  return withProcesses(subject, 1, async (server, [client]) => {
    const before = await server.call({ cmd: 'memory' })
    const { pulled: pulled0 } = await server.call({ cmd: 'pulled' })
    client.run({ mode: 'slow', port: server.port, path: `/stream?n=${events}` })
    await client.ready(10_000)
    await delay(stallMs)
    const { pulled } = await server.call({ cmd: 'pulled' })
    const after = await server.call({ cmd: 'memory' })
    client.finish(0)
    await client.result(10_000)
    return {
      pulled: pulled - pulled0,
      heapGrowthMiB: (after.heapUsed - before.heapUsed) / 2 ** 20,
      rssGrowthMiB: (after.rss - before.rss) / 2 ** 20
    }
  })
}

// Resume storm (issue 10): `clients` subscribe and take `warm` events; all drop at once; `behind`
// events are published while they are away; then all reconnect at the same moment with their
// Last-Event-ID. Caught up: a client has the newest event. Exact: it got every missed event once,
// in order, and no sse-reset.
async function storm (subject) {
  const { clients: count, warm, behind, catchUpMs } = CONFIG.storm
  const nClients = count >= 1000 ? 2 : 1
  return withProcesses(subject, nClients, async (server, clients) => {
    const shares = split(count, nClients)
    const readyOnHead = READY_ON_HEAD.has(subject)
    clients.forEach((c, i) => c.run({ mode: 'storm', port: server.port, count: shares[i], warm, timeoutMs: 60_000, catchUpMs, readyOnHead }))
    const ready = (await Promise.all(clients.map((c) => c.ready(70_000)))).reduce((s, r) => s + r.ready, 0)
    await delay(200)
    await server.call({ cmd: 'broadcast', count: warm, rate: 100, first: 0 })
    clients.forEach((c) => c.finish(5000))
    const dropped = await Promise.all(clients.map((c) => c.step('dropped', 10_000)))
    const warmed = dropped.reduce((s, d) => s + d.warmed, 0)
    const withId = dropped.reduce((s, d) => s + d.withId, 0)
    // Let the server see every close before the missed events are published.
    await delay(500)
    await server.call({ cmd: 'broadcast', count: behind, rate: 1000, first: warm })
    await server.call({ cmd: 'cpu-start' })
    clients.forEach((c) => c.go({ head: warm + behind - 1 }))
    const results = await Promise.all(clients.map((c) => c.result(catchUpMs + 10_000)))
    const cpu = await server.call({ cmd: 'cpu-stop' })
    const sum = (key) => results.reduce((s, r) => s + r[key], 0)
    const sorted = concatSorted(results.map((r) => r.times))
    const caughtUp = sum('caughtUp')
    return {
      connected: ready / count,
      warmed: warmed / count,
      withId: withId / count,
      caughtUp: caughtUp / count,
      exact: sum('exact') / count,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      // The time until every client was caught up, only when every one was.
      allMs: caughtUp === count ? sorted[sorted.length - 1] : NaN,
      resets: sum('resets'),
      gaps: sum('gaps'),
      duplicates: sum('duplicates'),
      cpuMs: cpu.cpuUs / 1000,
      cpuUsPerReplayed: cpu.cpuUs / (count * behind)
    }
  })
}

// ---------------------------------------------------------------------------------------------
// Tables.

const fmt = {
  int: (x) => Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a',
  f1: (x) => Number.isFinite(x) ? x.toFixed(1) : 'n/a',
  f2: (x) => Number.isFinite(x) ? x.toFixed(2) : 'n/a',
  f3: (x) => Number.isFinite(x) ? x.toFixed(3) : 'n/a',
  pct: (x) => Number.isFinite(x) ? (x * 100).toFixed(x === 1 ? 0 : 2) + ' %' : 'n/a',
  ratio: (x) => Number.isFinite(x) ? x.toFixed(2) + '×' : 'n/a'
}

/**
 * columns: [title, key, formatter, withRatio]. A column with a ratio gets 'vs base' (raw node:http)
 * and 'vs floor' (the Fastify floor), each when that subject is in the table.
 */
function table (rows, columns) {
  const base = rows[BASELINE]
  const floor = rows[FLOOR]
  const head = ['Subject']
  for (const [title, , , withRatio] of columns) {
    head.push(title)
    if (withRatio) {
      if (base !== undefined) head.push('vs base')
      if (floor !== undefined) head.push('vs floor')
    }
  }
  const lines = ['| ' + head.join(' | ') + ' |', '|' + head.map((_, i) => i === 0 ? ' --- ' : ' ---: ').join('|') + '|']
  for (const subject of subjects) {
    const row = rows[subject]
    if (row === undefined) continue
    const cells = [subject === OURS ? `**${SUBJECTS[subject]}**` : SUBJECTS[subject]]
    for (const [, key, f, withRatio] of columns) {
      cells.push(f(row[key]))
      if (withRatio) {
        if (base !== undefined) cells.push(fmt.ratio(row[key] / base[key]))
        if (floor !== undefined) cells.push(fmt.ratio(row[key] / floor[key]))
      }
    }
    lines.push('| ' + cells.join(' | ') + ' |')
  }
  return lines.join('\n')
}

const TABLES = {
  throughput: () => [`### Throughput: one client, ${fmt.int(CONFIG.throughput.events)} events of ~100 B JSON from an async generator`, [
    ['events/s', 'eventsPerSec', fmt.int, true],
    ['MB/s', 'mbPerSec', fmt.f1, false],
    ['CPU ms / 1k events', 'cpuMsPer1k', fmt.f2, true],
    ['of which user ms', 'userMsPer1k', fmt.f2, true],
    ['delivered', 'delivered', fmt.pct, false]
  ]],
  fanout: (count) => [`### Fan-out: ${fmt.int(count)} clients, ${CONFIG.fanout.events} events broadcast at ${CONFIG.fanout.rate}/s`, [
    ['p50 ms', 'p50', fmt.f2, false],
    ['p99 ms', 'p99', fmt.f2, true],
    ['max ms', 'max', fmt.f1, false],
    ['delivered', 'delivered', fmt.pct, false],
    ['CPU µs / delivery', 'cpuUsPerDelivery', fmt.f2, true],
    ['of which user µs', 'userUsPerDelivery', fmt.f2, true],
    ['broadcast s', 'broadcastMs', (x) => fmt.f2(x / 1000), false],
    ['emitted/s', 'emitRate', fmt.f1, false],
    ['achieved/s', 'achievedRate', fmt.f1, false],
    ['p99 behind schedule ms', 'lagP99', fmt.f1, true]
  ]],
  idle: () => [`### Idle memory: ${fmt.int(CONFIG.idle.clients)} idle streams, per connection after GC`, [
    ['heap B/conn', 'heapPerConn', fmt.int, true],
    ['RSS B/conn', 'rssPerConn', fmt.int, true],
    ['external B/conn', 'externalPerConn', fmt.int, false],
    ['connected', 'connected', fmt.pct, false]
  ]],
  connect: () => [`### Connect rate: open, first event, close; ${CONFIG.connect.concurrency} concurrent, ${CONFIG.connect.durationMs / 1000} s per subject in ${CONFIG.connect.slices} turns taken in alternation with the other subjects, after ${CONFIG.connect.warmMs / 1000} s of warm-up`, [
    ['connections/s', 'connPerSec', fmt.int, true],
    ['server CPU µs / conn', 'cpuUsPerConn', fmt.int, true],
    ['of which user µs', 'userUsPerConn', fmt.f2, true],
    ['client CPU µs / conn', 'clientCpuUsPerConn', fmt.int, true],
    ['p50 first event ms', 'p50', fmt.f2, false],
    ['p99 first event ms', 'p99', fmt.f2, true],
    ['errors', 'errors', fmt.int, false]
  ]],
  slow: () => [`### Slow client: reads nothing for ${CONFIG.slow.stallMs / 1000} s; the source could produce ${fmt.int(CONFIG.slow.events)} events`, [
    ['events pulled', 'pulled', fmt.int, true],
    ['heap growth MiB', 'heapGrowthMiB', fmt.f2, false],
    ['RSS growth MiB', 'rssGrowthMiB', fmt.f1, false]
  ]],
  storm: () => [`### Resume storm: ${fmt.int(CONFIG.storm.clients)} clients reconnect at once with Last-Event-ID, each ${CONFIG.storm.behind} events behind`, [
    ['caught up', 'caughtUp', fmt.pct, false],
    ['exact', 'exact', fmt.pct, false],
    ['p50 ms', 'p50', fmt.f1, false],
    ['p99 ms', 'p99', fmt.f1, false],
    ['all caught up ms', 'allMs', fmt.f1, false],
    ['resets', 'resets', fmt.int, false],
    ['server CPU ms', 'cpuMs', fmt.f1, false],
    ['CPU µs / replayed event', 'cpuUsPerReplayed', fmt.f2, false]
  ]]
}

function medians (runs) {
  const out = {}
  for (const key of Object.keys(runs[0] ?? {})) out[key] = median(runs.map((r) => r[key]))
  return out
}

// ---------------------------------------------------------------------------------------------
// Targets (issues 5, 10 and 13), checked on the medians.

function targets (results) {
  const lines = []
  const check = (name, ok, detail) => {
    if (ok === undefined) return
    lines.push(`- ${ok ? 'MET' : 'MISSED'}: ${name} (${detail})`)
  }
  const peersOf = (rows) => PEERS.filter((p) => rows[p] !== undefined).map((p) => rows[p])
  const everyPeer = (rows, pred) => peersOf(rows).length === 0 ? undefined : peersOf(rows).every(pred)
  const tp = results.throughput?.[0]?.medians
  if (tp?.[OURS] && tp[BASELINE]) {
    const r = tp[OURS].eventsPerSec / tp[BASELINE].eventsPerSec
    const c = tp[OURS].cpuMsPer1k / tp[BASELINE].cpuMsPer1k
    const peers = peersOf(tp)
    check('throughput ≥ 0.95× baseline events/s', r >= 0.95, fmt.ratio(r))
    check('throughput CPU/event ≤ 1.05× baseline', c <= 1.05, fmt.ratio(c))
    check('throughput ahead of every peer on events/s and CPU/event',
      everyPeer(tp, (p) => tp[OURS].eventsPerSec > p.eventsPerSec && tp[OURS].cpuMsPer1k < p.cpuMsPer1k), 'per table')
  }
  for (const entry of results.fanout ?? []) {
    const m = entry.medians
    if (!m[OURS] || !m[BASELINE]) continue
    const peers = peersOf(m)
    const c = m[OURS].cpuUsPerDelivery / m[BASELINE].cpuUsPerDelivery
    const minDelivered = Math.min(...entry.runs[OURS].map((r) => r.delivered))
    check(`fan-out ${entry.count}: 100% delivered in every run`, minDelivered === 1, fmt.pct(minDelivered))
    check(`fan-out ${entry.count}: CPU/delivery ≤ 1.1× baseline`, c <= 1.1, fmt.ratio(c))
    check(`fan-out ${entry.count}: CPU/delivery ahead of every peer`, everyPeer(m, (p) => m[OURS].cpuUsPerDelivery < p.cpuUsPerDelivery), 'per table')
    const bestPeerP99 = Math.min(...peers.filter((p) => p.delivered === 1).map((p) => p.p99))
    if (Number.isFinite(bestPeerP99)) check(`fan-out ${entry.count}: p99 ≤ best peer's (among peers that deliver 100%)`, m[OURS].p99 <= bestPeerP99, `${fmt.f2(m[OURS].p99)} vs ${fmt.f2(bestPeerP99)} ms`)
  }
  const id = results.idle?.[0]?.medians
  if (id?.[OURS] && id[BASELINE]) {
    const r = id[OURS].heapPerConn / id[BASELINE].heapPerConn
    check('idle heap/connection ≤ 1.3× baseline', r <= 1.3, fmt.ratio(r))
    check('idle heap/connection below every peer', everyPeer(id, (p) => id[OURS].heapPerConn < p.heapPerConn), 'per table')
  }
  const cr = results.connect?.[0]?.medians
  if (cr?.[OURS] && cr[BASELINE]) {
    const r = cr[OURS].connPerSec / cr[BASELINE].connPerSec
    check('connect rate ≥ 0.93× baseline', r >= 0.93, fmt.ratio(r))
    check('connect rate ahead of every peer', everyPeer(cr, (p) => cr[OURS].connPerSec > p.connPerSec), 'per table')
  }
  // Against the Fastify floor (issue 13): what the plugin adds on top of Fastify itself.
  if (id?.[OURS] && id[FLOOR]) {
    const r = id[OURS].heapPerConn / id[FLOOR].heapPerConn
    check('idle heap/connection ≤ 1.1× the Fastify floor', r <= 1.1, fmt.ratio(r))
  }
  if (cr?.[OURS] && cr[FLOOR]) {
    // Paired ratios: each run's own ratio to the floor (its subjects shared one window), then their
    // median. A ratio of two medians can pair a subject's good run with the floor's bad one, so the
    // targets are checked on the paired figures (on the medians' ratio only if no run has both).
    // `floorOf` is the floor a run's ratio is taken to (undefined: the run does not count).
    const paired = (subject, key, floorOf = (w) => w[FLOOR]?.[key]) => {
      const ratios = (results.connect[0].windows ?? []).filter((w) => w[subject] && floorOf(w) !== undefined).map((w) => w[subject][key] / floorOf(w))
      return ratios.length === 0 ? undefined : median(ratios)
    }
    const ratio3 = (x) => x.toFixed(3) + '×'
    const floorCheck = (name, key, ok) => {
      const byMedians = cr[OURS][key] / cr[FLOOR][key]
      const x = paired(OURS, key)
      check(name, ok(x ?? byMedians), x === undefined ? fmt.ratio(byMedians) : `${ratio3(x)} paired; ${fmt.ratio(byMedians)} by medians`)
    }
    floorCheck('server CPU per connect ≤ 1.05× the Fastify floor', 'cpuUsPerConn', (c) => c <= 1.05)
    floorCheck('connect rate ≥ 0.97× the Fastify floor', 'connPerSec', (r) => r >= 0.97)
    const others = ['patched', CONTROL].filter((s) => cr[s] !== undefined && paired(s, 'connPerSec') !== undefined)
      .map((s) => `${SUBJECTS[s]}: rate ${ratio3(paired(s, 'connPerSec'))}, CPU per connect ${ratio3(paired(s, 'cpuUsPerConn'))}`)
    if (others.length > 0) lines.push(`- (paired, beside it: ${others.join('; ')})`)
    // With the noise control in the run, a second estimate of the same ratio: in each run, the mean of
    // the floor's two copies as the floor. A cross-check, not the target's figure: the two copies' noise
    // is largely shared (they run in one window), so the mean narrows the spread only a little.
    const bothFloors = (subject, key) => paired(subject, key, (w) => w[FLOOR] && w[CONTROL] ? (w[FLOOR][key] + w[CONTROL][key]) / 2 : undefined)
    const both = [OURS, 'patched'].filter((s) => cr[s] !== undefined && bothFloors(s, 'connPerSec') !== undefined)
      .map((s) => `${SUBJECTS[s]}: rate ${ratio3(bothFloors(s, 'connPerSec'))}, CPU per connect ${ratio3(bothFloors(s, 'cpuUsPerConn'))}`)
    if (both.length > 0) lines.push(`- (paired against the mean of the two floors of each run: ${both.join('; ')})`)
  }
  // The hub (issue 10). Saturated fan-out (5,000 clients): on schedule and cheap; below that,
  // no dearer and no later than raw node:http.
  for (const entry of results.fanout ?? []) {
    const m = entry.medians
    if (!m[HUB]) continue
    const h = m[HUB]
    const n = entry.count
    const minDelivered = Math.min(...entry.runs[HUB].map((r) => r.delivered))
    check(`hub fan-out ${n}: 100% delivered in every run`, minDelivered === 1, fmt.pct(minDelivered))
    if (n >= 5000) {
      const rate = CONFIG.fanout.rate
      check(`hub fan-out ${n}: on schedule (${rate}/s emitted and achieved, within 2 %)`,
        h.emitRate >= 0.98 * rate && h.achievedRate >= 0.98 * rate, `${fmt.f1(h.emitRate)} emitted, ${fmt.f1(h.achievedRate)} achieved /s`)
      check(`hub fan-out ${n}: p99 ≤ 250 ms behind schedule`, h.lagP99 <= 250, `${fmt.f1(h.lagP99)} ms`)
      if (m[BASELINE]) {
        const c = h.cpuUsPerDelivery / m[BASELINE].cpuUsPerDelivery
        check(`hub fan-out ${n}: CPU/delivery ≤ 0.5× baseline`, c <= 0.5, fmt.ratio(c))
      }
    } else if (m[BASELINE]) {
      const c = h.cpuUsPerDelivery / m[BASELINE].cpuUsPerDelivery
      const l = h.p99 / m[BASELINE].p99
      check(`hub fan-out ${n}: CPU/delivery ≤ 1.0× baseline`, c <= 1.0, fmt.ratio(c))
      check(`hub fan-out ${n}: p99 latency ≤ 1.1× baseline`, l <= 1.1, fmt.ratio(l))
    }
  }
  if (id?.[HUB] && id[FLOOR]) {
    const r = id[HUB].heapPerConn / id[FLOOR].heapPerConn
    check('hub: idle subscriber heap ≤ 1.2× the Fastify floor', r <= 1.2, fmt.ratio(r))
  }
  const st = results.storm?.[0]
  if (st?.medians[HUB]) {
    const minCaught = Math.min(...st.runs[HUB].map((r) => r.caughtUp))
    const minExact = Math.min(...st.runs[HUB].map((r) => r.exact))
    check(`hub resume storm: every client caught up, each missed event once and in order, in every run`,
      minCaught === 1 && minExact === 1, `${fmt.pct(minCaught)} caught up, ${fmt.pct(minExact)} exact`)
    check('hub resume storm: all caught up within 1 s', st.medians[HUB].allMs <= 1000, `${fmt.f1(st.medians[HUB].allMs)} ms`)
  }
  const sl = results.slow?.[0]?.medians
  if (sl?.[OURS]) {
    check('slow client: heap growth < 4 MiB', sl[OURS].heapGrowthMiB < 4, `${fmt.f2(sl[OURS].heapGrowthMiB)} MiB`)
    if (sl[BASELINE]) {
      const r = sl[OURS].pulled / sl[BASELINE].pulled
      check('slow client: events pulled bounded by the socket buffers (≤ 1.1× the baseline\'s)', r <= 1.1, fmt.ratio(r))
    }
  }
  return lines
}

// ---------------------------------------------------------------------------------------------

function machine () {
  const cpus = os.cpus()
  let kernelBuffers = ''
  try {
    kernelBuffers = `tcp_rmem ${readFileSync('/proc/sys/net/ipv4/tcp_rmem', 'utf8').trim().replace(/\s+/g, ' ')}, ` +
      `tcp_wmem ${readFileSync('/proc/sys/net/ipv4/tcp_wmem', 'utf8').trim().replace(/\s+/g, ' ')}`
  } catch {}
  return {
    date: new Date().toISOString(),
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    loadavg: os.loadavg().map((x) => +x.toFixed(2)),
    kernelBuffers
  }
}

async function main () {
  const info = machine()
  const started = Date.now()
  const log = (s) => process.stderr.write(s + '\n')
  log(`bench: ${quick ? 'quick' : 'full'} run, ${CONFIG.runs} run(s); ${info.cpu}, ${info.cores} cores, Node ${info.node}`)
  const fanCounts = CONFIG.fanout.clients
  const need = Math.max(CONFIG.idle.clients, CONFIG.storm.clients, ...fanCounts) + 100
  const { execSync } = await import('node:child_process')
  const limit = Number(execSync('ulimit -n', { shell: '/bin/bash' }).toString().trim())
  if (Number.isFinite(limit) && limit < need) {
    throw new Error(`ulimit -n is ${limit}; ${need} file descriptors are needed per process. Raise it: ulimit -n 65536`)
  }

  // plan: [scenario key, count, fn]
  const plan = []
  for (const s of scenarios) {
    if (s === 'redis') continue // its own subjects and servers: run after the others, below
    if (s === 'fanout') for (const count of fanCounts) plan.push(['fanout', count, (subject) => fanout(subject, count)])
    else plan.push([s, undefined, { throughput, idle, slow, storm }[s]])
  }
  const results = {}
  for (const [key, count, fn] of plan) {
    const taking = subjects.filter((s) => takesPart(s, key))
    if (taking.length === 0) continue
    const runs = Object.fromEntries(taking.map((s) => [s, []]))
    // The connect scenario's runs whole, every subject's figures of one window together, for the
    // paired ratios (see targets()).
    const windows = []
    for (let r = 0; r < CONFIG.runs; r++) {
      // Rotate the order each run, so that no subject always goes first on a warm or busy machine.
      const order = taking.map((_, i) => taking[(i + r) % taking.length])
      if (key === 'connect') {
        // All subjects in one window, in turns (see connectAll()).
        const t0 = Date.now()
        try {
          const all = await connectAll(order, log)
          windows.push(all)
          for (const subject of order) {
            if (all[subject] === undefined) continue
            runs[subject].push(all[subject])
            log(`  connect run ${r + 1} ${subject}: ${JSON.stringify(all[subject], (k, v) => typeof v === 'number' ? +v.toPrecision(4) : v)}`)
          }
          log(`  connect run ${r + 1}: ${Date.now() - t0} ms`)
        } catch (err) {
          log(`  connect run ${r + 1}: FAILED ${err.message}`)
        }
        continue
      }
      for (const subject of order) {
        const t0 = Date.now()
        try {
          const m = await fn(subject)
          runs[subject].push(m)
          log(`  ${key}${count ? ' ' + count : ''} run ${r + 1} ${subject}: ${JSON.stringify(m, (k, v) => typeof v === 'number' ? +v.toPrecision(4) : v)} (${Date.now() - t0} ms)`)
        } catch (err) {
          log(`  ${key}${count ? ' ' + count : ''} run ${r + 1} ${subject}: FAILED ${err.message}`)
        }
      }
    }
    const med = {}
    for (const s of taking) if (runs[s].length > 0) med[s] = medians(runs[s])
    ;(results[key] ??= []).push({ count, runs, medians: med, ...(key === 'connect' ? { windows } : {}) })
  }

  let redis = null
  if (scenarios.includes('redis')) {
    if (!redisAvailable()) {
      log('  redis: SKIPPED: redis-server is not installed (apt-get install redis-server)')
    } else {
      const phases = args['redis-phases'] === undefined ? undefined : String(args['redis-phases']).split(',')
      if (args.profile === true) mkdirSync(profDir, { recursive: true })
      redis = await runRedis({ quick, runs: CONFIG.runs, phases, profDir: args.profile === true ? profDir : undefined, spawn, waitMessage, stop, startClient, log })
      results.redis = redis.raw
    }
  }

  const md = [
    `## Results (${quick ? 'quick smoke run, not comparable' : `medians of ${CONFIG.runs} runs`})`,
    '',
    `${info.date.slice(0, 10)} · ${info.cpu} · ${info.cores} cores · ${info.memGiB} GiB · Node ${info.node} · ${info.os} · load ${info.loadavg.join(' ')} at start`,
    ''
  ]
  for (const [key, entries] of Object.entries(results)) {
    if (key === 'redis') continue
    for (const entry of entries) {
      const [title, columns] = TABLES[key](entry.count)
      md.push(title, '', table(entry.medians, columns), '')
    }
  }
  if (redis !== null) md.push(redis.markdown, '')
  const t = targets(results)
  if (t.length > 0) md.push('### Targets (issues 5, 10 and 13)', '', ...t, '')
  if (redis !== null && redis.targets.length > 0) md.push('### Targets (issue 11: Redis)', '', ...redis.targets, '')
  md.push(`Run time ${((Date.now() - started) / 1000).toFixed(0)} s.`)
  const text = md.join('\n')
  process.stdout.write(text + '\n')

  mkdirSync(outDir, { recursive: true })
  const stamp = info.date.replace(/[:.]/g, '-')
  const label = args.label === undefined ? (quick ? 'quick' : 'full') : String(args.label)
  const json = JSON.stringify({ machine: info, config: CONFIG, subjects, dist: dist ?? null, results }, (k, v) => ArrayBuffer.isView(v) ? undefined : v, 2)
  writeFileSync(path.join(outDir, `${label}-${stamp}.json`), json)
  writeFileSync(path.join(outDir, `${label}-latest.json`), json)
  writeFileSync(path.join(outDir, `${label}-latest.md`), text + '\n')
  log(`bench: wrote bench/out/${label}-latest.{json,md}`)
}

main().then(() => {
  killAll()
}, (err) => {
  process.stderr.write(String(err?.stack ?? err) + '\n')
  killAll()
  process.exitCode = 1
})

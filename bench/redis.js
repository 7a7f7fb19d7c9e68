// The Redis benchmark (issue 11): two Fastify server processes on one redis-server, this plugin's
// hub on redisBroker against the pub/sub baseline (bench/redis-node.js), clients in separate
// processes (bench/client.js). Run by bench/run.js as the scenario `redis`:
//
//   node bench/run.js --only=redis --runs=3
//
// Phases, each run:
//   1. fan-out across processes: 2 nodes × N clients, events published at a fixed rate on one
//      topic, alternating the publishing node; latency (publish to deliver), CPU per delivery of
//      the nodes and of redis-server, delivered share; both subjects, order rotated each run.
//   2. Redis command counts (the hub): per publish, per connect whose cursor is in the node's
//      cache, and in a resume storm whose cursors are older than the cache (XRANGE pages).
//   3. Redis restart with AOF: SIGKILL mid-stream, restart on the same directory; events lost,
//      duplicated or out of order per client, for both subjects.
import { setTimeout as delay } from 'node:timers/promises'
import { monoMs } from './lib/payload.js'
import { median, percentile, concatSorted } from './lib/stats.js'
import { REDIS_SERVER, startRedis, monitor } from './lib/redis-server.js'

export const REDIS_SUBJECTS = {
  hub: 'fastify-sse-stream hub + redisBroker',
  'hub-keyed': 'the same, publishes with idempotency keys',
  pubsub: 'Redis PUBLISH/SUBSCRIBE, re-broadcast (baseline)'
}
const HUB = 'hub'
const KEYED = 'hub-keyed'
const BASE = 'pubsub'

export const REDIS_CONFIG = {
  quick: {
    fanout: { perNode: 200, events: 50, rate: 50 },
    counts: { cache: 200, warm: 100, joinPerNode: 50, joinBack: 50, stormPerNode: 100, behind: 300 },
    restart: { perNode: 50, events: 200, rate: 50, killAt: 30, downMs: 1000, graceMs: 5000 }
  },
  full: {
    fanout: { perNode: 1000, events: 200, rate: 50 },
    // The cache (the hub's history.size) holds 200 events; the storm's cursors are 300 behind.
    counts: { cache: 200, warm: 100, joinPerNode: 250, joinBack: 50, stormPerNode: 500, behind: 300 },
    // Killed 1 s into a 6 s stream: the publishes resume live for a few seconds after the restart.
    restart: { perNode: 250, events: 300, rate: 50, killAt: 50, downMs: 1000, graceMs: 5000 }
  }
}

const sum = (xs, key) => xs.reduce((s, x) => s + (key === undefined ? x : x[key]), 0)
const OWN = new Set(['info', 'config', 'monitor', 'ping', 'flushall', 'client', 'hello', 'select'])

/** Calls per command between two commandstats snapshots, the benchmark's own commands left out. */
function callsOf (stats) {
  const out = {}
  for (const [name, n] of Object.entries(stats)) if (!OWN.has(name.split('|')[0])) out[name] = n
  return out
}

function describeCalls (calls, per) {
  return Object.entries(calls).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${(n / per).toFixed(2)}`).join(', ') || 'none'
}

export function redisAvailable () {
  return REDIS_SERVER !== undefined
}

export async function runRedis ({ quick, runs, phases = ['fanout', 'commands', 'restart'], profDir, spawn, waitMessage, stop, startClient, log }) {
  const CONFIG = quick ? REDIS_CONFIG.quick : REDIS_CONFIG.full
  let rpc = 0
  async function startNode (subject, redisPort, cache) {
    // --profile: each node writes a CPU profile of the fan-out's measured window to bench/out/prof/.
    const child = spawn('redis-node.js', [subject, String(redisPort), String(cache)], [], profDir === undefined ? {} : { BENCH_PROF_DIR: profDir })
    const { port } = await waitMessage(child, (m) => m?.ready === true, 15_000, `${subject} node start`)
    const call = async (msg, ms = 120_000) => {
      const id = ++rpc
      child.send({ ...msg, id })
      return (await waitMessage(child, (m) => m?.id === id, ms, `${subject} node ${msg.cmd}`)).value
    }
    // One publish on another topic first: a fresh redis-server loads the publish script then
    // (EVALSHA answered NOSCRIPT, then EVAL), once, outside what is measured.
    await call({ cmd: 'warmup' })
    return { child, port, call }
  }
  async function withNodes (subject, redis, cache, nClients, fn) {
    const nodes = []
    const clients = []
    try {
      for (let k = 0; k < 2; k++) nodes.push(await startNode(subject, redis.port, cache))
      for (let k = 0; k < nClients; k++) clients.push(await startClient())
      return await fn(nodes, clients)
    } finally {
      await Promise.all(clients.map((c) => stop(c.child)))
      await Promise.all(nodes.map((n) => stop(n.child)))
    }
  }
  /** Both nodes publish events first … first+count-1 on one schedule, alternating. */
  async function publishAll (nodes, count, rate, first = 0) {
    const startMono = monoMs() + 50
    const out = await Promise.all(nodes.map((n, k) => n.call({ cmd: 'publish', count, rate, first, node: k, nodes: nodes.length, startMono })))
    const ids = new Map()
    for (const r of out) r.ok.forEach((i, j) => ids.set(i, r.ids[j]))
    return { startMono, period: 1000 / rate, ids, ok: out.flatMap((r) => r.ok), failed: out.flatMap((r) => r.failed) }
  }

  // ---- Phase 1: fan-out across processes.
  async function fanout (subject, redis) {
    const { perNode, events, rate } = CONFIG.fanout
    await redis.control().flushall()
    return withNodes(subject, redis, CONFIG.counts.cache, 2, async (nodes, clients) => {
      clients.forEach((c, k) => c.run({ mode: 'fan', port: nodes[k].port, count: perNode, expect: events, timeoutMs: 60_000, readyOnHead: true }))
      const ready = await Promise.all(clients.map((c) => c.ready(70_000)))
      await delay(300)
      await redis.resetStats()
      const redisCpu0 = await redis.cpuSeconds()
      await Promise.all(nodes.map((n) => n.call({ cmd: 'cpu-start' })))
      const pub = await publishAll(nodes, events, rate)
      clients.forEach((c) => c.finish(5000, { startMono: pub.startMono, period: pub.period }))
      const results = await Promise.all(clients.map((c) => c.result(20_000)))
      const cpu = await Promise.all(nodes.map((n) => n.call({ cmd: 'cpu-stop' })))
      const redisCpu = (await redis.cpuSeconds()) - redisCpu0
      const calls = callsOf(await redis.commandStats())
      const delivered = sum(results, 'delivered')
      const sorted = concatSorted(results.map((r) => r.samples))
      const cpuUs = sum(cpu, 'cpuUs')
      return {
        connected: sum(ready, 'ready') / (2 * perNode),
        delivered: delivered / (2 * perNode * events),
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
        max: sorted.length === 0 ? NaN : sorted[sorted.length - 1],
        cpuUsPerDelivery: cpuUs / delivered,
        userUsPerDelivery: sum(cpu, 'userUs') / delivered,
        redisCpuUsPerDelivery: redisCpu * 1e6 / delivered,
        redisCpuUsPerPublish: redisCpu * 1e6 / events,
        failedPublishes: pub.failed.length,
        commandsPerPublish: sum(Object.values(calls)) / events,
        calls: describeCalls(calls, events)
      }
    })
  }

  // ---- Phase 2: Redis command counts of the hub (MONITOR tells client commands from a script's).
  async function counts (redis) {
    const { cache, warm, joinPerNode, joinBack, stormPerNode, behind } = CONFIG.counts
    await redis.control().flushall()
    return withNodes(HUB, redis, cache, 4, async (nodes, clients) => {
      const [stormA, stormB, joinA, joinB] = clients
      const storms = [stormA, stormB]
      const joins = [joinA, joinB]
      const mon = await monitor(redis.port)
      try {
        // Storm clients: on node k, resuming on the other node.
        // Two publishers: events reach the topic in any order of their index, so places are offsets.
        storms.forEach((c, k) => c.run({ mode: 'storm', port: nodes[k].port, resumePort: nodes[1 - k].port, count: stormPerNode, warm, timeoutMs: 60_000, catchUpMs: 15_000, readyOnHead: true, byOffset: true }))
        await Promise.all(storms.map((c) => c.ready(70_000)))
        await delay(300)
        const nodeStats = () => Promise.all(nodes.map((n) => n.call({ cmd: 'stats' })))
        const diff = (a, b) => a.map((s, k) => Object.fromEntries(Object.keys(s).map((key) => [key, b[k][key] - s[key]])))

        // A: publishes (the readers' XREADs are counted too, apart).
        await redis.resetStats()
        mon.reset()
        const pub = await publishAll(nodes, warm, 100)
        await delay(300)
        const a = await mon.read()
        const publishes = pub.ok.length
        const aTotal = sum(Object.values(a.client))
        const publishCmds = (a.client.evalsha ?? 0) + (a.client.eval ?? 0)

        // B: connects whose cursor is in the cache (the topic is watched there: the storm clients).
        // The id with joinBack events after it, in the topic's order (offsets, not indexes).
        const byOffset = [...pub.ids.values()].sort((x, y) => Number(x.split('-')[1]) - Number(y.split('-')[1]))
        const lastEventId = byOffset[byOffset.length - 1 - joinBack]
        await redis.resetStats()
        const s0 = await nodeStats()
        mon.reset()
        joins.forEach((c, k) => c.run({ mode: 'join', port: nodes[k].port, count: joinPerNode, expect: joinBack, lastEventId, timeoutMs: 30_000 }))
        const joined = await Promise.all(joins.map((c) => c.ready(40_000)))
        await delay(200)
        const b = await mon.read()
        const bStats = diff(s0, await nodeStats())
        const connects = sum(joined, 'ready')
        const bAll = sum(Object.values(b.client))
        // A blocking read that times out (every 5 s) is renewed whether anyone connects or not.
        const bNoRenew = bAll - (b.client.xread ?? 0)

        // C: the resume storm. The join clients stay: the topic stays watched on both nodes, and
        // their caches follow it live.
        storms.forEach((c) => c.finish(5000))
        const dropped = await Promise.all(storms.map((c) => c.step('dropped', 10_000)))
        await delay(500)
        await publishAll(nodes, behind, 1000, warm)
        await delay(300)
        await redis.resetStats()
        const s1 = await nodeStats()
        mon.reset()
        const t0 = monoMs()
        // The topic began at offset 1 (FLUSHALL): the newest event's offset is warm + behind.
        storms.forEach((c) => c.go({ head: warm + behind }))
        const results = await Promise.all(storms.map((c) => c.result(30_000)))
        const stormMs = monoMs() - t0
        await delay(200)
        const c = await mon.read()
        const cStats = diff(s1, await nodeStats())
        const cCalls = callsOf(await redis.commandStats())
        joins.forEach((j) => j.finish(0))
        await Promise.all(joins.map((j) => j.result(10_000)))
        const reconnected = sum(results, 'reconnected')
        const times = concatSorted(results.map((r) => r.times))
        return {
          publishes,
          publishCmdsPerPublish: publishCmds / publishes,
          clientCmdsPerPublish: aTotal / publishes,
          publishDetail: describeCalls(a.client, publishes),
          publishScriptDetail: describeCalls(a.lua, publishes),
          connects,
          joinedComplete: sum(joined, 'complete') / (2 * joinPerNode),
          cmdsPerConnect: bNoRenew / connects,
          cmdsPerConnectRaw: bAll / connects,
          connectDetail: describeCalls(b.client, 1),
          connectStats: bStats.map((s) => `syncs ${s.syncs}, ranges ${s.ranges}, wakes ${s.wakes}`).join(' / '),
          stormClients: reconnected,
          stormWarmed: sum(dropped, 'warmed') / (2 * stormPerNode),
          stormCaughtUp: sum(results, 'caughtUp') / (2 * stormPerNode),
          stormExact: sum(results, 'exact') / (2 * stormPerNode),
          stormResets: sum(results, 'resets'),
          stormAllMs: times.length === 2 * stormPerNode ? times[times.length - 1] : NaN,
          stormP99: percentile(times, 99),
          stormMs,
          rangesPerNode: cStats.map((s) => s.ranges),
          syncsPerNode: cStats.map((s) => s.syncs),
          xrange: c.client.xrange ?? 0,
          stormCmdsPerConnect: sum(Object.values(c.client)) / reconnected,
          stormDetail: describeCalls(c.client, 1),
          stormCommandstats: describeCalls(cCalls, 1)
        }
      } finally {
        mon.close()
      }
    })
  }

  // ---- Phase 3: Redis killed (SIGKILL) and restarted on its AOF, mid-stream.
  async function restart (subject, redis) {
    const { perNode, events, rate, killAt, downMs, graceMs } = CONFIG.restart
    await redis.control().flushall()
    return withNodes(subject, redis, CONFIG.counts.cache, 2, async (nodes, clients) => {
      clients.forEach((c, k) => c.run({ mode: 'track', port: nodes[k].port, count: perNode, timeoutMs: 60_000 }))
      const ready = await Promise.all(clients.map((c) => c.ready(70_000)))
      await delay(300)
      const startMono = monoMs() + 50
      const period = 1000 / rate
      const published = Promise.all(nodes.map((n, k) => n.call({ cmd: 'publish', count: events, rate, node: k, nodes: 2, startMono })))
      await delay(Math.max(0, startMono + killAt * period - monoMs()))
      await redis.kill()
      const killedMono = monoMs()
      await delay(downMs)
      await redis.start()
      const downFor = monoMs() - killedMono
      const out = await published
      const ok = out.flatMap((r) => r.ok).sort((x, y) => x - y)
      const failed = out.flatMap((r) => r.failed)
      if (process.env.BENCH_DEBUG) for (const r of out) process.stderr.write(`${subject} ${JSON.stringify(r.ok.map((i, j) => [i, r.ids[j]]))}\n`)
      clients.forEach((c) => c.finish(graceMs, { expected: ok }))
      const results = await Promise.all(clients.map((c) => c.result(graceMs + 15_000)))
      const lostPer = results.flatMap((r) => r.lostPer)
      const n = lostPer.length
      return {
        clients: sum(ready, 'ready'),
        published: ok.length,
        rejected: failed.length,
        rejectedWhy: [...new Set(failed.map((f) => f.error))].slice(0, 2).join('; '),
        downMs: downFor,
        exactClients: sum(results, 'exact') / n,
        lostDeliveries: sum(lostPer),
        clientsWithLoss: lostPer.filter((x) => x > 0).length,
        maxLostPerClient: Math.max(0, ...lostPer),
        meanLostPerClient: sum(lostPer) / n,
        duplicates: sum(results, 'duplicates'),
        offsetGaps: sum(results, 'offsetGaps'),
        offsetRepeats: sum(results, 'offsetRepeats'),
        unexpected: sum(results, 'unexpected'),
        resets: sum(results, 'resets'),
        stillConnected: sum(results, 'alive') / n,
        lostExample: results.map((r) => r.lostExample).sort((x, y) => y.length - x.length)[0].join(' '),
        dupExample: results.flatMap((r) => r.dupExample).slice(0, 10).join(' ')
      }
    })
  }

  const plain = await startRedis()
  const aof = await startRedis({ aof: true })
  const raw = { fanout: { [HUB]: [], [BASE]: [] }, counts: [], restart: { [HUB]: [], [KEYED]: [], [BASE]: [] } }
  const order = [HUB, BASE]
  const restartOrder = [HUB, KEYED, BASE]
  const attempt = async (label, fn, into) => {
    const t0 = Date.now()
    try {
      const m = await fn()
      into.push(m)
      log(`  redis ${label}: ${JSON.stringify(m, (k, v) => typeof v === 'number' ? +v.toPrecision(4) : v)} (${Date.now() - t0} ms)`)
    } catch (err) {
      log(`  redis ${label}: FAILED ${err.message}`)
    }
  }
  try {
    log(`  redis: redis-server on 127.0.0.1:${plain.port} (no persistence) and :${aof.port} (AOF, appendfsync always)`)
    for (let r = 0; r < runs; r++) {
      const rot = order.map((_, i) => order[(i + r) % order.length])
      if (phases.includes('fanout')) for (const s of rot) await attempt(`fan-out run ${r + 1} ${s}`, () => fanout(s, plain), raw.fanout[s])
      if (phases.includes('commands')) await attempt(`commands run ${r + 1} hub`, () => counts(plain), raw.counts)
      const rot3 = restartOrder.map((_, i) => restartOrder[(i + r) % restartOrder.length])
      if (phases.includes('restart')) for (const s of rot3) await attempt(`restart run ${r + 1} ${s}`, () => restart(s, aof), raw.restart[s])
    }
  } finally {
    await plain.stop()
    await aof.stop()
  }
  return report(raw, CONFIG, runs)
}

// ---------------------------------------------------------------------------------------------
// Tables and targets.

const f = {
  int: (x) => Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a',
  f2: (x) => Number.isFinite(x) ? x.toFixed(2) : 'n/a',
  f1: (x) => Number.isFinite(x) ? x.toFixed(1) : 'n/a',
  f3: (x) => Number.isFinite(x) ? x.toFixed(3) : 'n/a',
  pct: (x) => Number.isFinite(x) ? (x * 100).toFixed(x === 1 ? 0 : 2) + ' %' : 'n/a',
  ratio: (x) => Number.isFinite(x) ? x.toFixed(2) + '×' : 'n/a'
}

function mdTable (head, rows) {
  return ['| ' + head.join(' | ') + ' |', '|' + head.map((_, i) => i === 0 ? ' --- ' : ' ---: ').join('|') + '|',
    ...rows.map((r) => '| ' + r.join(' | ') + ' |')].join('\n')
}

function medians (runs) {
  const out = {}
  for (const key of Object.keys(runs[0] ?? {})) out[key] = typeof runs[0][key] === 'number' ? median(runs.map((r) => r[key])) : runs[0][key]
  return out
}

function report (raw, CONFIG, runs) {
  const md = []
  const targets = []
  const check = (name, ok, detail) => targets.push(`- ${ok ? 'MET' : 'MISSED'}: ${name} (${detail})`)
  const { perNode, events, rate } = CONFIG.fanout

  // Phase 1.
  const fm = {}
  for (const s of [HUB, BASE]) if (raw.fanout[s].length > 0) fm[s] = medians(raw.fanout[s])
  const b = fm[BASE]
  md.push(`### Redis fan-out: 2 server processes × ${f.int(perNode)} clients, ${events} events at ${rate}/s on one topic, publishers alternating (medians of ${runs})`, '',
    mdTable(['Subject', 'p50 ms', 'vs base', 'p99 ms', 'vs base', 'max ms', 'delivered', 'server CPU µs / delivery', 'vs base', 'of which user µs', 'vs base', 'redis-server CPU µs / delivery', 'redis-server CPU µs / publish', 'failed publishes'],
      Object.entries(fm).map(([s, m]) => [REDIS_SUBJECTS[s], f.f2(m.p50), f.ratio(m.p50 / b?.p50), f.f2(m.p99), f.ratio(m.p99 / b?.p99), f.f1(m.max), f.pct(m.delivered),
        f.f2(m.cpuUsPerDelivery), f.ratio(m.cpuUsPerDelivery / b?.cpuUsPerDelivery), f.f2(m.userUsPerDelivery), f.ratio(m.userUsPerDelivery / b?.userUsPerDelivery), f.f2(m.redisCpuUsPerDelivery), f.int(m.redisCpuUsPerPublish), f.int(m.failedPublishes)])), '')
  md.push('Redis calls per publish during the fan-out (INFO commandstats, commands run by the publish script included):', '')
  for (const [s, m] of Object.entries(fm)) md.push(`- ${REDIS_SUBJECTS[s]}: ${f.f2(m.commandsPerPublish)} (${m.calls})`)
  md.push('')
  const h = fm[HUB]
  if (h !== undefined && b !== undefined) {
    const minDelivered = Math.min(...raw.fanout[HUB].map((r) => r.delivered))
    check('redis fan-out: hub delivers 100 % in every run', minDelivered === 1, f.pct(minDelivered))
    check('redis fan-out: p50 latency ≤ 1.3× pub/sub', h.p50 / b.p50 <= 1.3, f.ratio(h.p50 / b.p50))
    check('redis fan-out: p99 latency ≤ 1.3× pub/sub', h.p99 / b.p99 <= 1.3, f.ratio(h.p99 / b.p99))
    check('redis fan-out: server CPU per delivery ≤ pub/sub', h.cpuUsPerDelivery <= b.cpuUsPerDelivery, f.ratio(h.cpuUsPerDelivery / b.cpuUsPerDelivery))
  }

  // Phase 2.
  const cs = raw.counts
  if (cs.length > 0) {
    const c = CONFIG.counts
    const worst = (key) => Math.max(...cs.map((r) => r[key]))
    md.push(`### Redis commands of the hub (MONITOR: commands sent by the nodes; every run)`, '',
      `Publish: ${c.warm} events from the 2 nodes at 100/s. Connect in cache: ${f.int(2 * c.joinPerNode)} clients join with a Last-Event-ID ${c.joinBack} events back (the cache holds ${c.cache}). ` +
      `Resume storm: ${f.int(2 * c.stormPerNode)} clients drop, ${c.behind} events are published, and all reconnect at once to the *other* node with their Last-Event-ID (older than the cache).`, '',
      mdTable(['Run', 'publish cmds / publish', 'all node cmds / publish', 'cmds / connect in cache', 'XRANGE pages per node (broker.stats.ranges)', 'XRANGE (MONITOR)', 'XREVRANGE syncs per node', 'storm cmds / connect', 'storm: caught up', 'exact', 'all caught up ms'],
        cs.map((r, i) => [String(i + 1), f.f2(r.publishCmdsPerPublish), f.f2(r.clientCmdsPerPublish), f.f2(r.cmdsPerConnect), r.rangesPerNode.join(' / '), f.int(r.xrange), r.syncsPerNode.join(' / '),
          f.f3(r.stormCmdsPerConnect), f.pct(r.stormCaughtUp), f.pct(r.stormExact), f.f1(r.stormAllMs)])), '')
    const r0 = cs[0]
    md.push('Run 1 in detail:', '',
      `- publish, per publish: sent by the nodes ${r0.publishDetail}; run inside the script ${r0.publishScriptDetail}`,
      `- connect in cache, in total over ${f.int(r0.connects)} connects: ${r0.connectDetail} (broker.stats per node: ${r0.connectStats}); xread is a blocking read renewed every 5 s whether anyone connects or not, left out of "cmds / connect in cache"`,
      `- resume storm, in total over ${f.int(r0.stormClients)} reconnects: sent by the nodes ${r0.stormDetail}; INFO commandstats ${r0.stormCommandstats}`, '')
    check('redis: 1 command per publish (EVALSHA), every run', worst('publishCmdsPerPublish') === 1 && Math.min(...cs.map((r) => r.publishCmdsPerPublish)) === 1, `${f.f2(worst('publishCmdsPerPublish'))}`)
    check('redis: 0 commands per connect whose cursor is in the cache, every run', worst('cmdsPerConnect') === 0, f.f2(worst('cmdsPerConnect')))
    const maxRanges = Math.max(...cs.flatMap((r) => r.rangesPerNode))
    check('redis: resume storm reads at most 1 XRANGE page per topic per node, every run', maxRanges <= 1, `at most ${maxRanges} per node`)
    const minExact = Math.min(...cs.map((r) => r.stormExact))
    check('redis: resume storm across nodes, every client exact (each missed event once, in order), every run', minExact === 1, f.pct(minExact))
  }

  // Phase 3.
  const rs = raw.restart
  const rc = CONFIG.restart
  md.push(`### Redis restart with AOF (appendfsync always): SIGKILL after event ${rc.killAt} of ${rc.events} (${rc.rate}/s), restarted on the same directory ${rc.downMs} ms later; 2 × ${f.int(rc.perNode)} clients; every run`, '',
    'Per client: every publish that resolved must arrive once (lost: never arrived; duplicates: arrived twice). ' +
    'For the hub, the topic\'s order too: each frame\'s id offset one past the one before (a gap or a repeat counted).', '',
    mdTable(['Subject', 'Run', 'down ms', 'publishes resolved', 'rejected', 'clients exact', 'deliveries lost', 'clients with a loss', 'max lost / client', 'duplicates', 'duplicated events', 'offset gaps / repeats', 'resets', 'still connected'],
      [HUB, KEYED, BASE].flatMap((s) => rs[s].map((r, i) => [REDIS_SUBJECTS[s], String(i + 1), f.int(r.downMs), f.int(r.published), f.int(r.rejected), f.pct(r.exactClients), f.int(r.lostDeliveries),
        f.int(r.clientsWithLoss), f.int(r.maxLostPerClient), f.int(r.duplicates), r.dupExample === '' ? '–' : [...new Set(r.dupExample.split(' '))].join(' '),
        s === BASE ? 'n/a' : `${f.int(r.offsetGaps)} / ${f.int(r.offsetRepeats)}`, f.int(r.resets), f.pct(r.stillConnected)]))), '')
  const rejections = [HUB, KEYED, BASE].flatMap((s) => rs[s].filter((r) => r.rejected > 0).map((r) => `${REDIS_SUBJECTS[s]}: ${r.rejectedWhy}`))
  if (rejections.length > 0) md.push('Rejected publishes: ' + [...new Set(rejections)].join(' · '), '')
  for (const s of [HUB, KEYED]) {
    if (rs[s].length === 0) continue
    const lost = rs[s].reduce((n, r) => n + r.lostDeliveries, 0)
    const dup = rs[s].reduce((n, r) => n + r.duplicates, 0)
    const order = rs[s].reduce((n, r) => n + r.offsetGaps + r.offsetRepeats + r.resets, 0)
    check(`redis restart with AOF, ${REDIS_SUBJECTS[s]}: every resolved publish arrives once, in order, every run`, lost + dup + order === 0,
      `${lost} lost, ${dup} duplicated, ${order} offset gaps, repeats or resets`)
  }
  if (rs[BASE].length > 0) {
    const lost = rs[BASE].map((r) => r.lostDeliveries)
    targets.push(`- (measured) pub/sub baseline through the same restart: ${lost.map(f.int).join(', ')} deliveries lost per run (max ${f.int(Math.max(...rs[BASE].map((r) => r.maxLostPerClient)))} events for one client)`)
  }
  return { markdown: md.join('\n'), targets, raw }
}

// One subject's server process, driven by bench/run.js over IPC.
// Usage (by run.js only): node --expose-gc bench/server.js <subject>
import { Hub } from './lib/hub.js'
import { counters } from './lib/payload.js'
import { serveCommands } from './lib/ipc.js'
import { writeFileSync } from 'node:fs'

const subject = process.argv[2]
const hub = new Hub()
// 'patched' and 'patched-hub' are this plugin and its hub loaded from the build named by BENCH_DIST
// (see run.js --dist); 'fastify-floor-control' is the floor once more (a noise control).
const ALIASES = { patched: 'fastify-sse-stream', 'patched-hub': 'fastify-sse-stream-hub', 'fastify-floor-control': 'fastify-floor' }
const module = ALIASES[subject] ?? subject
const { start } = await import(`./subjects/${module}.js`)
const server = await start({ hub })

let cpuStart = null

function memory () {
  // Two passes: the first may leave finalisable objects for the second.
  globalThis.gc?.()
  globalThis.gc?.()
  const m = process.memoryUsage()
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers }
}

let inspector = null
function post (method, params) {
  return new Promise((resolve, reject) => inspector.post(method, params, (err, result) => err ? reject(err) : resolve(result)))
}

async function handle (msg) {
  switch (msg.cmd) {
    case 'cpu-start':
      cpuStart = process.cpuUsage()
      return {}
    case 'cpu-stop': {
      const d = process.cpuUsage(cpuStart)
      return { cpuUs: d.user + d.system, userUs: d.user, systemUs: d.system }
    }
    case 'alloc-start': {
      // Allocation sampling (run.js --alloc-prof): every object allocated, collected since or not.
      const { Session } = await import('node:inspector')
      inspector = new Session()
      inspector.connect()
      await post('HeapProfiler.startSampling', { samplingInterval: msg.interval, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
      return {}
    }
    case 'alloc-stop': {
      const { profile } = await post('HeapProfiler.stopSampling')
      inspector.disconnect()
      writeFileSync(msg.file, JSON.stringify(profile))
      return {}
    }
    case 'memory':
      return memory()
    case 'pulled':
      return { pulled: counters.pulled }
    case 'broadcast':
      return hub.run(msg.count, msg.rate, msg.first)
    case 'exit':
      await Promise.race([server.close(), new Promise((resolve) => setTimeout(resolve, 1000))])
      setImmediate(() => process.exit(0))
      return {}
    default:
      throw new Error('unknown command ' + msg.cmd)
  }
}

serveCommands(handle, server.port)

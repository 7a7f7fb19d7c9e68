// Summarises V8 .cpuprofile files (from node --cpu-prof): self time by function and by package.
// Usage: node bench/profile-summary.js bench/out/prof/*.cpuprofile [--top=25]
import { readFileSync } from 'node:fs'
import path from 'node:path'

const files = process.argv.slice(2).filter((a) => !a.startsWith('--'))
const top = Number(process.argv.find((a) => a.startsWith('--top='))?.slice(6) ?? 25)

function where (url) {
  if (url === '') return '(native/VM)'
  if (url.startsWith('node:')) return 'node core'
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (m !== null) return m[1]
  if (url.includes('/dist/')) return 'fastify-sse-stream (dist)'
  if (url.includes('/bench/')) return 'bench harness'
  return url
}

for (const file of files) {
  const prof = JSON.parse(readFileSync(file, 'utf8'))
  const byId = new Map(prof.nodes.map((n) => [n.id, n]))
  const self = new Map()
  // timeDeltas[i] is the time before sample i; attribute it to that sample's node.
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i]
    self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0))
  }
  let total = 0
  let idle = 0
  const byFn = new Map()
  const byPkg = new Map()
  for (const [id, us] of self) {
    const n = byId.get(id)
    const cf = n.callFrame
    if (cf.functionName === '(idle)') { idle += us; continue }
    total += us
    const key = `${cf.functionName || '(anonymous)'} ${cf.url ? path.basename(cf.url) + ':' + (cf.lineNumber + 1) : ''}`.trim()
    byFn.set(key, (byFn.get(key) ?? 0) + us)
    const pkg = where(cf.url)
    byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + us)
  }
  const pct = (us) => (100 * us / total).toFixed(1).padStart(5) + ' %'
  console.log(`\n## ${path.basename(file)}: ${(total / 1000).toFixed(0)} ms busy, ${(idle / 1000).toFixed(0)} ms idle`)
  console.log('\nSelf time by package:')
  for (const [k, v] of [...byPkg].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`  ${pct(v)}  ${k}`)
  console.log(`\nTop ${top} functions by self time:`)
  for (const [k, v] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(v)}  ${k}`)
}

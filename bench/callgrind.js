// Instructions per connect, counted by valgrind's callgrind: repeatable on a loaded machine,
// where timings are not. The server (a bench subject) runs under callgrind; this process is the
// client: `connects` times open /sub, read the first event, close (the connect scenario), at most
// `concurrency` at a time. Two runs of the server, one with `warm` connects and one with `warm +
// connects`, and the difference of their totals divided by `connects` is the cost of one connect,
// start-up, warm-up and exit taken out.
//
//   npm run build && node bench/callgrind.js [--subjects=fastify-floor,fastify-sse-stream] \
//     [--dist=DIR (adds 'patched')] [--ours=DIR] [--warm=1000] [--connects=2000] [--concurrency=10]
//   node bench/callgrind.js --cpu-prof --connects=20000   # a V8 CPU profile of each server instead
//   node bench/callgrind.js --cache-sim                    # simulated cache misses per connect too
//   node bench/callgrind.js --node-flags=single-threaded   # repeatable counts: no V8 helper threads
import { spawn } from 'node:child_process'
import { createWriteStream, readFileSync, readdirSync, mkdirSync, rmSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { SseConnection } from './lib/sse-client.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const args = Object.fromEntries(process.argv.slice(2).map((a) => /^--([^=]+)(?:=(.*))?$/.exec(a)).filter(Boolean).map((m) => [m[1], m[2] ?? true]))

// The server side: a subject, its port on stdout, and exit when stdin ends.
if (args.mode === 'server') {
  const { Hub } = await import('./lib/hub.js')
  const subject = args.subject
  const { start } = await import(`./subjects/${subject === 'patched' ? 'fastify-sse-stream' : subject}.js`)
  const server = await start({ hub: new Hub() })
  process.stdout.write(JSON.stringify({ port: server.port }) + '\n')
  process.stdin.resume()
  process.stdin.on('end', async () => {
    await server.close()
    process.exit(0)
  })
} else {
  await main()
}

/** `count` connects to `port`, at most `concurrency` at a time; resolves with the errors seen. */
function connects (port, count, concurrency) {
  let started = 0
  let finished = 0
  let errors = 0
  return new Promise((resolve) => {
    const next = () => {
      if (started >= count) {
        if (finished === count) resolve(errors)
        return
      }
      started++
      let settled = false
      const done = (ok) => {
        if (settled) return
        settled = true
        if (!ok) errors++
        finished++
        c.close()
        setImmediate(next)
      }
      const c = new SseConnection(port, '/sub', { now: () => 0, onFrame: () => done(true), onEnd: () => done(false) })
    }
    for (let i = 0; i < concurrency; i++) next()
  })
}

/** One run of the server under callgrind with `count` connects; its total instruction count. */
async function run (subject, count, concurrency, outDir) {
  const out = path.join(outDir, `${subject}-${count}.out`)
  for (const name of readdirSync(outDir)) if (name.startsWith(path.basename(out))) rmSync(path.join(outDir, name))
  const env = { ...process.env }
  if (subject === 'patched') env.BENCH_DIST = path.resolve(String(args.dist), 'index.js')
  // --ours=DIR: the subject fastify-sse-stream from a copy of the build, which a rebuild during
  // the (long) run cannot change under it.
  else if (subject === 'fastify-sse-stream' && args.ours !== undefined) env.BENCH_DIST = path.resolve(String(args.ours), 'index.js')
  // --node-flags=A,B: V8 or Node flags for the server; --node-flags=single-threaded makes the counts
  // repeatable (no background compiles or GC threads whose timing moves work between the windows).
  const nodeFlags = args['node-flags'] === undefined ? [] : String(args['node-flags']).split(',').map((f) => '--' + f)
  const server = [process.execPath, ...nodeFlags, '--expose-gc', fileURLToPath(import.meta.url), '--mode=server', `--subject=${subject}`]
  // --cpu-prof: a V8 CPU profile of the server instead (bench/profile-summary.js reads it).
  const traced = args.trace === undefined ? [] : String(args.trace).split(',').map((f) => '--' + f)
  const child = args.trace !== undefined
    ? spawn(server[0], [...traced, ...server.slice(1)], { env, stdio: ['pipe', 'pipe', 'inherit'] })
    : args['cpu-prof'] === true
    ? spawn(server[0], ['--cpu-prof', `--cpu-prof-dir=${path.join(outDir, 'prof')}`, `--cpu-prof-name=${subject}-${count}.cpuprofile`, ...server.slice(1)], { env, stdio: ['pipe', 'pipe', 'pipe'] })
    : spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, '--dump-instr=no', '--separate-threads=yes', ...(args['cache-sim'] === true ? ['--cache-sim=yes'] : []), ...server], { env, stdio: ['pipe', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr?.on('data', (d) => { stderr += d })
  // --trace=trace-deopt,trace-opt: V8's trace of the server, in bench/out/callgrind/<subject>.trace
  if (args.trace !== undefined) child.stdout.pipe(createWriteStream(path.join(outDir, `${subject}.trace`)))
  const port = await new Promise((resolve, reject) => {
    let text = ''
    const timer = setTimeout(() => reject(new Error(`${subject}: no port in 600 s\n${stderr}`)), 600_000)
    child.stdout.on('data', (d) => {
      text += d
      const m = /\{"port":(\d+)\}/.exec(text)
      if (m !== null) { clearTimeout(timer); resolve(Number(m[1])) }
    })
    child.on('exit', (code) => reject(new Error(`${subject} exited with ${code}\n${stderr}`)))
  })
  const errors = await connects(port, count, concurrency)
  const exited = new Promise((resolve) => child.on('exit', resolve))
  child.stdin.end()
  const timer = setTimeout(() => child.kill('SIGKILL'), 600_000)
  await exited
  clearTimeout(timer)
  if (args['cpu-prof'] === true || args.trace !== undefined) return { instructions: 0, errors }
  // One file per thread (<out>-01 is the main thread; the others are V8's compiler and GC
  // helpers, whose work moves between windows with the moment a compile or a major GC lands).
  // With --cache-sim, the simulated cache misses too: first level (data reads and writes) and
  // last level (data), which is where a cold object costs a trip to memory.
  let instructions = 0
  let main = 0
  const misses = { d1: 0, ll: 0, mainD1: 0, mainLL: 0 }
  for (const name of readdirSync(outDir).filter((f) => f.startsWith(path.basename(out) + '-'))) {
    const text = readFileSync(path.join(outDir, name), 'utf8')
    const m = /^(?:summary|totals): ([\d ]+)/m.exec(text)
    if (m === null) throw new Error(`${subject}: no total in ${name}`)
    const named = /^events: (.+)$/m.exec(text)
    if (named === null) throw new Error(`${subject}: no events line in ${name}`)
    const events = named[1].trim().split(/\s+/)
    const values = m[1].trim().split(/\s+/).map(Number)
    const of = (event) => values[events.indexOf(event)] ?? 0
    const isMain = name.endsWith('-01')
    instructions += of('Ir')
    if (isMain) main = of('Ir')
    const d1 = of('D1mr') + of('D1mw')
    const ll = of('DLmr') + of('DLmw')
    misses.d1 += d1
    misses.ll += ll
    if (isMain) { misses.mainD1 = d1; misses.mainLL = ll }
  }
  return { instructions, main, misses, errors }
}

async function main () {
  const subjects = String(args.subjects ?? 'fastify-floor,fastify-sse-stream').split(',')
  if (args.dist !== undefined && !subjects.includes('patched')) subjects.push('patched')
  const warm = Number(args.warm ?? 1000)
  const count = Number(args.connects ?? 2000)
  const concurrency = Number(args.concurrency ?? 10)
  const outDir = path.join(here, 'out', 'callgrind')
  mkdirSync(outDir, { recursive: true })
  const rows = []
  for (const subject of subjects) {
    if (args.trace !== undefined) {
      await run(subject, count, concurrency, outDir)
      continue
    }
    if (args['cpu-prof'] === true) {
      await run(subject, count, concurrency, outDir)
      console.log(`${subject}: ${path.join(outDir, 'prof', `${subject}-${count}.cpuprofile`)}`)
      continue
    }
    const a = await run(subject, warm, concurrency, outDir)
    const b = await run(subject, warm + count, concurrency, outDir)
    const perConnect = (b.instructions - a.instructions) / count
    const mainPerConnect = (b.main - a.main) / count
    const missesPerConnect = Object.fromEntries(Object.keys(a.misses).map((k) => [k, (b.misses[k] - a.misses[k]) / count]))
    rows.push({ subject, perConnect, mainPerConnect, misses: missesPerConnect, errors: a.errors + b.errors })
    console.log(`${subject}: ${Math.round(perConnect).toLocaleString('en-US')} instructions per connect, ${Math.round(mainPerConnect).toLocaleString('en-US')} on the main thread (${a.instructions} / ${a.main} at ${warm}, ${b.instructions} / ${b.main} at ${warm + count}; errors ${a.errors + b.errors})`)
  }
  const floor = rows.find((r) => r.subject === 'fastify-floor')
  const ratio = (v, f) => floor === undefined ? '' : (v / f).toFixed(2) + '×'
  console.log('\n| subject | instructions / connect | vs floor | main thread | vs floor |\n| --- | ---: | ---: | ---: | ---: |')
  for (const r of rows) {
    console.log(`| ${r.subject} | ${Math.round(r.perConnect).toLocaleString('en-US')} | ${ratio(r.perConnect, floor?.perConnect)} | ${Math.round(r.mainPerConnect).toLocaleString('en-US')} | ${ratio(r.mainPerConnect, floor?.mainPerConnect)} |`)
  }
  if (args['cache-sim'] === true) {
    const int = (v) => Math.round(v).toLocaleString('en-US')
    console.log('\n| subject | data misses, first level / connect | vs floor | last level | vs floor | main thread: first level | last level |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
    for (const r of rows) {
      const m = r.misses
      console.log(`| ${r.subject} | ${int(m.d1)} | ${ratio(m.d1, floor?.misses.d1)} | ${int(m.ll)} | ${ratio(m.ll, floor?.misses.ll)} | ${int(m.mainD1)} | ${int(m.mainLL)} |`)
    }
  }
}

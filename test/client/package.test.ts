// Packaging of the client: the subpath exports, no Node-only import and no dependency but
// eventsource-parser, source maps that point at files the package ships, and the size of the
// core and of compat, minified and gzipped, with eventsource-parser bundled in.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import t from 'tap'
import { build } from 'esbuild'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

t.test('exports, sideEffects and dependencies', async (t) => {
  t.same(Object.entries(pkg.exports['./client']), [['types', './dist/lib/client/index.d.ts'], ['default', './dist/lib/client/index.js']], 'types first')
  t.same(Object.entries(pkg.exports['./client/compat']), [['types', './dist/lib/client/compat.d.ts'], ['default', './dist/lib/client/compat.js']])
  t.equal(pkg.sideEffects, false)
  t.ok(pkg.dependencies['eventsource-parser'], 'eventsource-parser is a runtime dependency')
})

t.test('the client imports nothing but its own files and eventsource-parser', async (t) => {
  const dir = join(root, 'lib/client')
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
    const source = readFileSync(join(dir, file), 'utf8')
    const specifiers = [...source.matchAll(/^(?:import|export)\b[^'"]*?from\s+'([^']+)'/gm)].map((m) => m[1]!)
    for (const specifier of specifiers) t.ok(specifier.startsWith('./') || specifier === 'eventsource-parser', `${file}: ${specifier}`)
  }
})

t.test('the built subpaths load by package name, and their source maps point at shipped files', async (t) => {
  if (!existsSync(join(root, 'dist/lib/client/index.js.map'))) execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root })
  const client = await import('fastify-sse-stream/client')
  const compat = await import('fastify-sse-stream/client/compat')
  t.equal(typeof client.connect, 'function')
  t.equal(typeof compat.fetchEventSource, 'function')
  t.equal(compat.EventStreamContentType, 'text/event-stream')

  const packed = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' }))
  const files = new Set<string>(packed[0].files.map((f: { path: string }) => f.path))
  const maps = [...files].filter((f) => f.endsWith('.js.map'))
  t.ok(maps.includes('dist/lib/client/index.js.map') && maps.includes('dist/lib/client/compat.js.map'))
  for (const map of maps) {
    const { sources } = JSON.parse(readFileSync(join(root, map), 'utf8')) as { sources: string[] }
    for (const source of sources) {
      const shipped = relative(root, resolve(root, dirname(map), source))
      t.ok(files.has(shipped), `${map} → ${shipped} is in the package`)
    }
  }
})

t.test('size: minified and gzipped, eventsource-parser included', async (t) => {
  const sizes: Record<string, { min: number, gzip: number }> = {}
  for (const entry of ['index', 'compat']) {
    const result = await build({
      entryPoints: [join(root, `lib/client/${entry}.ts`)],
      bundle: true,
      minify: true,
      format: 'esm',
      // A browser build: any Node-only import would fail it.
      platform: 'browser',
      write: false
    })
    const code = result.outputFiles[0]!.contents
    sizes[entry] = { min: code.byteLength, gzip: gzipSync(code, { level: 9 }).byteLength }
  }
  t.comment(`core: ${sizes.index!.min} B min, ${sizes.index!.gzip} B min+gzip; compat: ${sizes.compat!.min} B min, ${sizes.compat!.gzip} B min+gzip`)
  t.ok(sizes.index!.gzip <= 5 * 1024, `the core is ${sizes.index!.gzip} B, within 5 KB`)
})

// The docs cannot rot: every relative link and #anchor in README.md and docs/*.md resolves, with
// anchors made by GitHub's rules, and every page in docs/ is listed in the README.
// GitHub's heading anchor: the heading's rendered text, lower-cased, with every character removed
// that is not a letter, a mark, a decimal or letter number, a connector (`_`), `-` or a space;
// then each space becomes `-`. A repeated anchor gets `-1`, `-2`… in document order.
import t from 'tap'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join, normalize } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

/** The lines of a markdown text outside fenced code blocks, with their line numbers. */
function proseLines (md: string): Array<[number, string]> {
  const out: Array<[number, string]> = []
  let fence: string | undefined
  md.split('\n').forEach((line, i) => {
    const open = /^\s*(`{3,}|~{3,})/.exec(line)
    if (fence !== undefined) {
      if (open !== null && open[1][0] === fence[0] && open[1].length >= fence.length) fence = undefined
    } else if (open !== null) {
      fence = open[1]
    } else {
      out.push([i + 1, line])
    }
  })
  return out
}

function slug (heading: string): string {
  // A link or an image counts by its text, an HTML tag not at all; a code span by its text as it is.
  const text = heading.split(/(`+[^`]*?`+)/).map((part, i) => i % 2 === 1
    ? part
    : part.replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/<[^>]+>/g, '')).join('')
  return text.toLowerCase().replace(/[^\p{L}\p{M}\p{Nd}\p{Nl}\p{Pc}\- ]/gu, '').replace(/ /g, '-')
}

function anchors (md: string): Set<string> {
  const seen = new Map<string, number>()
  const out = new Set<string>()
  for (const [, line] of proseLines(md)) {
    const m = /^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/.exec(line)
    if (m === null) continue
    const base = slug(m[1])
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    out.add(n === 0 ? base : `${base}-${n}`)
  }
  return out
}

/** Every link target in a markdown text, outside code: inline links, images, definitions. */
function links (md: string): Array<{ line: number, target: string }> {
  const out: Array<{ line: number, target: string }> = []
  for (const [line, raw] of proseLines(md)) {
    const text = raw.replace(/(`+)[^`]*?\1/g, '') // code spans are not links
    for (const m of text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ line, target: m[1] })
    const def = /^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/.exec(text)
    if (def !== null) out.push({ line, target: def[1] })
  }
  return out
}

/**
 * The broken links of a set of markdown files (paths relative to the repository root). A link to
 * a markdown file is checked against `files`; any other file must exist on disk.
 */
function check (files: Map<string, string>): string[] {
  const problems: string[] = []
  for (const [file, md] of files) {
    for (const { line, target } of links(md)) {
      if (/^[a-z][a-z\d+.-]*:/i.test(target)) continue // https:, mailto:: not ours to check
      const where = `${file}:${line}: ${target}`
      const hash = target.indexOf('#')
      const path = hash === -1 ? target : target.slice(0, hash)
      const anchor = hash === -1 ? undefined : decodeURIComponent(target.slice(hash + 1))
      const resolved = path === '' ? file : normalize(join(dirname(file), decodeURIComponent(path)))
      if (resolved.startsWith('..') || path.startsWith('/')) {
        problems.push(`${where}: outside the repository`)
        continue
      }
      const md = files.get(resolved)
      if (md === undefined && !existsSync(join(root, resolved))) {
        problems.push(`${where}: no such file`)
      } else if (anchor !== undefined) {
        if (md === undefined) problems.push(`${where}: an anchor into a file that is not checked markdown`)
        else if (!anchors(md).has(anchor)) problems.push(`${where}: no heading with this anchor in ${resolved}`)
      }
    }
  }
  return problems
}

function docs (): Map<string, string> {
  const names = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]
  return new Map(names.map((name) => [name, readFileSync(join(root, name), 'utf8')]))
}

t.test('anchors follow GitHub\'s rules', async (t) => {
  const md = [
    '# Resuming from `Last-Event-ID`',
    '## `reply.sse(source, options?) → Promise<void>`',
    '### Six connections per origin on HTTP/1.1',
    '## Stopping a client: 204',
    '## Async handlers and `sse: true`',
    '## A push-style producer (EventEmitter, callbacks)',
    '## snake_case and é…',
    '## A [link](x.md) and <em>html</em>',
    '## Errors',
    '## Errors',
    '```sh',
    '# not a heading',
    '```'
  ].join('\n')
  t.same([...anchors(md)], [
    'resuming-from-last-event-id',
    'replyssesource-options--promisevoid',
    'six-connections-per-origin-on-http11',
    'stopping-a-client-204',
    'async-handlers-and-sse-true',
    'a-push-style-producer-eventemitter-callbacks',
    'snake_case-and-é',
    'a-link-and-html',
    'errors',
    'errors-1'
  ])
})

t.test('the check finds a missing file, a missing anchor and a link out of the repository', async (t) => {
  const files = new Map([
    ['README.md', [
      '[ok](docs/a.md#second-part) [ok](#top) [ok](docs/demo.png) [ok](https://example.com/x#y)',
      '`[not a link](nowhere.md)`',
      '```md',
      '[not a link](nowhere.md)',
      '```',
      '# Top'
    ].join('\n')],
    ['docs/a.md', [
      '# A',
      '## Second part',
      '[bad](b.md) [bad](#nope) [bad](../README.md#second-part) [bad](../../outside.md)',
      '[bad](demo.png#x)',
      '[ref]: missing.md'
    ].join('\n')]
  ])
  t.same(check(files), [
    'docs/a.md:3: b.md: no such file',
    'docs/a.md:3: #nope: no heading with this anchor in docs/a.md',
    'docs/a.md:3: ../README.md#second-part: no heading with this anchor in README.md',
    'docs/a.md:3: ../../outside.md: outside the repository',
    'docs/a.md:4: demo.png#x: an anchor into a file that is not checked markdown',
    'docs/a.md:5: missing.md: no such file'
  ])
})

t.test('every relative link and anchor in README.md and docs/*.md resolves', async (t) => {
  const files = docs()
  t.ok(files.size > 5, `${files.size} files checked`)
  t.ok([...files.values()].reduce((n, md) => n + links(md).length, 0) > 30, 'the files do link to each other')
  t.same(check(files), [])
})

t.test('every page in docs/ is listed in the README', async (t) => {
  const files = docs()
  const fromReadme = new Set(links(files.get('README.md') ?? '').map(({ target }) => target.split('#')[0]))
  for (const name of files.keys()) {
    if (name !== 'README.md') t.ok(fromReadme.has(name), `README links to ${name}`)
  }
})

// Coverage counts the package itself: index.ts and lib/. Demo, bench and test helpers are not measured.
import { readdirSync } from 'node:fs'

const files = ['index.ts', ...readdirSync(new URL('../../lib/', import.meta.url)).filter((f) => f.endsWith('.ts')).map((f) => `lib/${f}`)]

export default function coverageMap () {
  return files
}

// Coverage counts the package itself: index.ts and lib/. Demo, bench and test helpers are not measured.
import { readdirSync } from 'node:fs'

const ts = (dir) => readdirSync(new URL(`../../${dir}/`, import.meta.url)).filter((f) => f.endsWith('.ts')).map((f) => `${dir}/${f}`)
const files = ['index.ts', ...ts('lib'), ...ts('lib/brokers')]

export default function coverageMap () {
  return files
}

// Coverage counts the package itself: index.ts and lib/. Demo, bench and test helpers are not
// measured. The client's tests (test/client/) cover the client (lib/client/); the others cover
// the plugin.
import { readdirSync } from 'node:fs'

const list = (dir) => readdirSync(new URL(`../../${dir}/`, import.meta.url)).filter((f) => f.endsWith('.ts')).map((f) => `${dir}/${f}`)
// The plugin: index.ts and every folder of lib/ but the client's.
const server = ['index.ts', ...list('lib'), ...list('lib/hub'), ...list('lib/brokers')]
const client = list('lib/client')

export default function coverageMap (testFile) {
  return testFile.replaceAll('\\', '/').startsWith('test/client/') ? client : server
}

// The baseline: hand-written node:http, pre-formatted frames, backpressure honoured.
import http from 'node:http'
import { events, readCount, HELLO_JSON } from '../lib/payload.js'
import { drainOrClose, queuedWriter } from '../lib/raw-writer.js'

const HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }

async function stream (req, res) {
  res.writeHead(200, HEADERS)
  const n = readCount(req.url, 200000)
  for await (const ev of events(n)) {
    if (res.destroyed) break
    if (!res.write('data: ' + JSON.stringify(ev.data) + '\n\n')) await drainOrClose(res)
  }
  res.end()
}

function subscribe (hub, req, res) {
  res.writeHead(200, HEADERS)
  res.write('data: ' + HELLO_JSON + '\n\n')
  // Frames that arrive while the socket is full wait, up to a bound.
  const remove = hub.add(queuedWriter(res))
  res.on('close', remove)
}

export async function start ({ hub }) {
  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/stream')) stream(req, res)
    else if (req.url.startsWith('/sub')) subscribe(hub, req, res)
    else res.writeHead(404).end()
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: server.address().port,
    close: () => { server.closeAllConnections(); server.close() }
  }
}

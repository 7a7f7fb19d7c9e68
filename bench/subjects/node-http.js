// The baseline: hand-written node:http, pre-formatted frames, backpressure honoured.
import http from 'node:http'
import { events, readCount, HELLO_JSON } from '../lib/payload.js'

const HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }
const QUEUE_LIMIT = 1024

function drainOrClose (res) {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}

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
  // Frames that arrive while the socket is full wait here, up to a bound.
  let queue = null
  const remove = hub.add((obj, json, frame) => {
    if (queue !== null) {
      if (queue.push(frame) > QUEUE_LIMIT) res.destroy()
    } else if (!res.write(frame)) {
      queue = []
    }
  })
  res.on('drain', () => {
    const q = queue
    queue = null
    if (q === null) return
    for (let i = 0; i < q.length; i++) {
      if (!res.write(q[i])) {
        queue = q.slice(i + 1)
        return
      }
    }
  })
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

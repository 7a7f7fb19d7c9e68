// The demo page: four live panels and a broadcast panel, no framework. Each panel shows its
// connection state, a reconnect counter, and every event with its name, id and data.
import { runSeedClient } from '/seed-client.js'

export function panel (id) {
  const root = document.getElementById(id)
  const state = root.querySelector('.state')
  const reconnects = root.querySelector('.reconnects')
  const list = root.querySelector('.events')
  let count = 0
  let stop = () => {}
  return {
    root,
    setState (value, label = value) {
      root.dataset.state = value
      state.textContent = label
    },
    reconnected () {
      reconnects.textContent = String(++count)
    },
    reset () {
      count = 0
      reconnects.textContent = '0'
      list?.replaceChildren()
    },
    /** One event; `servedBy`, when given, names the node whose stream delivered it. */
    add (name, id, data, servedBy) {
      const li = document.createElement('li')
      const fields = [['name ' + name, name], ['id', id === '' ? '—' : '#' + id], ['data', data]]
      if (servedBy !== undefined) {
        fields.push(['served-by', `served by ${servedBy}`])
        li.className = 'served'
      }
      for (const [className, text] of fields) {
        const span = document.createElement('span')
        span.className = className
        span.textContent = text
        li.append(span)
      }
      list.append(li)
      list.scrollTop = list.scrollHeight
    },
    note (text) {
      const li = document.createElement('li')
      li.className = 'note'
      li.textContent = text
      list.append(li)
      list.scrollTop = list.scrollHeight
    },
    /** Runs `start` now and on Restart; `start` returns its own stop function. */
    run (start) {
      const restart = () => {
        stop()
        this.reset()
        stop = start()
      }
      root.querySelector('.restart').addEventListener('click', restart)
      restart()
    }
  }
}

/** A random hex key (crypto.randomUUID() needs a secure context, which a LAN address is not). */
export function randomKey (bytes = 16) {
  return Array.from(crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('')
}

// The seed's stream with the browser's own EventSource (GET), by a key of the page's own: the
// browser reconnects to the same URL, which resumes the same work.
const seedNative = panel('seed-native')
seedNative.run(() => {
  const p = seedNative
  p.setState('connecting')
  const es = new EventSource(`/sse/${randomKey()}`)
  es.onopen = () => p.setState('open')
  es.onmessage = (e) => p.add('message', e.lastEventId, e.data)
  // The seed names three events `error`: they reach the same listener as connection errors.
  es.addEventListener('error', (e) => {
    if (e instanceof MessageEvent) return p.add('error', e.lastEventId, e.data)
    if (es.readyState === EventSource.CONNECTING) {
      p.reconnected()
      p.setState('reconnecting')
    } else {
      p.setState('failed', 'closed')
    }
  })
  es.addEventListener('end', (e) => {
    p.add('end', e.lastEventId, e.data)
    es.close() // else the browser would reconnect after retry (15 s) and replay the seed
    p.setState('ended', 'ended (end event)')
  })
  return () => es.close()
})

// The seed's own front end with fetch-event-source (POST, JSON body).
const seedFetch = panel('seed-fetch')
seedFetch.run(() => {
  const p = seedFetch
  p.setState('connecting')
  const { ctrl, done } = runSeedClient('/sse', {
    body: { foo: 'bar' },
    onEvent: (msg) => p.add(msg.event || 'message', msg.id, msg.data),
    onState: (state, err) => {
      if (state === 'open') {
        p.setState('open')
        p.note('onopen: content-type === "text/event-stream" ✓')
      } else if (state === 'retrying') {
        p.reconnected()
        p.setState('retrying', `retrying (${err?.message ?? err})`)
      } else if (state === 'failed') {
        p.setState('failed', `failed: ${err?.message ?? err}`)
      } else if (state === 'ended') {
        p.setState('ended', 'ended (end event)')
      }
    }
  })
  done.catch(() => {}) // a FatalError is shown by onState
  return () => ctrl.abort()
})

// The live ticker with EventSource: resume after Last-Event-ID, then 204.
const ticker = panel('ticker')
const lastId = ticker.root.querySelector('.last-id')
ticker.run(() => {
  const p = ticker
  p.setState('connecting')
  lastId.textContent = 'none'
  const es = new EventSource('/ticker')
  es.onopen = () => p.setState('open')
  es.addEventListener('resume', (e) => p.add('resume', e.lastEventId, e.data))
  es.addEventListener('tick', (e) => {
    p.add('tick', e.lastEventId, e.data)
    lastId.textContent = e.lastEventId
  })
  es.onerror = () => {
    if (es.readyState === EventSource.CONNECTING) {
      p.reconnected()
      p.setState('reconnecting')
      p.note(`stream ended; reconnecting with Last-Event-ID ${lastId.textContent}`)
    } else {
      p.setState('stopped', 'stopped (no reconnect)')
      p.note('the server answered 204 No Content: EventSource will not reconnect')
    }
  }
  return () => es.close()
})

// The same ticker read raw with fetch(), to show the bytes, heartbeats included.
const wire = panel('wire')
const raw = wire.root.querySelector('.raw')
function show (text) {
  raw.append(text)
  raw.scrollTop = raw.scrollHeight
}
function delay (ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve() }, { once: true })
  })
}
async function readWire (signal) {
  const p = wire
  let last = ''
  let retry = 3000
  for (let attempt = 0; attempt < 100 && !signal.aborted; attempt++) {
    p.setState('connecting')
    const headers = last === '' ? {} : { 'Last-Event-ID': last }
    const res = await fetch('/ticker', { headers, signal, cache: 'no-store' })
    p.reconnected()
    show(`> GET /ticker${last === '' ? '' : `  (Last-Event-ID: ${last})`}\n< ${res.status} ${res.statusText} ${res.headers.get('content-type') ?? ''}\n`)
    if (res.status === 204) {
      p.setState('stopped', 'stopped (204)')
      show('  the server says stop: no reconnect\n')
      return
    }
    if (!res.ok) return p.setState('failed', `failed: HTTP ${res.status}`)
    p.setState('open')
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
    let pending = ''
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      show(value)
      pending += value
      const lines = pending.split('\n')
      pending = lines.pop()
      for (const line of lines) {
        if (line.startsWith('id: ')) last = line.slice(4)
        else if (/^retry: \d+$/.test(line)) retry = Number(line.slice(7))
      }
    }
    show(`  (stream ended; again in ${retry} ms)\n`)
    p.setState('reconnecting')
    await delay(retry, signal)
  }
}
wire.run(() => {
  raw.replaceChildren()
  const ctrl = new AbortController()
  readWire(ctrl.signal).catch((err) => {
    if (!ctrl.signal.aborted) wire.setState('failed', `failed: ${err.message}`)
  })
  return () => ctrl.abort()
})

// The broadcast panel: two subscribers of one topic, a publish form, and a drop button each.
// GET /nodes says which instance served the page and which others share its topics. In memory
// it is the only one, and the panel is as it always was. With the Redis broker (REDIS_URL),
// subscriber B starts on another instance, the form publishes on any of them, each event says
// which node published it and which node's stream served it, and Switch node moves a subscriber
// to the next node, resuming with ?lastEventId=.
const TOPIC = 'demo'
const board = document.getElementById('broadcast')
board.dataset.state = 'open'
const cluster = { broker: 'memory', node: '', nodes: [] }

/** Where a node's routes are: this page's own origin, or the same host on the node's port. */
function base (node) {
  return node.name === cluster.node ? '' : `${location.protocol}//${location.hostname}:${node.port}`
}

async function refreshNodes () {
  const res = await fetch('/nodes')
  Object.assign(cluster, await res.json())
  if (cluster.broker !== 'redis') return
  const header = document.querySelector('.cluster')
  header.hidden = false
  header.textContent = `This page: node ${cluster.node}, hub on Redis · nodes: ` +
    cluster.nodes.map((n) => `${n.name} (port ${n.port})`).join(', ')
  for (const el of board.querySelectorAll('.on-node, .via, .switch')) el.hidden = false
  const select = board.querySelector('select[name="node"]')
  const chosen = select.value || cluster.node
  select.replaceChildren(...cluster.nodes.map((n) => new Option(n.name, n.name, false, n.name === chosen)))
}

/** The node after `name` in the list, round the end; the page's own node when none is known. */
function nextNode (name) {
  const at = cluster.nodes.findIndex((n) => n.name === name)
  return cluster.nodes[(at + 1) % cluster.nodes.length] ?? { name: cluster.node }
}

function subscriber (id, start) {
  const p = panel(id)
  const lastId = p.root.querySelector('.last-id')
  const via = p.root.querySelector('.via .node')
  // The server knows this connection by the client id in its URL: POST /drop/<client> cuts it.
  const client = `${id}-${randomKey(4)}`
  p.root.dataset.client = client
  let node = start
  let es
  function open (from) {
    const servedBy = node.name
    p.root.dataset.node = servedBy
    via.textContent = servedBy
    p.setState('connecting')
    const resume = from === undefined ? '' : `&lastEventId=${encodeURIComponent(from)}`
    es = new EventSource(`${base(node)}/topics/${TOPIC}?client=${client}${resume}`)
    es.onopen = () => p.setState('open')
    es.addEventListener('post', (e) => {
      const { text, at, node: publishedOn } = JSON.parse(e.data)
      if (cluster.broker === 'redis') p.add('post', e.lastEventId, `${text} · ${at} · published on ${publishedOn}`, servedBy)
      else p.add('post', e.lastEventId, `${text} · ${at}`)
      lastId.textContent = e.lastEventId
    })
    // Told in-band when the position could not be served (history trimmed, say).
    es.addEventListener('sse-reset', (e) => p.add('sse-reset', e.lastEventId, e.data))
    es.onerror = () => {
      if (es.readyState === EventSource.CONNECTING) {
        p.reconnected()
        p.setState('reconnecting')
        const from = lastId.textContent === 'none' ? 'the position it was primed with' : lastId.textContent
        p.note(`connection lost; reconnecting with Last-Event-ID ${from}`)
      } else {
        p.setState('failed', 'closed')
      }
    }
  }
  open()
  p.root.querySelector('.drop').addEventListener('click', async () => {
    const res = await fetch(`${base(node)}/drop/${client}`, { method: 'POST' })
    if (!res.ok) p.note(`drop: HTTP ${res.status} (not connected)`)
  })
  // Closes this stream and opens one on the next node after 1 s, as a browser would after its
  // retry delay, from the last event shown. (A page cannot read the id of the priming frame,
  // which dispatches no event: before the first event, the new stream starts at the live edge.)
  p.root.querySelector('.switch').addEventListener('click', async () => {
    await refreshNodes()
    const next = nextNode(node.name)
    if (next.name === node.name) return p.note('no other node: start one with REDIS_URL and another PORT')
    es.close()
    const from = lastId.textContent === 'none' ? undefined : lastId.textContent
    p.reconnected()
    p.setState('switching', `switching to node ${next.name}`)
    p.note(`closed the stream on node ${node.name}; resuming on node ${next.name} in 1 s` +
      (from === undefined ? ' at the live edge (no event yet)' : ` with ?lastEventId=${from}`))
    node = next
    setTimeout(() => open(from), 1000)
  })
}

const form = board.querySelector('.publish')
const published = board.querySelector('.published')
let publishes = 0
form.addEventListener('submit', async (e) => {
  e.preventDefault()
  const on = cluster.nodes.find((n) => n.name === form.elements.node.value) ?? { name: cluster.node }
  const res = await fetch(`${base(on)}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ topic: TOPIC, text: form.elements.text.value })
  })
  const body = await res.json()
  const where = cluster.broker === 'redis' ? ` on node ${body.node}` : ''
  published.textContent = res.ok ? `published #${body.id}${where}` : `failed: ${body.message}`
  published.dataset.count = String(++publishes)
})

refreshNodes().catch(() => {}).finally(() => {
  const self = { name: cluster.node }
  subscriber('sub-a', self)
  subscriber('sub-b', cluster.broker === 'redis' ? nextNode(cluster.node) : self)
  // Instances started after the page loaded show up in the list and the form.
  if (cluster.broker === 'redis') setInterval(() => { refreshNodes().catch(() => {}) }, 5000)
})

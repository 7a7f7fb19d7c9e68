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
    add (name, id, data) {
      const li = document.createElement('li')
      const fields = [['name ' + name, name], ['id', id === '' ? '—' : '#' + id], ['data', data]]
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
const TOPIC = 'demo'
const board = document.getElementById('broadcast')
board.dataset.state = 'open'

function subscriber (id) {
  const p = panel(id)
  const lastId = p.root.querySelector('.last-id')
  // The server knows this connection by the client id in its URL: POST /drop/<client> cuts it.
  const client = `${id}-${randomKey(4)}`
  p.root.dataset.client = client
  p.setState('connecting')
  const es = new EventSource(`/topics/${TOPIC}?client=${client}`)
  es.onopen = () => p.setState('open')
  es.addEventListener('post', (e) => {
    const { text, at } = JSON.parse(e.data)
    p.add('post', e.lastEventId, `${text} · ${at}`)
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
  p.root.querySelector('.drop').addEventListener('click', async () => {
    const res = await fetch(`/drop/${client}`, { method: 'POST' })
    if (!res.ok) p.note(`drop: HTTP ${res.status} (not connected)`)
  })
}
subscriber('sub-a')
subscriber('sub-b')

const form = board.querySelector('.publish')
const published = board.querySelector('.published')
let publishes = 0
form.addEventListener('submit', async (e) => {
  e.preventDefault()
  const res = await fetch('/publish', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ topic: TOPIC, text: form.elements.text.value })
  })
  const body = await res.json()
  published.textContent = res.ok ? `published #${body.id}` : `failed: ${body.message}`
  published.dataset.count = String(++publishes)
})

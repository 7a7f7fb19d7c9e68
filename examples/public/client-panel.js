// The seed's stream read with this package's client, fastify-sse-stream/client (bundled by the
// demo at /vendor/client.js): a POST with an Idempotency-Key, resumed after a drop that the server
// forces, with no duplicate. The panel notes each request the client sends.
import { connect } from '/vendor/client.js'
import { panel, randomKey } from '/app.js'

const p = panel('seed-client')

p.run(() => {
  // The server knows this panel's requests by the client id in their URL: POST /drop/<client>
  // cuts them. The resume URL the server advertises has no query, so the demo adds the id to
  // every request through the client's `fetch` option. (An app would not need this.)
  const client = `seed-client-${randomKey(4)}`
  p.root.dataset.client = client
  p.setState('connecting')
  const stream = connect('/sse', {
    method: 'POST',
    body: { foo: 'bar' },
    idempotencyKey: true, // a random key, sent with every attempt
    terminalEvent: 'end', // the seed's last event: the stream ends cleanly once it is delivered
    async fetch (request) {
      const url = new URL(request.url)
      const last = request.headers.get('last-event-id')
      p.note(`${request.method} ${url.pathname}` + (last === null
        ? ` · Idempotency-Key ${request.headers.get('idempotency-key')}`
        : ` · Last-Event-ID ${last}`))
      url.searchParams.set('client', client)
      const body = request.method === 'GET' ? undefined : await request.text()
      return fetch(url, { method: request.method, headers: request.headers, body, signal: request.signal })
    },
    onOpen: () => p.setState('open'),
    onRetry: ({ delay, error }) => {
      p.reconnected()
      p.setState('reconnecting', `reconnecting in ${(delay / 1000).toFixed(1)} s`)
      p.note(`${error.message}; resuming in ${(delay / 1000).toFixed(1)} s`)
    },
    onClose: ({ reason, error }) => {
      if (reason === 'end') p.setState('ended', 'ended (end event)')
      else if (reason === 'abort') p.setState('closed')
      else p.setState('failed', `${reason}: ${error?.message ?? error}`)
    }
  })
  ;(async () => {
    for await (const { event, id, data } of stream) p.add(event, id, data)
  })().catch(() => {}) // shown by onClose
  return () => stream.close()
})

p.root.querySelector('.drop').addEventListener('click', async () => {
  const res = await fetch(`/drop/${p.root.dataset.client}`, { method: 'POST' })
  if (!res.ok) p.note(`drop: HTTP ${res.status} (not connected)`)
})

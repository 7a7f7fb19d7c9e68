// The randomized resume test of issue 10: a publisher at full speed, 20 clients (10 over node:http,
// 10 npm `eventsource`) dropped by the server at random and reconnecting with their last id. Each
// sees every event exactly once, in order, or an explicit sse-reset whose `from` is the position it
// had and whose id is the head it goes on from. History is small (300 events), and node:http
// clients stay away for a random number of events (0 to 600), so that both exact resumes and
// 'trimmed' resets happen. The seed is printed; SSE_SEED=<seed> repeats a run's choices.
//
// Client deviation found on the way (not a plugin bug): eventsource@4 ignores an id-only frame
// (eventsource-parser drops a frame with no data line, id included), so the priming frame does not
// give it a position: one dropped before its first event reconnects without Last-Event-ID and
// starts at the live edge. The spec sets the last event id before the empty-data check, and
// Chromium does (browser-resume.test.ts). The eventsource clients here are dropped only once they
// have an id; the deviation itself is pinned by the last test below.
import t from 'tap'
import { EventSource } from 'eventsource'
import type { Socket } from 'node:net'
import { setImmediate as turn } from 'node:timers/promises'
import { build } from './helpers/stream.js'
import { deferred, listen, within } from './helpers/http.js'
import { type Frame, SseReader, checkOneTopic, offsetOf, probeBroker, subscribe } from './helpers/hub.js'
import { seededRandom } from './helpers/random.js'

const EVENTS = 5000

/** Each event's data is its number, which is its offset: the event is the one its id names. */
function checkData (frames: readonly Frame[]): void {
  for (const f of frames) {
    if (f.event === 'n' && f.data !== String(offsetOf(f.id!))) throw new Error(`event ${f.id} carries ${f.data}`)
  }
}
const CLIENTS = 20
const HISTORY = 300

t.test('20 clients dropped at random by the server resume exactly, or are told', async (t) => {
  const seed = Number(process.env.SSE_SEED ?? Date.now() % 2 ** 31)
  t.comment(`seed ${seed}`)
  const random = seededRandom(seed)
  const { app } = await build(t, { heartbeat: false, hub: { history: { size: HISTORY } } })
  // The server side of each client's current connection, to drop it.
  const sockets = new Map<number, Socket>()
  const everyone = deferred()
  app.get('/r', (req, reply) => {
    const c = Number((req.query as { c: string }).c)
    const socket = req.raw.socket
    sockets.set(c, socket)
    socket.once('close', () => { if (sockets.get(c) === socket) sockets.delete(c) })
    if (sockets.size === CLIENTS) everyone.resolve()
    return reply.sseSubscribe('r', { retry: 10 })
  })
  const url = await listen(app)
  t.teardown(() => app.server.closeAllConnections())

  // The publisher's progress, for clients that stay away for a number of events.
  let published = 0
  let progress = deferred()
  const publishedAtLeast = async (n: number): Promise<void> => {
    while (published < n && published < EVENTS) await progress.promise
  }

  interface Tally { connections: number, resets: number, delivered: number, last: string | undefined }
  const tallies: Tally[] = []
  const done: Array<Promise<void>> = []
  const esClients: EventSource[] = []
  // Whether client c may be dropped now (an eventsource client only once it has an id, see above).
  const droppable: boolean[] = []

  for (let c = 0; c < CLIENTS; c++) {
    const tally: Tally = { connections: 0, resets: 0, delivered: 0, last: undefined }
    tallies.push(tally)
    if (c % 2 === 0) {
      // node:http: reconnects by hand, after staying away for a random number of events.
      droppable.push(true)
      const away = Array.from({ length: 64 }, () => Math.floor(random() * 2 * HISTORY))
      done.push((async () => {
        let lastId: string | undefined
        for (let k = 0; k < 64; k++) {
          tally.connections++
          // It leaves by itself once it has the last event.
          const reader: SseReader = new SseReader(`${url}/r?c=${c}`, lastId === undefined ? {} : { lastEventId: lastId }, (frame) => {
            if (frame.id !== undefined && offsetOf(frame.id) === EVENTS) reader.destroy()
          })
          await reader.closed
          const seq = checkOneTopic(reader.frames, lastId)
          checkData(reader.frames)
          tally.resets += seq.resets.length
          tally.delivered += seq.offsets.length
          lastId = seq.last
          tally.last = lastId
          if (lastId !== undefined && offsetOf(lastId) === EVENTS) return
          await publishedAtLeast(published + away[k]!)
        }
        throw new Error(`client ${c} did not catch up in 64 connections`)
      })())
    } else {
      // eventsource: reconnects by itself, 10 ms later, with its last id.
      droppable.push(false)
      const frames: Frame[] = []
      const whole = deferred()
      const es = new EventSource(`${url}/r?c=${c}`)
      esClients.push(es)
      es.onopen = () => { tally.connections++ }
      const record = (type: string) => (e: MessageEvent): void => {
        frames.push({ event: type, data: e.data, id: e.lastEventId })
        droppable[c] = true
        if (offsetOf(e.lastEventId) === EVENTS) whole.resolve()
      }
      es.addEventListener('n', record('n'))
      es.addEventListener('sse-reset', record('sse-reset'))
      done.push(whole.promise.then(() => {
        es.close()
        const seq = checkOneTopic(frames, undefined)
        checkData(frames)
        tally.resets = seq.resets.length
        tally.delivered = seq.offsets.length
        tally.last = seq.last
      }))
    }
  }
  t.teardown(() => { for (const es of esClients) es.close() })

  await within(everyone.promise, 5000, 'every client to connect')

  let drops = 0
  while (published < EVENTS) {
    const burst = Math.min(EVENTS - published, 1 + Math.floor(random() * 64))
    const ids: Array<Promise<string>> = []
    for (let i = 0; i < burst; i++) ids.push(app.sse.publish('r', { event: 'n', data: String(published + i + 1) }))
    const got = await Promise.all(ids)
    if (offsetOf(got.at(-1)!) !== published + burst) throw new Error('ids are not contiguous offsets')
    published += burst
    progress.resolve()
    progress = deferred()
    // The server drops a random connected client, now and then.
    if (random() < 0.6) {
      const c = Math.floor(random() * CLIENTS)
      const socket = sockets.get(c)
      if (socket !== undefined && droppable[c]!) {
        socket.destroy()
        drops++
      }
    }
    // One macrotask: the hub flushes its subscribers, clients read, reconnects arrive.
    await turn()
  }
  progress.resolve()
  await within(Promise.all(done), 30_000, 'every client to have every event, or a reset for it')

  const resets = tallies.reduce((n, x) => n + x.resets, 0)
  const connections = tallies.reduce((n, x) => n + x.connections, 0)
  t.comment(`${drops} drops, ${connections} connections, ${resets} resets; delivered/connections per client: ${tallies.map((x) => `${x.delivered}/${x.connections}`).join(' ')}`)
  for (const [c, tally] of tallies.entries()) {
    t.equal(offsetOf(tally.last!), EVENTS, `client ${c} ends at the head, every event in order or reset`)
  }
  t.ok(drops >= 20, 'the server dropped clients')
  t.ok(resets > 0, 'some clients stayed away past the history and were told')
  t.ok(tallies.some((x) => x.resets === 0 && x.connections > 1), 'some clients resumed exactly across drops')
})

t.test('eventsource@4 ignores the priming frame: dropped before its first event, it starts over at the live edge', async (t) => {
  const { app } = await build(t, { heartbeat: false })
  const lastIds: Array<string | undefined> = []
  const sockets: Socket[] = []
  const second = deferred()
  app.get('/', (req, reply) => {
    lastIds.push(req.headers['last-event-id'] as string | undefined)
    sockets.push(req.raw.socket)
    if (sockets.length === 2) second.resolve()
    return reply.sseSubscribe('p', { retry: 10 })
  })
  const url = await listen(app)
  t.teardown(() => app.server.closeAllConnections())
  const head = await app.sse.publish('p', { data: 'before' })
  // The client's fetch, watched: the priming frame has reached the client's parser.
  const primed = deferred()
  const es = new EventSource(url + '/', {
    fetch: async (input, init) => {
      const res = await fetch(input, init)
      const body = res.body!.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
        transform (chunk, controller) {
          controller.enqueue(chunk)
          if (Buffer.from(chunk).toString().includes(`id: ${head}\n\n`)) primed.resolve()
        }
      }))
      return new Response(body, { status: res.status, headers: res.headers })
    }
  })
  t.teardown(() => es.close())
  await within(primed.promise, 5000, 'the priming frame')
  sockets[0]!.destroy()
  await within(second.promise, 5000, 'the reconnect')
  t.same(lastIds, [undefined, undefined], `the reconnect sends no Last-Event-ID, although it was primed with ${head}`)
})

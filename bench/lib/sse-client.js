// A minimal SSE client on a raw node:net socket: one GET, the response head, chunked decoding,
// and a frame scanner that counts frames carrying `data:` and reads their `"t":` timestamp.
// Opt-in, for the hub phases (the other phases do not pay for them): the `"i":` event index,
// and the `id:` and `event:` fields, with a Last-Event-ID sent on connect.
import net from 'node:net'

const HEAD_END = Buffer.from('\r\n\r\n')
const FRAME_END = Buffer.from('\n\n')
const DATA = Buffer.from('data:')
const T_KEY = Buffer.from('"t":')
const I_KEY = Buffer.from('"i":')
const ID_FIELD = Buffer.from('id:')
const EVENT_FIELD = Buffer.from('event:')
const CR = 13
const LF = 10
const SEMI = 59

const HEAD = 0
const SIZE = 1
const BODY = 2
const BODY_END = 3 // the CRLF after a chunk's data
const RAW = 4 // not chunked: the body runs to the end of the connection
const DONE = 5

function hexValue (c) {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 97 && c <= 102) return c - 87
  if (c >= 65 && c <= 70) return c - 55
  return -1
}

/** The value of a field at a line start within [from, to), one leading space removed; or null. */
function field (buf, name, from, to) {
  let at = from
  for (;;) {
    at = buf.indexOf(name, at)
    if (at === -1 || at >= to) return null
    if (at === from || buf[at - 1] === LF) break
    at += name.length
  }
  let start = at + name.length
  if (buf[start] === 32) start++
  let stop = buf.indexOf(LF, start)
  if (stop === -1 || stop > to) stop = to
  return buf.toString('utf8', start, stop)
}

/**
 * One SSE connection. Callbacks:
 *  onHead(status), onFrame(t, now, i) for each frame with a data line (t is NaN without "t":;
 *  i is the event index with `index: true`, -1 without "i":), onEnd(error?) once the connection is gone.
 * With `ids: true`, `lastId` is the last `id:` field seen (any frame, as EventSource does) and
 * `lastEvent` the event type of the last frame with data ('' when it has none).
 * `lastEventId` is sent as the Last-Event-ID request header.
 */
export class SseConnection {
  constructor (port, path, { onHead, onFrame, onEnd, now, pause = false, index = false, ids = false, lastEventId }) {
    this.onHead = onHead
    this.onFrame = onFrame
    this.onEnd = onEnd
    this.now = now
    this.state = HEAD
    this.head = null
    this.size = 0
    this.sizeDigits = 0
    this.inExtension = false
    this.carry = null
    this.frames = 0
    this.bytes = 0 // decoded body bytes
    this.status = 0
    this.ended = false
    this.index = index
    this.ids = ids
    this.lastId = undefined
    this.lastEvent = ''
    this.socket = net.connect(port, '127.0.0.1')
    this.socket.setNoDelay(true)
    const resume = lastEventId === undefined ? '' : `Last-Event-ID: ${lastEventId}\r\n`
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n${resume}\r\n`)
    if (pause) {
      // A client that reads nothing: the kernel buffers fill and the server must stop.
      this.socket.pause()
    } else {
      this.socket.on('data', (buf) => this.read(buf))
    }
    this.socket.on('error', (err) => this.end(err))
    this.socket.on('close', () => this.end())
  }

  end (err) {
    if (this.ended) return
    this.ended = true
    this.onEnd?.(err)
  }

  /** Closes with a reset: no TIME_WAIT left behind, so thousands of reconnects do not run out of ports. */
  close () {
    if (this.socket.destroyed) return
    if (typeof this.socket.resetAndDestroy === 'function' && this.socket.readyState === 'open') this.socket.resetAndDestroy()
    else this.socket.destroy()
  }

  read (buf) {
    let i = 0
    if (this.state === HEAD) {
      const data = this.head === null ? buf : Buffer.concat([this.head, buf])
      const end = data.indexOf(HEAD_END)
      if (end === -1) {
        this.head = data
        return
      }
      this.head = null
      const text = data.latin1Slice(0, end).toLowerCase()
      this.status = Number(text.slice(9, 12))
      this.state = /\r\ntransfer-encoding:[ \t]*chunked/.test(text) ? SIZE : RAW
      this.onHead?.(this.status)
      buf = data
      i = end + 4
    }
    const now = this.now()
    const len = buf.length
    while (i < len) {
      switch (this.state) {
        case SIZE: {
          const c = buf[i++]
          if (c === LF) {
            if (this.sizeDigits === 0) break // the CRLF that precedes a size line
            this.inExtension = false
            this.sizeDigits = 0
            if (this.size === 0) {
              this.state = DONE
              return
            }
            this.state = BODY
          } else if (c === SEMI) {
            this.inExtension = true
          } else if (c !== CR && !this.inExtension) {
            const v = hexValue(c)
            if (v >= 0) {
              this.size = this.size * 16 + v
              this.sizeDigits++
            }
          }
          break
        }
        case BODY: {
          const take = Math.min(this.size, len - i)
          this.scan(buf.subarray(i, i + take), now)
          i += take
          this.size -= take
          if (this.size === 0) this.state = BODY_END
          break
        }
        case BODY_END:
          if (buf[i++] === LF) this.state = SIZE
          break
        case RAW:
          this.scan(i === 0 ? buf : buf.subarray(i), now)
          return
        default:
          return
      }
    }
  }

  /** Finds whole frames (ended by a blank line) in decoded body bytes. */
  scan (seg, now) {
    this.bytes += seg.length
    let buf = seg
    if (this.carry !== null) {
      buf = Buffer.concat([this.carry, seg])
      this.carry = null
    }
    let pos = 0
    let dataAt = -2
    let tAt = -2
    for (;;) {
      const end = buf.indexOf(FRAME_END, pos)
      if (end === -1) break
      if (this.ids) {
        const id = field(buf, ID_FIELD, pos, end)
        if (id !== null) this.lastId = id
      }
      if (dataAt !== -1 && dataAt < pos) dataAt = buf.indexOf(DATA, pos)
      if (dataAt !== -1 && dataAt < end) {
        if (tAt !== -1 && tAt < pos) tAt = buf.indexOf(T_KEY, pos)
        let t = NaN
        if (tAt !== -1 && tAt < end) {
          let j = tAt + 4
          while (j < end && buf[j] !== 44 && buf[j] !== 125) j++ // up to ',' or '}'
          t = Number(buf.latin1Slice(tAt + 4, j))
        }
        let i = -1
        if (this.index) {
          const iAt = buf.indexOf(I_KEY, dataAt)
          if (iAt !== -1 && iAt < end) {
            let j = iAt + 4
            i = 0
            while (j < end && buf[j] >= 48 && buf[j] <= 57) i = i * 10 + buf[j++] - 48
          }
        }
        if (this.ids) this.lastEvent = field(buf, EVENT_FIELD, pos, end) ?? ''
        this.frames++
        this.onFrame?.(t, now, i)
      }
      pos = end + 2
    }
    if (pos < buf.length) this.carry = Buffer.from(buf.subarray(pos))
  }
}

// A minimal SSE client on a raw node:net socket: one GET, the response head, chunked decoding,
// and a frame scanner that counts frames carrying `data:` and reads their `"t":` timestamp.
import net from 'node:net'

const HEAD_END = Buffer.from('\r\n\r\n')
const FRAME_END = Buffer.from('\n\n')
const DATA = Buffer.from('data:')
const T_KEY = Buffer.from('"t":')
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

/**
 * One SSE connection. Callbacks:
 *  onHead(status), onFrame(t, now) for each frame with a data line (t is NaN without "t":),
 *  onEnd(error?) once the connection is gone.
 */
export class SseConnection {
  constructor (port, path, { onHead, onFrame, onEnd, now, pause = false }) {
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
    this.socket = net.connect(port, '127.0.0.1')
    this.socket.setNoDelay(true)
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`)
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
      if (dataAt !== -1 && dataAt < pos) dataAt = buf.indexOf(DATA, pos)
      if (dataAt !== -1 && dataAt < end) {
        if (tAt !== -1 && tAt < pos) tAt = buf.indexOf(T_KEY, pos)
        let t = NaN
        if (tAt !== -1 && tAt < end) {
          let j = tAt + 4
          while (j < end && buf[j] !== 44 && buf[j] !== 125) j++ // up to ',' or '}'
          t = Number(buf.latin1Slice(tAt + 4, j))
        }
        this.frames++
        this.onFrame?.(t, now)
      }
      pos = end + 2
    }
    if (pos < buf.length) this.carry = Buffer.from(buf.subarray(pos))
  }
}

// The write path of the hand-written baselines (node:http, the Fastify floor, the Redis pub/sub
// baseline), one copy for all of them so that they stay alike.

// Frames a full response holds at most; past it, the response is destroyed (its client would
// resume), as this plugin's sink closes on overflow.
export const QUEUE_LIMIT = 1024

/** Settles once the response drains or closes: a source's backpressure. */
export function drainOrClose (res) {
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

/**
 * One response as a subscriber of the broadcaster (bench/lib/hub.js calls it with the event as an
 * object, as JSON and as a frame): the frame goes to the response while it takes data; while it
 * is full, frames wait in a queue of at most QUEUE_LIMIT, written in order on 'drain'. One closure
 * per response, as when each baseline wrote it inline.
 */
export function queuedWriter (res) {
  let queue = null
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
  return (obj, json, frame) => {
    if (queue !== null) {
      if (queue.push(frame) > QUEUE_LIMIT) res.destroy()
    } else if (!res.write(frame)) {
      queue = []
    }
  }
}

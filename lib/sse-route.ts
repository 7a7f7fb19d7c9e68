import type { FastifyInstance, FastifyReply, RouteOptions } from 'fastify'
import { isThenable } from './source.js'
import { FST_ERR_SSE_SERVER_CLOSING } from './errors.js'
import type { PluginState } from './plugin-state.js'
import { responseClosed } from './stream.js'

const kWaitForStream = Symbol('fastify-sse-stream.waitForStream')
const kRefused = Symbol('fastify-sse-stream.refused')

type Waiter = (failure?: { error: unknown }) => void
type WaitingReply = FastifyReply & { [kWaitForStream]?: Waiter, [kRefused]?: boolean }

/**
 * The `sse: true` route option. Fastify answers an async handler that resolves to `undefined`
 * with an empty 200, which a later reply.sse() could not undo. On these routes such a handler
 * waits instead, until the reply is taken by a stream (or refused with 503), or rejects with the
 * error that stopped reply.sse(), so that Fastify answers it rather than nothing at all.
 */
export function sseRouteHook (state: PluginState): (route: RouteOptions & { sse?: boolean }) => void {
  return function wrapSseRoute (route) {
    if (route.sse !== true) return
    const handler = route.handler
    route.handler = function sseRouteHandler (this: FastifyInstance, request, reply) {
      const result = handler.call(this, request, reply)
      if (!isThenable(result)) return result
      return Promise.resolve(result).then((value) => {
        if (value !== undefined || reply.sent) return value
        return new Promise<undefined>((resolve, reject) => {
          ;(reply as WaitingReply)[kWaitForStream] = (failure) => {
            state.waiting.delete(reply)
            if (failure === undefined) resolve(undefined)
            else reject(failure.error)
          }
          // Shutdown has begun: the 503 at once (the handler still settles only once it is out),
          // unless a reply.sse() the handler called while closing is already sending it.
          if (wasRefused(reply)) whenOut(reply, () => wake(reply))
          else if (state.closing) void refuse(state, reply)
          else if (!responseClosed(reply.raw)) {
            state.waiting.add(reply)
            // A client that leaves takes its reply out of the state: the app may never call
            // reply.sse() for it now, and the state must not hold it until the shutdown.
            // (One that left while the handler ran had its 'close' already: it is never added.)
            reply.raw.once('close', () => state.waiting.delete(reply))
          }
        })
      })
    }
  }
}

/**
 * Answers 503 with Retry-After: a stream asked for, or a handler still waiting for its
 * reply.sse(), while the server shuts down. A reply.sse() or sseSink() that comes later on this
 * reply ends at once, quietly. Settles, and wakes a waiting handler, once the 503 is out.
 */
export function refuse (state: PluginState, reply: FastifyReply): Promise<void> {
  (reply as WaitingReply)[kRefused] = true
  reply.code(503).header('retry-after', String(state.options.retryAfter)).send(new FST_ERR_SSE_SERVER_CLOSING())
  return new Promise((resolve) => {
    whenOut(reply, () => {
      wake(reply)
      resolve()
    })
  })
}

/**
 * Runs `fn` once the reply is out. Fastify sends an error through its onError hooks, error
 * handler and onSend hooks, any of which may be async: a handler that resolved with undefined
 * before that ends would make Fastify send again (and, inside a running onError hook, throw
 * FST_ERR_SEND_INSIDE_ONERR out of a promise callback: an unhandled rejection). A response that
 * has already closed (its client left) has no 'close' to come, and Fastify sends nothing again.
 */
function whenOut (reply: FastifyReply, fn: () => void): void {
  if (reply.sent || responseClosed(reply.raw)) fn()
  else reply.raw.once('close', fn)
}

/** Whether shutdown answered this reply with the 503 of refuse(). */
export function wasRefused (reply: FastifyReply): boolean {
  return (reply as WaitingReply)[kRefused] === true
}

/** Settles a waiting handler of an `sse: true` route, if there is one. */
export function wake (reply: FastifyReply, failure?: { error: unknown }): void {
  const waiting = reply as WaitingReply
  const waiter = waiting[kWaitForStream]
  if (waiter === undefined) return
  waiting[kWaitForStream] = undefined
  waiter(failure)
}

/** Runs the part of reply.sse() or sseSink() that may throw before the reply is taken. */
export function beforeOpen<T> (reply: FastifyReply, fn: () => T): T {
  try {
    return fn()
  } catch (error) {
    return failedBeforeOpen(reply, error)
  }
}

/** What threw before the reply was taken goes to a waiting handler (Fastify answers it), and on. */
export function failedBeforeOpen (reply: FastifyReply, error: unknown): never {
  if (!reply.sent) wake(reply, { error })
  throw error
}

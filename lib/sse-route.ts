import type { FastifyInstance, FastifyReply, RouteOptions } from 'fastify'
import { isThenable } from './source.js'

const kWaitForStream = Symbol('fastify-sse-stream.waitForStream')

type Waiter = (failure?: { error: unknown }) => void
type WaitingReply = FastifyReply & { [kWaitForStream]?: Waiter }

/**
 * The `sse: true` route option. Fastify answers an async handler that resolves to `undefined`
 * with an empty 200, which a later reply.sse() could not undo. On these routes such a handler
 * waits instead, until the reply is taken by a stream (or refused with 503), or rejects with the
 * error that stopped reply.sse(), so that Fastify answers it rather than nothing at all.
 */
export function wrapSseRoute (route: RouteOptions & { sse?: boolean }): void {
  if (route.sse !== true) return
  const handler = route.handler
  route.handler = function sseRouteHandler (this: FastifyInstance, request, reply) {
    const result = handler.call(this, request, reply)
    if (!isThenable(result)) return result
    return Promise.resolve(result).then((value) => {
      if (value !== undefined || reply.sent) return value
      return new Promise<undefined>((resolve, reject) => {
        (reply as WaitingReply)[kWaitForStream] = (failure) => {
          if (failure === undefined) resolve(undefined)
          else reject(failure.error)
        }
      })
    })
  }
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
    if (!reply.sent) wake(reply, { error })
    throw error
  }
}

import { channel } from 'node:diagnostics_channel'

/**
 * The plugin's `node:diagnostics_channel` channels, named as undici and Fastify name theirs
 * (`<package>:<subject>:<event>`). A message is built only when a channel has subscribers: with
 * none, each costs one property read. The messages are documented in docs/operations.md.
 */
export const channels = {
  /** A stream opened: its head is out. */
  streamOpen: channel('fastify-sse-stream:stream:open'),
  /** A stream ended, for a reason. */
  streamClose: channel('fastify-sse-stream:stream:close'),
  /** `app.sse.publish()` stored an event. */
  publish: channel('fastify-sse-stream:publish'),
  /** A hub subscriber was sent a reset (its position could not be served). */
  reset: channel('fastify-sse-stream:reset'),
  /** Admission control refused a stream (429, 503 or 500). */
  admissionRefused: channel('fastify-sse-stream:admission:refused')
}

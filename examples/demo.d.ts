// Types for examples/demo.js, so that TypeScript tests can import it.
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'

export interface TickerOptions {
  /** ms between ticks. @default 1000 */
  every?: number
  /** Ticks per connection before the server ends it. @default 5 */
  perConnection?: number
  /** Last tick; a reconnect past it gets 204. @default 20 */
  limit?: number
  /** ms, sent as `retry:`. @default 2000 */
  retry?: number
  /** ms, the plugin's heartbeat option. @default 3000 */
  heartbeat?: number
  /** ms of quiet after a connection's ticks, before it ends. @default 2 * heartbeat + 500 */
  idle?: number
}

export interface SeedOptions {
  /** ms between the seed's events. @default 1000 */
  interval?: number
  /** ms, sent as `retry:` with each of the seed's events. @default 15000 */
  retry?: number
  /** Called with the key each time the seed's work starts (not when a client resumes it). */
  onStart?: (key: string) => void
}

export interface BroadcastOptions {
  /** ms, sent as `retry:` at the start of each subscriber's stream. @default 1000 */
  retry?: number
  /** The name of the node that publishes, in each event's data. @default the port it listens on */
  node?: string
}

export interface NodeOptions {
  /** This instance's name. @default the port it listens on */
  node?: string
  /** An ioredis client: instances on one Redis find each other there. Without it, GET /nodes lists this one. */
  client?: import('ioredis').Redis
}

export interface DemoRedis {
  /** The ioredis client the broker runs on (the demo closes it after the app). */
  client: import('ioredis').Redis
  /** `redisBroker({ client })` from fastify-sse-stream/redis. */
  broker: import('../lib/brokers/redis.js').RedisBroker
}

export interface DemoOptions {
  /** ms between the seed's events. @default 1000 */
  interval?: number
  /** ms, the seed's `retry:`. @default 15000 */
  retry?: number
  ticker?: TickerOptions
  broadcast?: BroadcastOptions
  logger?: boolean
  /** This instance's name on the page. @default the port it listens on */
  node?: string
  /** The hub on the Redis broker, with node discovery and same-host CORS. @default in memory */
  redis?: DemoRedis
}

export function formatTime (date?: Date): string
export const seedRoutes: FastifyPluginAsync<SeedOptions>
export const tickerRoutes: FastifyPluginAsync<TickerOptions>
export const broadcastRoutes: FastifyPluginAsync<BroadcastOptions>
export const dropRoutes: FastifyPluginAsync
export const nodeRoutes: FastifyPluginAsync<NodeOptions>
export const sameHostCors: FastifyPluginAsync
export const vendorRoutes: FastifyPluginAsync
export const clientBundleRoutes: FastifyPluginAsync
export const pageRoutes: FastifyPluginAsync
export function buildDemo (options?: DemoOptions): FastifyInstance

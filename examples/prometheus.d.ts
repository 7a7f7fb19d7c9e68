// Types for examples/prometheus.js, so that TypeScript tests can import it.
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'

export interface SseMetricsOptions {
  /** @default a new Registry */
  register?: Registry
  /** The route that serves the metrics; false for none. @default '/metrics' */
  route?: string | false
  /** A gauge of subscribers per topic. @default true */
  topics?: boolean
  /** @default 'sse_' */
  prefix?: string
}

export function sseMetrics (app: FastifyInstance, options?: SseMetricsOptions): Promise<Registry>

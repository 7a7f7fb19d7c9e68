import type { FastifyReply } from 'fastify'
import type { SseSink, SseSource, SseStreamOptions } from '../types/index.js'
import { type EventObject, encodeComment } from './encoder.js'
import { FST_ERR_SSE_ALREADY_SENT, FST_ERR_SSE_INVALID_SOURCE, FST_ERR_SSE_INVALID_TOPIC, describe } from './errors.js'
import { resolveOptions } from './options.js'
import { Sink } from './sink.js'
import { SourcePump, dropSource, isIterable, isThenable } from './source.js'
import { beforeOpen, failedBeforeOpen, refuse, wake, wasRefused } from './sse-route.js'
import { MAX_TOPICS, type Start, checkTopic } from './hub/hub.js'
import { type SubscribeOptions, resolveSubscribe } from './hub/options.js'
import { formatId, topicsHash } from './hub/position.js'
import { readLastEventId } from './last-event-id.js'
import type { PluginState } from './plugin-state.js'
import { SseStream } from './stream.js'

function checkSource (value: unknown): asserts value is AsyncIterable<EventObject> | Iterable<EventObject> {
  if (!isIterable(value) || typeof value === 'string') throw new FST_ERR_SSE_INVALID_SOURCE(describe(value))
}

function createStream (state: PluginState, reply: FastifyReply, callOptions: SseStreamOptions | undefined): SseStream {
  if (reply.sent || reply.raw.headersSent) throw new FST_ERR_SSE_ALREADY_SENT()
  // With the request's logger, so that a per-call retry below the floor is warned about (with its reqId).
  return new SseStream(state, reply.request, reply.raw, resolveOptions(state.options, callOptions, reply.log, true))
}

// How long a new subscription's response waits for a shared broker before it opens anyway.
export const SYNC_WAIT = 1000

function checkTopics (topics: unknown): string[] {
  const names = typeof topics === 'string' ? [topics] : topics
  if (!Array.isArray(names) || names.length === 0 || names.length > MAX_TOPICS) {
    throw new FST_ERR_SSE_INVALID_TOPIC(`${describe(topics)} (give a topic, or an array of 1 to ${MAX_TOPICS} topics)`)
  }
  for (const name of names) checkTopic(name)
  if (new Set(names).size !== names.length) throw new FST_ERR_SSE_INVALID_TOPIC(`${describe(topics)} (a topic given twice)`)
  return names as string[]
}

/** Whether the request carried a last event id that the plugin refused (too long, say). */
function refusedId (reply: FastifyReply, stream: SseStream): boolean {
  const header = reply.request.headers['last-event-id']
  if (typeof header === 'string' ? header !== '' : header !== undefined) return true
  const query = stream.options.lastEventIdQuery
  const value = query === false ? undefined : (reply.request.query as Record<string, unknown> | undefined)?.[query]
  return value !== undefined && value !== ''
}

// The longest part of a hub id for one topic: 11 base-36 digits of time, a dash, 11 of offset, a comma.
const ID_PART = 24

/**
 * The client's last event id when the plugin's `lastEventIdMaxLength` refused it but it may be an
 * id this subscription gave: an id of n topics is up to 8 + 24 n characters (a 100-topic one is
 * about 1.1 KB), so its own bound applies. Its parse stays bounded by that length.
 */
function longHubId (reply: FastifyReply, stream: SseStream, topics: number, maxLength: number): string | undefined {
  const bound = 8 + ID_PART * topics
  return bound > maxLength ? readLastEventId(reply.request, stream.options.lastEventIdQuery, bound) : undefined
}

/** The `reply.sse()`, `reply.sseSink()` and `reply.sseSubscribe()` decorators of one plugin instance. */
export function replyDecorators (state: PluginState): {
  sse: (this: FastifyReply, source: SseSource<EventObject>, callOptions?: SseStreamOptions) => Promise<void>
  sseSink: (this: FastifyReply, callOptions?: SseStreamOptions) => SseSink<EventObject>
  sseSubscribe: (this: FastifyReply, topics: string | readonly string[], callOptions?: SubscribeOptions & SseStreamOptions) => Promise<void>
} {
  function sse (this: FastifyReply, source: SseSource<EventObject>, callOptions?: SseStreamOptions): Promise<void> {
    // Shutdown answered this reply while its handler waited: the source is not needed.
    if (wasRefused(this)) {
      if (typeof source !== 'function') dropSource(source, this.request.log)
      return Promise.resolve()
    }
    // Everything that can throw runs before the reply is taken, so Fastify still answers the error.
    const { stream, iterable } = beforeOpen(this, () => {
      const stream = createStream(state, this, callOptions)
      let iterable: unknown = source
      if (typeof source === 'function') {
        iterable = source(stream.context)
        if (!isThenable(iterable)) checkSource(iterable)
      } else {
        checkSource(source)
      }
      if (!state.closing) {
        try {
          stream.open(this)
        } catch (error) {
          // Nothing was sent and Fastify answers the error (a header writeHead() refused), but
          // the source may have started: abort its signal and release it, as for a refusal.
          stream.abandon('error')
          dropSource(iterable, this.request.log)
          throw error
        }
      }
      return { stream, iterable }
    })
    if (state.closing) {
      stream.refused(refuse(state, this))
      dropSource(iterable, this.request.log)
      return stream.done
    }
    wake(this)
    if (isThenable(iterable)) {
      iterable.then((value) => {
        if (stream.closed) return dropSource(value, this.request.log)
        try {
          checkSource(value)
        } catch (error) {
          return stream.fail(error)
        }
        new SourcePump(stream, value).pull()
      }, (error) => stream.fail(error))
    } else {
      new SourcePump(stream, iterable as Iterable<EventObject>).pull()
    }
    return stream.done
  }

  function sseSink (this: FastifyReply, callOptions?: SseStreamOptions): SseSink<EventObject> {
    if (wasRefused(this)) {
      const stream = new SseStream(state, this.request, this.raw, resolveOptions(state.options, callOptions, undefined, true))
      stream.abandon('shutdown')
      return new Sink(stream)
    }
    // As beforeOpen() does, without a closure per call (this is every sink's connect path).
    let stream: SseStream
    try {
      stream = createStream(state, this, callOptions)
    } catch (error) {
      return failedBeforeOpen(this, error)
    }
    const sink = new Sink(stream)
    if (state.closing) {
      stream.refused(refuse(state, this))
    } else {
      try {
        stream.open(this, false)
      } catch (error) {
        return failedBeforeOpen(this, error)
      }
      wake(this)
    }
    return sink
  }

  function sseSubscribe (this: FastifyReply, topics: string | readonly string[], callOptions?: SubscribeOptions & SseStreamOptions): Promise<void> {
    if (wasRefused(this)) return Promise.resolve()
    const reply = this
    const hub = state.hub
    const { stream, names, subscription, lastEventId } = beforeOpen(this, () => {
      const names = checkTopics(topics)
      const subscription = resolveSubscribe(callOptions, hub.resetEvent)
      const stream = createStream(state, this, callOptions)
      // A subscription's own ids may be longer than lastEventIdMaxLength (many topics).
      const lastEventId = stream.lastEventId ?? longHubId(this, stream, names.length, state.options.lastEventIdMaxLength)
      return { stream, names, subscription, lastEventId }
    })
    const pending = hub.prepare(names, lastEventId)
    if (pending === undefined) return begin(false)
    // A broker shared by several processes brings the topics up to date first. The response waits
    // for it a moment, so that a finished topic can still be answered 204; past that (the broker
    // is out of reach), the stream opens and its heartbeats run while it waits on.
    let opened = false
    let failure: { error: unknown } | undefined
    const timer = setTimeout(() => {
      // Shutdown has begun (as it has for a refused reply): no stream opens now. Once the sync is
      // done, begin() answers 503, unless shutdown has answered it already.
      if (state.closing) return
      try {
        beforeOpen(reply, () => open())
        opened = true
        wake(reply)
      } catch (error) {
        failure = { error }
      }
    }, SYNC_WAIT)
    return pending.then(() => {
      clearTimeout(timer)
      if (failure !== undefined) throw failure.error
      return begin(opened)
    })

    /** Opens the stream, with its comment line first (no blank line: fetch-event-source would fire an empty message for one). */
    function open (): void {
      stream.open(reply)
      if (subscription.comment !== undefined && !stream.closed) stream.write(encodeComment(subscription.comment))
    }

    function begin (opened: boolean): Promise<void> {
      // Shutdown answered this reply (an `sse: true` handler that did not wait for it) meanwhile.
      if (wasRefused(reply)) return Promise.resolve()
      let start: Start
      if (opened) {
        // The client left while the broker synced: nothing to subscribe.
        if (stream.closed) return stream.done
        start = hub.start(names, lastEventId, lastEventId === undefined && refusedId(reply, stream), subscription.from, subscription.maxReplay)
        if (start.over) {
          stream.close('done')
          return stream.done
        }
      } else {
        start = beforeOpen(reply, () => {
          const start = hub.start(names, lastEventId, lastEventId === undefined && refusedId(reply, stream), subscription.from, subscription.maxReplay)
          // A stream that is over (a piped stream the client has whole): 204, which ends EventSource.
          if (start.over) reply.code(204)
          if (!state.closing) open()
          return start
        })
        if (state.closing) {
          stream.refused(refuse(state, reply))
          return stream.done
        }
        wake(reply)
        if (stream.closed) return stream.done
      }
      // Priming: a client that drops before its first event still has a position to resume from.
      if (subscription.prime && lastEventId === undefined) {
        stream.write('id: ' + formatId(topicsHash(names), start.positions) + '\n\n')
      }
      hub.subscribe(stream, names, start, subscription)
      return stream.done
    }
  }

  return { sse, sseSink, sseSubscribe }
}

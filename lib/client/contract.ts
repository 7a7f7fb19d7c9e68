// The shared contract: one object, imported by the route and by the client, that names a
// stream's method, path, request body and events. It holds only schemas and types, so it is
// safe to import in a browser bundle and on the server.

/**
 * The Standard Schema interface (standardschema.dev), version 1: only what the client uses.
 * Any validator that implements it (Zod, Valibot, ArkType, a TypeBox adapter...) can check an
 * event's `data`.
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly '~standard': {
    readonly version: 1
    readonly vendor: string
    readonly validate: (value: unknown) => StandardResult<Output> | Promise<StandardResult<Output>>
    readonly types?: { readonly input: Input, readonly output: Output } | undefined
  }
}

export type StandardResult<Output> =
  | { readonly value: Output, readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<{ readonly message: string, readonly path?: ReadonlyArray<unknown> | undefined }> }

/** An event decoded without validation: `json<T>()` parses JSON typed as T, `text()` keeps the text. */
export interface EventDecoder<T> {
  readonly decode: 'json' | 'text'
  /** Type only: never set. */
  readonly type?: T
}

/** `data` is JSON, typed as T and not checked at run time. */
export function json<T> (): EventDecoder<T> {
  return { decode: 'json' }
}

/** `data` is kept as the text that arrived. */
export function text (): EventDecoder<string> {
  return { decode: 'text' }
}

// `any` here lets a schema of any input and output type, or a decoder of any type, satisfy the bound.
export type EventDefinition = StandardSchemaV1<any, any> | EventDecoder<any> // eslint-disable-line @typescript-eslint/no-explicit-any

export interface StreamContract {
  readonly method?: string
  readonly path: string
  /** The request body: a Standard Schema, or `json<T>()`, that types the client's `body` option. */
  readonly body?: EventDefinition
  /** Event name → its data: a Standard Schema (parsed as JSON, then validated), `json<T>()` or `text()`. `message` types unnamed events. */
  readonly events: Readonly<Record<string, EventDefinition>>
}

/** Returns the contract as given, with its literal types kept. */
export function defineStream<const C extends StreamContract> (contract: C): C {
  return contract
}

/** The type of `data` that a definition produces. */
export type DataOf<D> =
  D extends StandardSchemaV1<any, infer Output> ? Output // eslint-disable-line @typescript-eslint/no-explicit-any
    : D extends EventDecoder<infer T> ? T : never

/** The type the client's `body` option takes for a contract. */
export type BodyOf<C extends StreamContract> =
  C['body'] extends StandardSchemaV1<infer Input, any> ? Input // eslint-disable-line @typescript-eslint/no-explicit-any
    : C['body'] extends EventDecoder<infer T> ? T : never

/** The `data` of the hub's `sse-reset` event: its cursor could not be served (see docs/hub.md). */
export interface SseResetData {
  topic: string
  reason: 'trimmed' | 'unknown' | 'lost' | 'too-far' | 'overflow'
  /** The cursor that could not be served. */
  from: string
  /** The topic's head, where the stream goes on. */
  head: string
}

/** The hub's `sse-reset` event, which any stream may carry. */
export interface SseResetEvent {
  event: 'sse-reset'
  data: SseResetData
  id: string
}

/** One event of a contract's stream: a discriminated union on `event`, plus `sse-reset`. */
export type ContractEvent<C extends StreamContract> = {
  [K in keyof C['events'] & string]: { event: K, data: DataOf<C['events'][K]>, id: string }
}[keyof C['events'] & string] | SseResetEvent

/**
 * The contract's events as the server plugin's event map (event name → data), for the route:
 * `app.post<{ SseEvents: EventMapOf<typeof chat> }>(chat.path, ...)`.
 */
export type EventMapOf<C extends StreamContract> = {
  -readonly [K in keyof C['events']]: DataOf<C['events'][K]>
}

/** An event from a stream without a contract: `data` is the text that arrived. */
export interface SseMessage {
  event: string
  data: string
  id: string
}

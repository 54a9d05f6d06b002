/**
 * The gRPC channel options of the control plane, in one table: the head's
 * server, the worker agent's stream and the SDK's clients must agree on
 * keepalive (a client pinging more often than the server permits gets
 * GOAWAY "too_many_pings") and on message sizes (a client that may receive
 * less than the server may send fails on large lists).
 *
 * Message sizes: one limit, MAX_MESSAGE_BYTES (4 MiB), sent and received on
 * every link: head server, worker agent, SDK clients and the head's etcd
 * client. What travels is kept well under it by design: lists are paged to
 * at most PAGE_BYTES (1 MiB) a reply, store reads to at most STORE_PAGE_KEYS
 * keys and about PAGE_BYTES a request, the head's store writes to
 * STORE_REQUEST_BYTES (1 MiB) a transaction, so the 4x margin absorbs one large record
 * and never a growing cluster. A message over the limit fails its call with
 * RESOURCE_EXHAUSTED instead of growing the head's memory.
 *
 * Keepalive: clients ping every 10 s and give up after 5 s without an
 * answer, so a frozen or partitioned head (its TCP stays open) is found in
 * ~15 s and streams reopen at the new leader; the server accepts pings down
 * to every 5 s, also on idle connections. Reconnect backoff starts at 100 ms
 * so a head that comes back is found at once. Channelz (grpc's
 * introspection, which nothing here reads) is off: it costs on every call.
 *
 * Plain objects with grpc-js's option names; this package imports no gRPC.
 */

/** The largest gRPC message sent or received on any link of the system. */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** The most bytes of records one page of a list reply carries (a page ends early to stay under it). */
export const PAGE_BYTES = 1024 * 1024;
/** The most bytes of keys and values one store write request carries (the head's commits split there). */
export const STORE_REQUEST_BYTES = 1024 * 1024;
/** The most keys one store read returns (StateStore.range pages, rangeAll). */
export const STORE_PAGE_KEYS = 1000;
/** Default of the largest message the head accepts (`--max-message-bytes`, at most MAX_MESSAGE_BYTES). */
export const DEFAULT_MAX_RECEIVE_MESSAGE_BYTES = MAX_MESSAGE_BYTES;

const SIZES = {
  'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
  'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
} as const;

const KEEPALIVE = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
} as const;

/** Options of the head's gRPC server. */
export function serverChannelOptions(maxReceiveMessageBytes: number = DEFAULT_MAX_RECEIVE_MESSAGE_BYTES): Record<string, number> {
  return {
    ...KEEPALIVE,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    ...SIZES,
    'grpc.max_receive_message_length': Math.min(maxReceiveMessageBytes, MAX_MESSAGE_BYTES),
    'grpc.enable_channelz': 0,
  };
}

/**
 * Options of a client channel to a head (SDK clients, the worker agent).
 * Every client of one address must be built with the same options, so
 * grpc-js gives them one channel (one connection).
 */
export function clientChannelOptions(opts: { reconnectMaxMs?: number } = {}): Record<string, number> {
  return {
    ...KEEPALIVE,
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': opts.reconnectMaxMs ?? 2_000,
    ...SIZES,
    'grpc.enable_channelz': 0,
  };
}

/**
 * Options of the head's etcd client channel: the same message limit as every
 * other link (etcd's own server default request limit is 1.5 MiB; the head's
 * writes stay under 1 MiB and its reads are paged, see STORE_PAGE_KEYS).
 */
export function etcdChannelOptions(): Record<string, number> {
  return { ...SIZES };
}

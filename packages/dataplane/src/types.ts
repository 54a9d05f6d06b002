/**
 * Muster's data plane: requests to replicas over NATS, msgpack payloads
 * (the one codec config of @muster/common: `encode` / `decode`).
 *
 * Subjects (@muster/contracts subjects.ts; prefix = NatsAccess.subjectPrefix, default "muster"):
 *   <prefix>.rg.<group>.<replicaId>   requests to one replica (queue group "muster")
 *   <prefix>.load.<group>             load reports of the group's replicas, every second
 *
 * Wire messages (msgpack):
 *   Request  { v: 1, id: string, deadline: number (epoch ms), stream: boolean, payload: unknown }
 *            unary: sent with NATS request/reply; streaming: the reply inbox gets chunks.
 *   Reply    { v: 1, ok: true, result: unknown } | { v: 1, ok: false, error: { code: string, message: string } }
 *   Chunk    { v: 1, seq: number, data: unknown } ... then { v: 1, seq, end: true } or { v: 1, seq, error: {...} }
 *   Load     { v: 1, replicaId: string, inFlight: number, queued: number, timeMs: number, draining?: boolean }
 *   Cancel   { v: 1, id: string, cancel: true }   (router → replica subject, no reply: stop or
 *            drop that request; sent for hedge losers, aborted calls, abandoned streams)
 *
 * A replica answers MUSTER_UNAVAILABLE only for a request it never started
 * (it was closing); the router retries such a request like "no responders".
 *
 * "Never reached a replica": NATS answers a request to a subject without
 * subscribers with "no responders" at once; such a request is retried on
 * another replica. A request that reached a replica which then died is NOT
 * retried unless the caller marked it idempotent (it may have had effects).
 */
import type { LoadReport } from '@muster/contracts';

/** One replica as the router sees it (from the head's membership). */
export interface ReplicaInfo {
  replicaId: string;
  /** Spec revision it runs (rollouts, canaries). */
  revision: string;
  /** NATS subject it serves on. */
  subject: string;
}

/** A versioned snapshot of a replica group's live membership (READY and not draining). */
export interface Membership {
  group: string;
  version: number;
  replicas: ReplicaInfo[];
  /** Traffic weight by revision (sums to 1 over revisions present); absent: equal by replica count. */
  revisionWeights?: Record<string, number>;
  /** The group's limit of calls in flight per replica from one router (its spec's maxInFlightPerReplica, defaults filled); absent or 0: the router's. */
  maxInFlightPerReplica?: number;
  /** Where calls go when the group is saturated by the rule (overflow.ts); absent: nowhere, they wait here. */
  overflow?: OverflowRule;
  /** The group's routing policy (prefix-policy.ts); absent: p2c. */
  routing?: { policy: string; prefixChars: number; loadFactor: number };
}

/** A group's saturation rule and the group that takes calls beyond it (its spec's `overflow`). */
export interface OverflowRule {
  /** The overflow group's name. */
  group: string;
  /** Saturated when calls waiting per ready replica, the new call counted, would be above this. */
  queuePerReplicaAbove?: number;
  /** Saturated when the call would get MUSTER_BACKPRESSURE (no free slot, the router's queue full). */
  onBackPressure?: boolean;
}

export interface CallOptions {
  /** Deadline for the whole call, ms from now (default 30 000). */
  timeoutMs?: number;
  /** May be retried even after it reached a replica that then failed. */
  idempotent?: boolean;
  /** Critical call: if no answer after `hedgeAfterMs`, send a second copy to another replica; first answer wins. */
  hedgeAfterMs?: number;
  signal?: AbortSignal;
  /** Told once, with the replica whose answer (or first chunk) came first, and its group (another one when the call overflowed): for request logs. */
  onReplica?: (replica: { replicaId: string; revision: string; group: string }) => void;
  /**
   * The payload as the overflow group `group` should read it, should the call
   * go there (overflow.ts); default: the same payload. The gateway names the
   * overflow group's model in an OpenAI request this way.
   */
  overflowPayload?: (group: string, payload: unknown) => unknown;
  /**
   * Groups with the `prefix` routing policy: calls with the same key prefer
   * the same replica (a session, a user, a document: whatever shares a
   * cache). Used whole; at most 4096 characters. Ignored under `p2c`.
   */
  routeKey?: string;
  /**
   * Groups with the `prefix` routing policy, when no `routeKey`: text whose
   * first `prefixChars` characters (the group's) make the key — a prompt.
   * Absent too, the payload's `prompt` or `messages` (or its `body`'s) are
   * read; a call with no key at all is routed by p2c. A function is called
   * only when the key is needed (the group's policy is `prefix`), once a call.
   */
  routeText?: string | (() => string | undefined);
}

export interface RouterOptions {
  /**
   * Max requests in flight to one replica from this router. Default: the
   * group's `maxInFlightPerReplica` as the membership carries it (32 for NATS
   * shards, 1024 for HTTP shards), else 32. Given here, it wins over the group's.
   */
  maxOngoingPerReplica?: number;
  /** Max requests waiting for a free slot (default 1000); beyond: MUSTER_BACKPRESSURE. */
  maxQueued?: number;
  /** Retries of requests that never reached a replica (default 3). */
  maxRetries?: number;
  /**
   * Send unary calls made in the same turn to one replica as one NATS
   * message, a request frame (frames.ts), to replicas that read them
   * (default true). False: every call is a NATS request of its own.
   */
  frames?: boolean;
  /**
   * Take the direct path (docs/dataplane.md, "The direct path"): calls go to
   * each replica on a TLS link of their own, set up through NATS on first
   * use, one broker hop less each way; NATS carries them until it is up, and
   * whenever it is not. Default false.
   */
  direct?: boolean;
}

/** What `serve()` handlers get. */
export interface RequestContext {
  id: string;
  deadline: number;
  signal: AbortSignal;
}

export type UnaryHandler = (payload: unknown, ctx: RequestContext) => unknown | Promise<unknown>;
/** A streaming handler yields chunks. */
export type StreamHandler = (payload: unknown, ctx: RequestContext) => AsyncIterable<unknown>;

/** Request on the wire (router → replica). */
export interface WireRequest {
  v: 1;
  id: string;
  deadline: number;
  stream: boolean;
  payload: unknown;
  /**
   * Streams: chunks the replica may send beyond what the caller has taken
   * (WireCredit); absent (an older router), the replica sends without waiting.
   */
  window?: number;
}

/**
 * Flow control of a stream (router → replica, never answered): the caller
 * has taken chunks seq < `credit`, so the replica may send up to seq
 * credit + window - 1. A replica that does not know it ignores it (no reply subject).
 */
export interface WireCredit {
  v: 1;
  id: string;
  credit: number;
}

/**
 * A stream's window in chunks. Sized for the largest chunks, the HTTP
 * bridge's 64 KiB: at most 1 MiB in flight per stream (a replica bridging
 * 1,024 streams holds ≤ 1 GiB for callers that stopped reading, not 4 GiB).
 * Why chunks and not bytes: the window travels in each request and the
 * credit counts chunks on both ends, so a router and a replica of different
 * versions still agree (an older router's 64 is obeyed as asked; an older
 * replica obeys this one), where a byte window would need a new field on
 * both messages and still the chunk window for older peers. A token stream
 * (chunks of ~100 bytes) is paced by its model, never by 16 chunks of credit.
 */
export const STREAM_WINDOW = 16;
/**
 * The caller grants credit every this many chunks taken: a quarter of the
 * window, so the replica has ≥ 12 chunks of room while the credit travels.
 */
export const STREAM_CREDIT_EVERY = 4;

/** Cancel on the wire (router → replica): best effort, never answered. */
export interface WireCancel {
  v: 1;
  id: string;
  cancel: true;
}

export interface WireError {
  code: string;
  message: string;
}

/** Answer to a unary request. */
export type WireReply = { v: 1; ok: true; result: unknown } | { v: 1; ok: false; error: WireError };

/** One message of a streamed answer; `seq` counts from 0, the last one has `end` or `error`. */
export type WireChunk =
  | { v: 1; seq: number; data: unknown }
  | { v: 1; seq: number; end: true }
  | { v: 1; seq: number; error: WireError };

/** A replica's load report (the contract's `LoadReport`, @muster/contracts subjects.ts), under the name the SDK has exported. */
export type WireLoad = LoadReport;

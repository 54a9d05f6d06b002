/**
 * Muster's errors: one class, stable string codes, the original `cause` kept.
 *
 * A code is part of the public API: SDK users switch on it, and it crosses the
 * wire as gRPC status + the `muster-error-code` trailer, so a client gets back
 * the exact code the head raised. `isMusterError` checks a global symbol
 * rather than `instanceof`, so it still works when two copies of this package
 * are loaded.
 */
import { Metadata, status as GrpcStatus, type ServiceError } from '@grpc/grpc-js';
import { LEADER_TRAILER } from '@muster/contracts';

export const ErrorCode = {
  /** No credential (certificate or token), or a wrong one. */
  UNAUTHENTICATED: 'MUSTER_UNAUTHENTICATED',
  /** The caller is known, but its role (or call rights) does not allow this. */
  PERMISSION_DENIED: 'MUSTER_PERMISSION_DENIED',
  /** A spec, flag or message failed validation; the message names the field. */
  INVALID_ARGUMENT: 'MUSTER_INVALID_ARGUMENT',
  NOT_FOUND: 'MUSTER_NOT_FOUND',
  ALREADY_EXISTS: 'MUSTER_ALREADY_EXISTS',
  /** The request is valid but the cluster is not in a state to do it. */
  FAILED_PRECONDITION: 'MUSTER_FAILED_PRECONDITION',
  /** The head (or a dependency such as etcd) cannot be reached; retryable. */
  UNAVAILABLE: 'MUSTER_UNAVAILABLE',
  DEADLINE_EXCEEDED: 'MUSTER_DEADLINE_EXCEEDED',
  /** A size or count limit was hit (message too large, too many items). */
  RESOURCE_EXHAUSTED: 'MUSTER_RESOURCE_EXHAUSTED',
  /** A newer connection of the same node replaced this one. */
  NODE_SUPERSEDED: 'MUSTER_NODE_SUPERSEDED',
  /** A state-store watch asked for history that was compacted away. */
  STORE_COMPACTED: 'MUSTER_STORE_COMPACTED',
  /** A state-store transaction lost a compare (another writer won). */
  STORE_CONFLICT: 'MUSTER_STORE_CONFLICT',
  /** The embedded store's files are damaged beyond a torn last write; the head will not start on them. */
  STORE_CORRUPT: 'MUSTER_STORE_CORRUPT',
  /** This head lost leadership; its write was fenced off. Retry against the leader. */
  NOT_LEADER: 'MUSTER_NOT_LEADER',
  /** A placement group fits no node shape in the cluster; waiting will not help. */
  PG_INFEASIBLE: 'MUSTER_PG_INFEASIBLE',
  /** A router's queue for a replica group is full: slow down. */
  BACKPRESSURE: 'MUSTER_BACKPRESSURE',
  /**
   * A stream's reader fell further behind than the server buffers for one
   * consumer; the stream was cut. Open it again from the last id received.
   */
  CONSUMER_TOO_SLOW: 'MUSTER_CONSUMER_TOO_SLOW',
  /** A replica group has no ready replica (within the call's deadline). */
  NO_REPLICAS: 'MUSTER_NO_REPLICAS',
  /** The replica handling a call went away before answering; the call may or may not have run. */
  REPLICA_LOST: 'MUSTER_REPLICA_LOST',
  /** A replica's handler threw; the message is the handler's. */
  APPLICATION: 'MUSTER_APPLICATION_ERROR',
  /** The operation was cancelled by the caller. */
  CANCELLED: 'MUSTER_CANCELLED',
  INTERNAL: 'MUSTER_INTERNAL',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The one table mapping our codes to gRPC status codes. */
const grpcStatusOf: Record<ErrorCode, GrpcStatus> = {
  MUSTER_UNAUTHENTICATED: GrpcStatus.UNAUTHENTICATED,
  MUSTER_PERMISSION_DENIED: GrpcStatus.PERMISSION_DENIED,
  MUSTER_INVALID_ARGUMENT: GrpcStatus.INVALID_ARGUMENT,
  MUSTER_NOT_FOUND: GrpcStatus.NOT_FOUND,
  MUSTER_ALREADY_EXISTS: GrpcStatus.ALREADY_EXISTS,
  MUSTER_FAILED_PRECONDITION: GrpcStatus.FAILED_PRECONDITION,
  MUSTER_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  MUSTER_DEADLINE_EXCEEDED: GrpcStatus.DEADLINE_EXCEEDED,
  MUSTER_RESOURCE_EXHAUSTED: GrpcStatus.RESOURCE_EXHAUSTED,
  MUSTER_NODE_SUPERSEDED: GrpcStatus.ABORTED,
  MUSTER_STORE_COMPACTED: GrpcStatus.OUT_OF_RANGE,
  MUSTER_STORE_CONFLICT: GrpcStatus.ABORTED,
  MUSTER_STORE_CORRUPT: GrpcStatus.DATA_LOSS,
  MUSTER_NOT_LEADER: GrpcStatus.UNAVAILABLE,
  MUSTER_PG_INFEASIBLE: GrpcStatus.FAILED_PRECONDITION,
  MUSTER_BACKPRESSURE: GrpcStatus.RESOURCE_EXHAUSTED,
  MUSTER_CONSUMER_TOO_SLOW: GrpcStatus.RESOURCE_EXHAUSTED,
  MUSTER_NO_REPLICAS: GrpcStatus.UNAVAILABLE,
  MUSTER_REPLICA_LOST: GrpcStatus.UNAVAILABLE,
  MUSTER_APPLICATION_ERROR: GrpcStatus.UNKNOWN,
  MUSTER_CANCELLED: GrpcStatus.CANCELLED,
  MUSTER_INTERNAL: GrpcStatus.INTERNAL,
};

/** Codes a caller may retry as they are. */
const retryable = new Set<ErrorCode>([ErrorCode.UNAVAILABLE, ErrorCode.STORE_CONFLICT, ErrorCode.NOT_LEADER]);

const BRAND = Symbol.for('muster.error');
const CODE_KEY = 'muster-error-code';
/**
 * Sent with MUSTER_NOT_LEADER when the refusing head knows the leader: its
 * address "host:port", so a client goes there next instead of guessing.
 */
const LEADER_KEY = LEADER_TRAILER;
const knownCodes = new Set<string>(Object.values(ErrorCode));

export class MusterError extends Error {
  readonly [BRAND] = true;
  override readonly name = 'MusterError';
  readonly code: ErrorCode;
  /** Structured context: the field that failed, the node concerned, ... */
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.details = opts.details ?? {};
  }

  get retryable(): boolean {
    return retryable.has(this.code);
  }

  get grpcStatus(): GrpcStatus {
    return grpcStatusOf[this.code];
  }
}

export function isMusterError(e: unknown): e is MusterError {
  return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[BRAND] === true;
}

/** Wraps anything thrown into a MusterError, keeping it as `cause`. */
export function toMusterError(e: unknown, fallback: ErrorCode = ErrorCode.INTERNAL): MusterError {
  if (isMusterError(e)) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new MusterError(fallback, message, { cause: e });
}

/** The gRPC error a handler passes to its callback / emits on its stream. */
export function toGrpcError(e: unknown): Partial<ServiceError> {
  const err = toMusterError(e);
  const metadata = new Metadata();
  metadata.set(CODE_KEY, err.code);
  if (typeof err.details.leader === 'string' && err.details.leader !== '') metadata.set(LEADER_KEY, err.details.leader);
  return { code: err.grpcStatus, details: err.message, message: err.message, metadata };
}

const codeOfGrpcStatus = new Map<number, ErrorCode>([
  [GrpcStatus.UNAUTHENTICATED, ErrorCode.UNAUTHENTICATED],
  [GrpcStatus.PERMISSION_DENIED, ErrorCode.PERMISSION_DENIED],
  [GrpcStatus.INVALID_ARGUMENT, ErrorCode.INVALID_ARGUMENT],
  [GrpcStatus.NOT_FOUND, ErrorCode.NOT_FOUND],
  [GrpcStatus.ALREADY_EXISTS, ErrorCode.ALREADY_EXISTS],
  [GrpcStatus.FAILED_PRECONDITION, ErrorCode.FAILED_PRECONDITION],
  [GrpcStatus.UNAVAILABLE, ErrorCode.UNAVAILABLE],
  [GrpcStatus.DEADLINE_EXCEEDED, ErrorCode.DEADLINE_EXCEEDED],
  [GrpcStatus.RESOURCE_EXHAUSTED, ErrorCode.RESOURCE_EXHAUSTED],
  [GrpcStatus.CANCELLED, ErrorCode.CANCELLED],
]);

/** Turns a gRPC client error back into the MusterError the head raised. */
export function fromGrpcError(e: unknown): MusterError {
  if (isMusterError(e)) return e;
  const se = e as Partial<ServiceError>;
  if (typeof se?.code !== 'number') return toMusterError(e);
  const sent = se.metadata?.get(CODE_KEY)[0];
  const code =
    typeof sent === 'string' && knownCodes.has(sent)
      ? (sent as ErrorCode)
      : (codeOfGrpcStatus.get(se.code) ?? ErrorCode.INTERNAL);
  const leader = se.metadata?.get(LEADER_KEY)[0];
  return new MusterError(code, plainTransportMessage(se.details || se.message || 'unknown error'), {
    cause: e,
    details: typeof leader === 'string' ? { leader } : {},
  });
}

/**
 * grpc-js words a refused connection as "No connection established. Last
 * error: Error: connect ECONNREFUSED 127.0.0.1:7400. Resolution note: ";
 * users read "cannot connect: connect ECONNREFUSED 127.0.0.1:7400".
 */
function plainTransportMessage(message: string): string {
  const m = /^No connection established\. Last error: (?:Error: )?(.*?)\.?(?: Resolution note:.*)?$/s.exec(message);
  return m?.[1] ? `cannot connect: ${m[1]}` : message;
}

/** An error the head sent inside a message (a stream's reply), not as a call's status; an unknown code reads as INTERNAL. */
export function errorFromReply(code: string, message: string): MusterError {
  return new MusterError(knownCodes.has(code) ? (code as ErrorCode) : ErrorCode.INTERNAL, message || 'unknown error');
}

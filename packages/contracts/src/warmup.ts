/**
 * Warm-up: the bounds of a template's warm-up (the head and the SDK check the
 * same numbers) and the two messages that carry a `call` warm-up request
 * between rank 0's worker agent and the rank's `serve()` over the Node IPC
 * channel the agent opened when it spawned the rank. docs/gangs.md#warm-up.
 *
 * Why IPC and not the data plane: the agent would have to call the replica's
 * NATS subject, and a replica's NATS user may only subscribe to its own
 * subjects (`replicaPermissions`): calling it would mean granting the group's
 * user a right it does not have today (to publish requests to replicas), or
 * giving the agent a NATS user of its own. The IPC channel is already there
 * (the `sdk` readiness probe speaks on it), reaches only this rank, and needs
 * no credential at all. The agent treats what comes back as untrusted input:
 * it reads only the fields below and cuts the error text.
 *
 *   agent → rank   { muster: 'warmup-call', id, stream, timeoutMs, json? | base64? }
 *   rank  → agent  { muster: 'serving' }                  (serve()'s handlers are in place)
 *   rank  → agent  { muster: 'warmup-result', id, ok, error? }
 */
import { utf8Bytes } from './spec-limits.js';

export const WARMUP_LIMITS = {
  /** Requests of one warm-up. */
  requests: 16,
  /** A call's payload (JSON text or bytes) or an HTTP request's body, in bytes. */
  bodyBytes: 64 * 1024,
  /** Headers of one HTTP request. */
  headers: 32,
  /** The whole warm-up's timeout (ms). */
  timeoutMs: 600_000,
  /** An HTTP request's path. */
  pathLength: 2048,
  /**
   * Payloads, bodies, headers and commands of all requests together, in bytes:
   * the warm-up is stored with the spec (a replica group's record holds two
   * specs during a canary) and sent in rank 0's launch order, so with the
   * largest template (512 KiB) two specs stay under etcd's 1.5 MiB request.
   */
  totalBytes: 128 * 1024,
} as const;

/** The bytes a warm-up request counts against `totalBytes` (`bytes` measures a payload or body as sent). */
export function warmupRequestBytes(r: { path?: string | undefined; headers?: Readonly<Record<string, string>> | undefined; command?: readonly string[] | undefined }, bodyBytes: number): number {
  let n = bodyBytes + utf8Bytes(r.path ?? '');
  for (const [k, v] of Object.entries(r.headers ?? {})) n += utf8Bytes(k) + utf8Bytes(v);
  for (const a of r.command ?? []) n += utf8Bytes(a);
  return n;
}

/** A warm-up's timeout when the template gives none (ms). */
export const DEFAULT_WARMUP_TIMEOUT_MS = 60_000;

/** The longest error text a rank's answer may carry to the agent (it is cut there). */
export const WARMUP_ERROR_CHARS = 1024;

/** Agent → rank: run one payload through serve()'s handler. */
export interface WarmupCallMessage {
  muster: 'warmup-call';
  id: number;
  stream: boolean;
  /** The warm-up's time left when the agent sent it (ms): the handler's deadline, its signal aborts there (the agent has given up). */
  timeoutMs?: number;
  /** JSON text of the payload (parsed before the handler gets it). */
  json?: string;
  /** Raw bytes of the payload, base64 (the handler gets a Uint8Array). */
  base64?: string;
}

/** Rank → agent: the call's outcome (`error` when it threw or its stream failed). */
export interface WarmupResultMessage {
  muster: 'warmup-result';
  id: number;
  ok: boolean;
  error?: string;
}

/** Rank → agent: serve() is up and answers warm-up calls from now on. */
export interface ServingMessage {
  muster: 'serving';
}

export function isWarmupCall(m: unknown): m is WarmupCallMessage {
  const v = m as Partial<WarmupCallMessage> | null;
  return typeof v === 'object' && v !== null && v.muster === 'warmup-call' && typeof v.id === 'number';
}

/** The rank's answer as the agent reads it (anything else: undefined). */
export function toWarmupResult(m: unknown): WarmupResultMessage | undefined {
  const v = m as Partial<WarmupResultMessage> | null;
  if (typeof v !== 'object' || v === null || v.muster !== 'warmup-result' || typeof v.id !== 'number' || typeof v.ok !== 'boolean') return undefined;
  const out: WarmupResultMessage = { muster: 'warmup-result', id: v.id, ok: v.ok };
  if (!v.ok) out.error = typeof v.error === 'string' ? v.error.slice(0, WARMUP_ERROR_CHARS) : 'failed (no reason given)';
  return out;
}

export function isServingMessage(m: unknown): m is ServingMessage {
  return (m as Partial<ServingMessage> | null)?.muster === 'serving';
}

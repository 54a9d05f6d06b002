/**
 * The gateway's checks before a request reaches a replica, in the order they
 * run (docs/security.md, "The gateway"):
 *
 *   1. authenticate  the API key (`Authorization: Bearer <key>` or
 *                    `x-api-key: <key>`), looked up by its hash: none or an
 *                    unknown one → 401 with `WWW-Authenticate`
 *   2. authorize     the key's groups name the group in the path → else 403
 *   3. rate          the key's token bucket has a token → else 429 with
 *                    `Retry-After` (keys without `ratePerSecond` are not limited)
 *   4. size          a declared `Content-Length` over the limit → 413 before a
 *                    byte of the body is read; a body without one is capped
 *                    while it streams (gateway.ts, readBody)
 *
 * Authentication comes first so that a client without a key learns nothing,
 * not even whether a group exists. A refused request does not take a token.
 */
import type { IncomingMessage } from 'node:http';
import { bearerToken, ErrorCode } from '@muster/common';
import { keyMayCall, type KeyEntry, type KeyRing } from './gateway-keys.js';

/** A refusal the gateway answers itself: its status, stable code, message and headers. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const REALM = 'Bearer realm="muster-gateway"';

/**
 * The key a request presents, and the header it came in (the HTTP bridge must
 * not pass that one on). `x-api-key` wins: with both, `authorization` is the
 * HTTP shard's own credential (vLLM's --api-key) and goes through to it.
 */
export function presentedKey(req: IncomingMessage): { key: string; header: 'authorization' | 'x-api-key' } | undefined {
  const apiKey = req.headers['x-api-key'];
  if (typeof apiKey === 'string' && apiKey.trim() !== '') return { key: apiKey.trim(), header: 'x-api-key' };
  const auth = req.headers.authorization;
  const bearer = bearerToken(auth);
  if (bearer !== undefined) return { key: bearer, header: 'authorization' };
  return undefined;
}

/** Step 1: the key's entry, or a 401. */
export function authenticate(ring: KeyRing, req: IncomingMessage): { entry: KeyEntry; header: 'authorization' | 'x-api-key' } {
  const presented = presentedKey(req);
  if (!presented) {
    throw new HttpError(401, ErrorCode.UNAUTHENTICATED, 'missing API key: send "Authorization: Bearer <key>" or "x-api-key: <key>" (muster gateway key create makes one)', { 'www-authenticate': REALM });
  }
  const entry = ring.lookup(presented.key);
  if (!entry) throw new HttpError(401, ErrorCode.UNAUTHENTICATED, 'unknown API key', { 'www-authenticate': `${REALM}, error="invalid_token"` });
  return { entry, header: presented.header };
}

/** Step 2: a 403 unless the key may call `group`. */
export function authorize(entry: KeyEntry, group: string): void {
  if (keyMayCall(entry, group)) return;
  throw new HttpError(403, ErrorCode.PERMISSION_DENIED, `API key "${entry.name}" may not call group "${group}" (it may call: ${(entry.groups as string[]).join(', ')})`);
}

/** Step 4, before the body: a 413 when the declared length is over `max`. */
export function checkDeclaredLength(req: IncomingMessage, max: number): void {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > max) throw bodyTooLarge(max, `Content-Length ${declared}`);
}

export function bodyTooLarge(max: number, what: string): HttpError {
  return new HttpError(413, ErrorCode.RESOURCE_EXHAUSTED, `request body too large: ${what} is over the gateway's limit of ${max} bytes (--max-body-bytes)`);
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * One bucket after `now - at` ms of refill at `rate` per second, capped at
 * `burst`, and whether a token could be taken from it. Pure: the limiter and
 * its tests share it.
 */
export function takeToken(bucket: Bucket | undefined, rate: number, burst: number, now: number): { bucket: Bucket; ok: boolean; retryAfterMs: number } {
  const tokens = bucket ? Math.min(burst, bucket.tokens + (Math.max(0, now - bucket.at) * rate) / 1000) : burst;
  if (tokens >= 1) return { bucket: { tokens: tokens - 1, at: now }, ok: true, retryAfterMs: 0 };
  return { bucket: { tokens, at: now }, ok: false, retryAfterMs: Math.ceil(((1 - tokens) * 1000) / rate) };
}

/**
 * Step 3: a token bucket per key. Buckets exist only for keys of the ring
 * (its size is bounded by KEYS_LIMITS) and `retain` drops those of keys a
 * reload removed, so the map is bounded by the keys file.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Takes a token for `entry`, or throws a 429 saying when to come back. */
  take(entry: KeyEntry): void {
    if (entry.ratePerSecond === undefined) return;
    const burst = entry.burst ?? Math.max(1, Math.floor(entry.ratePerSecond));
    const r = takeToken(this.buckets.get(entry.sha256), entry.ratePerSecond, burst, this.now());
    this.buckets.set(entry.sha256, r.bucket);
    if (r.ok) return;
    const seconds = Math.max(1, Math.ceil(r.retryAfterMs / 1000));
    throw new HttpError(429, ErrorCode.RESOURCE_EXHAUSTED, `API key "${entry.name}" is over its rate of ${entry.ratePerSecond}/s (burst ${burst}): retry after ${seconds} s`, { 'retry-after': String(seconds) });
  }

  /** Keeps only the buckets of these key hashes (after a reload). */
  retain(hashes: ReadonlySet<string>): void {
    for (const h of this.buckets.keys()) if (!hashes.has(h)) this.buckets.delete(h);
  }

  get size(): number {
    return this.buckets.size;
  }
}

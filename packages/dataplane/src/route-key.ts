/**
 * Where a call's route key comes from, for groups with the `prefix` routing
 * policy (prefix-policy.ts): the caller's key when it gives one (a session, a
 * user, a document), else the start of its prompt. Pure; the gateway uses
 * `routeTextOf` on OpenAI bodies, the router on payloads.
 *
 * The text of a prompt is what an engine's prefix cache sees first:
 *   - `prompt`: a string as it is; a list of strings (a batch) joined by
 *     newlines; token ids joined by commas;
 *   - `messages` (OpenAI chat): each message's role, a newline, its content
 *     (a string, or the `text` of its parts), messages joined by newlines —
 *     so the system prompt, which every user's conversation shares, comes first;
 *   - a bridge payload (`{ method, path, body }`, what the gateway sends a
 *     TS group): the same, read from its parsed `body`.
 * Anything else has no text, and a call without a key is routed by p2c.
 */
import { ErrorCode, MusterError } from '@muster/common';
import { MAX_PREFIX_CHARS, MAX_ROUTE_KEY_LENGTH } from '@muster/contracts';
import { hashKey, type KeyHash } from './prefix-policy.js';

/** What a call says about its key; resolved lazily (only a `prefix` group reads the payload). */
export interface RouteHint {
  readonly key: string | undefined;
  /** The caller's text, or a function that gives it (called only when a key is needed). */
  readonly text: string | (() => string | undefined) | undefined;
  readonly payload: unknown;
  /** Its key's hash once computed (routeHashOf), for the `prefixChars` it was computed with. */
  computed?: { prefixChars: number; hash: KeyHash | undefined };
}

/**
 * The hash of a call's key, computed on first use and kept on its hint: its
 * retries, hedges and turns in the queue do not read the payload again.
 */
export function routeHashOf(h: RouteHint, prefixChars: number): KeyHash | undefined {
  if (h.computed?.prefixChars !== prefixChars) {
    const key = routeKeyOf(h, prefixChars);
    h.computed = { prefixChars, hash: key === undefined ? undefined : hashKey(key) };
  }
  return h.computed.hash;
}

/** The key of a call for a group that keys on `prefixChars` characters; undefined: unkeyed. */
export function routeKeyOf(h: RouteHint, prefixChars: number): string | undefined {
  if (h.key !== undefined) return `k:${h.key}`;
  const text = (typeof h.text === 'function' ? h.text() : h.text) ?? routeTextOf(h.payload, prefixChars);
  // Tagged so that a caller's key never collides with a prompt that reads the same.
  return text ? `p:${text.slice(0, prefixChars)}` : undefined;
}

/**
 * The prompt text of an OpenAI-style body (or a bridge payload carrying one),
 * its first `limit` characters (no key reads more), or undefined.
 */
export function routeTextOf(payload: unknown, limit = MAX_PREFIX_CHARS): string | undefined {
  if (!isObject(payload)) return undefined;
  const text = promptText(payload, limit);
  if (text !== undefined) return text;
  return isObject(payload.body) ? promptText(payload.body, limit) : undefined;
}

/** Checks a caller's `routeKey` / `routeText` options, naming the field. */
export function checkRouteOptions(o: { routeKey?: unknown; routeText?: unknown } | undefined): void {
  const key = o?.routeKey;
  if (key !== undefined && !(typeof key === 'string' && key.length <= MAX_ROUTE_KEY_LENGTH)) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `routeKey: must be a string of at most ${MAX_ROUTE_KEY_LENGTH} characters${typeof key === 'string' ? `, got ${key.length}` : ''}`, { details: { field: 'routeKey' } });
  }
  if (o?.routeText !== undefined && typeof o.routeText !== 'string' && typeof o.routeText !== 'function') throw new MusterError(ErrorCode.INVALID_ARGUMENT, 'routeText: must be a string, or a function that returns one', { details: { field: 'routeText' } });
}

function promptText(b: Record<string, unknown>, limit: number): string | undefined {
  const p = b.prompt;
  if (typeof p === 'string') return p.slice(0, limit) || undefined;
  if (Array.isArray(p) && p.length > 0) {
    if (p.every((x) => typeof x === 'string')) return joinUpTo(p, '\n', limit);
    if (p.every((x) => typeof x === 'number')) return joinUpTo(p, ',', limit);
  }
  const m = b.messages;
  if (!Array.isArray(m) || m.length === 0) return undefined;
  const parts: string[] = [];
  let length = 0;
  for (const msg of m) {
    if (!isObject(msg)) continue;
    const role = typeof msg.role === 'string' ? msg.role : '';
    const part = `${role}\n${contentText(msg.content, limit - length - role.length - 1)}`;
    parts.push(part);
    length += part.length + 1;
    if (length > limit) break;
  }
  return parts.length ? joinUpTo(parts, '\n', limit) : undefined;
}

/** `xs` (strings, or token ids) joined by `sep`, cut at `limit` characters; stops reading once there. */
function joinUpTo(xs: readonly (string | number)[], sep: string, limit: number): string {
  let out = '';
  for (let i = 0; i < xs.length && out.length < limit; i++) out += i > 0 ? sep + String(xs[i]) : String(xs[i]);
  return out.slice(0, limit);
}

/** A message's content as text: a string, or its parts' `text` — read no further than `limit` characters (the rest is cut anyway). */
function contentText(c: unknown, limit: number): string {
  if (typeof c === 'string') return c;
  if (!Array.isArray(c)) return '';
  let out = '';
  for (let i = 0; i < c.length && out.length < limit; i++) {
    const part: unknown = c[i];
    if (isObject(part) && typeof part.text === 'string') out += part.text;
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

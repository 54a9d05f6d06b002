/**
 * Browser sessions of the dashboard. A browser cannot send a gRPC bearer
 * token with a page load or an EventSource, so it trades a credential for a
 * session cookie once:
 *
 *   `muster dashboard` (client certificate or cluster token)
 *        ── POST /api/tickets ──▶ one-time ticket (60 s)
 *   browser opens  https://head:port/#ticket=<t>   (a fragment: never sent to a server, never logged)
 *        ── POST /api/session {ticket} ──▶ Set-Cookie: muster_session (HttpOnly, Secure, SameSite=Strict)
 *
 * or POSTs /api/session with `Authorization: Bearer <cluster token>` (the
 * page's sign-in form), or with a client certificate its TLS connection
 * presented. A session keeps the credential it was made from (the peer
 * certificate, or "holds the token") and every API call is made with that
 * credential through the gate (invoke.ts), so what a session may read is
 * decided by the access table on each call, as for gRPC.
 *
 * Bounded per identity (who.name) and in all: at most `maxSessionsPerWho`
 * (16) of one identity's sessions and 8 of its tickets, `maxSessions`
 * (1,000) and 256 in all. An insert drops the expired entries first, then
 * the identity's own oldest beyond its bound, then the oldest of all: one
 * viewer signing in again and again evicts only its own; a session lives `ttlMs` (default 8 h) and never past its
 * certificate's end, a ticket 60 s and one use. Only a direct credential
 * mints a ticket (server.ts), never a session: a session cannot renew itself. Memory only: a head restart or failover signs every browser out.
 * Ids are 32 random bytes (base64url); lookups are by exact key.
 */
import { randomBytes } from 'node:crypto';
import type { Identity } from '@muster/contracts';
import type { Credential } from './invoke.js';

export const SESSION_COOKIE = 'muster_session';
const TICKET_TTL_MS = 60_000;
const MAX_TICKETS = 256;
const MAX_TICKETS_PER_WHO = 8;

interface Held {
  cred: Credential;
  who: Identity;
  expiresAt: number;
}

export class Sessions {
  private readonly sessions = new Map<string, Held>();
  private readonly tickets = new Map<string, Held>();
  /** The open streams (SSE) of each session: ended when the session is closed, expires or is dropped. */
  private readonly streams = new Map<string, Set<() => void>>();

  constructor(
    private readonly opts: { ttlMs?: number; maxSessions?: number; maxSessionsPerWho?: number; now?: () => number } = {},
  ) {}

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  /** A one-time ticket standing for `cred` for 60 s. */
  ticket(cred: Credential, who: Identity): { ticket: string; expiresInMs: number } {
    const id = randomBytes(32).toString('base64url');
    put(this.tickets, id, { cred, who, expiresAt: this.now() + TICKET_TTL_MS }, { all: MAX_TICKETS, perWho: MAX_TICKETS_PER_WHO }, this.now());
    return { ticket: id, expiresInMs: TICKET_TTL_MS };
  }

  /** The ticket's credential, once: the ticket is gone after this call, used or expired. */
  redeem(ticket: string): Held | undefined {
    const held = this.tickets.get(ticket);
    this.tickets.delete(ticket);
    return held && held.expiresAt > this.now() ? held : undefined;
  }

  /** A new session for `cred`: its id (the cookie's value) and how long it lives. */
  open(cred: Credential, who: Identity): { id: string; maxAgeS: number } {
    const id = randomBytes(32).toString('base64url');
    const now = this.now();
    // A certificate session ends with the certificate: it may not read on after the certificate expired.
    const expiresAt = Math.min(now + (this.opts.ttlMs ?? 8 * 3600_000), certificateEnd(cred));
    const max = { all: this.opts.maxSessions ?? 1_000, perWho: this.opts.maxSessionsPerWho ?? 16 };
    for (const dropped of put(this.sessions, id, { cred, who, expiresAt }, max, now)) this.close(dropped);
    return { id, maxAgeS: Math.max(0, Math.floor((expiresAt - now) / 1000)) };
  }

  /** The session's credential and identity, unless unknown or expired. */
  get(id: string | undefined): Held | undefined {
    if (!id) return undefined;
    const held = this.sessions.get(id);
    if (!held) return undefined;
    if (held.expiresAt > this.now()) return held;
    this.close(id);
    return undefined;
  }

  /** Ends the session and every stream it has open. */
  close(id: string | undefined): void {
    if (!id) return;
    this.sessions.delete(id);
    const ends = this.streams.get(id);
    this.streams.delete(id);
    for (const end of ends ?? []) end();
  }

  /** Calls `end` when session `id` is closed, expires or is dropped; returns the unregister (the stream ended first). */
  watch(id: string, end: () => void): () => void {
    let ends = this.streams.get(id);
    if (!ends) this.streams.set(id, (ends = new Set()));
    ends.add(end);
    return () => {
      ends.delete(end);
      if (ends.size === 0 && this.streams.get(id) === ends) this.streams.delete(id);
    };
  }

  get size(): number {
    return this.sessions.size;
  }
}

/** When the credential's certificate expires (ms); no certificate (the token), or a date that does not parse: never. */
function certificateEnd(cred: Credential): number {
  const end = cred.cert?.valid_to ? Date.parse(cred.cert.valid_to) : NaN;
  return Number.isNaN(end) ? Infinity : end;
}

/**
 * Inserts `held`, then drops (Map order is insertion order, so oldest first):
 * every expired entry, the oldest of `held.who.name`'s beyond `max.perWho`,
 * the oldest of all beyond `max.all`. Returns the ids dropped.
 */
function put(map: Map<string, Held>, id: string, held: Held, max: { all: number; perWho: number }, now: number): string[] {
  const dropped: string[] = [];
  const drop = (k: string) => {
    map.delete(k);
    dropped.push(k);
  };
  for (const [k, h] of map) if (h.expiresAt <= now) drop(k);
  map.set(id, held);
  let mine = 0;
  for (const h of map.values()) if (h.who.name === held.who.name) mine++;
  for (const [k, h] of map) {
    if (mine <= max.perWho) break;
    if (h.who.name !== held.who.name) continue;
    drop(k);
    mine--;
  }
  for (const oldest of map.keys()) {
    if (map.size <= max.all) break;
    drop(oldest);
  }
  return dropped;
}

/** The session id of a Cookie header. */
export function sessionCookie(header: string | undefined): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [k, v] = part.trim().split('=', 2);
    if (k === SESSION_COOKIE && v) return v;
  }
  return undefined;
}

/** The Set-Cookie value for a session (Secure over HTTPS). */
export function setCookie(id: string, maxAgeS: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${secure ? '; Secure' : ''}`;
}

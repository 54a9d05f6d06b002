/**
 * The SDK's connection to the data plane, as its own NATS user: the head
 * mints one for this client's identity (ClusterService.GetDataPlaneAccess:
 * publish to the groups it may call, read their load reports and its own
 * inbox, nothing else). The user's JWT expires (the head's
 * --nats-caller-ttl-ms, 24 h by default): a quarter of its life before it
 * ends, and at most an hour before (renewInMs), this asks the head again, and the connection presents the new JWT at its
 * next (re)connect — nats-server closes a connection whose JWT expired and
 * nats.js reconnects at once, so calls in flight at that moment fail with a
 * retryable UNAVAILABLE, as on any NATS reconnect (docs/dataplane.md).
 *
 * A refusal by the server (its user revoked: the account signing key was
 * rotated, or its JWT expired while the head was away) makes it ask again at
 * once, at most every RENEW_RETRY_MS, so a rotation does not leave clients
 * cut off until their next scheduled renewal. A renewal that comes back with
 * another inbox prefix (the cluster token that keys it was rotated) cannot
 * serve this connection: renewing stops and `onStale` tells the owner to open
 * a new one.
 */
import { connectNats, type NatsConnection } from '@muster/common';
import type { NatsAccess } from '@muster/proto';

/** Ask again this long before expiry at the latest (a quarter of the life, at most 1 h). */
const RENEW_MARGIN_MAX_MS = 60 * 60 * 1000;
/** A failed renewal is tried again this often until it works or the JWT expires. */
const RENEW_RETRY_MS = 5_000;

/** When to ask again for a JWT that expires at `expiresAtMs` (0: never): at ¾ of what is left, at most RENEW_MARGIN_MAX_MS before the end. */
export function renewInMs(expiresAtMs: number, nowMs: number): number | undefined {
  if (expiresAtMs <= 0) return undefined;
  const life = Math.max(0, expiresAtMs - nowMs);
  return Math.min(life - Math.min(life / 4, RENEW_MARGIN_MAX_MS), 2_147_483_647);
}

export interface DataPlane {
  conn: NatsConnection;
  prefix: string;
  /** The inbox prefix the connection's user may read (routers must use it). */
  inboxPrefix: string;
  /** The groups this user may call (ALL_GROUPS: every group), as the head minted it. */
  groups: readonly string[];
}

export class DataPlaneAccess {
  private access: NatsAccess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly fetch: (renewInboxPrefix: string) => Promise<NatsAccess>,
    /** Called once when this connection's user can no longer be renewed (the head changed its inbox prefix). */
    private readonly onStale?: () => void,
  ) {}

  /** Connects as this client's data-plane user (FAILED_PRECONDITION when the head runs without NATS). */
  async connect(name: string): Promise<DataPlane> {
    this.fetches++;
    const first = await this.fetch('');
    this.access = first;
    const conn = await connectNats(first, name, () => this.access ?? first);
    this.schedule(first);
    void (async () => {
      for await (const s of conn.status()) {
        if (s.type === 'error' && isAuthRefusal(s.error)) this.renewAfterRefusal();
      }
    })().catch(() => undefined);
    return { conn, prefix: first.subjectPrefix || 'muster', inboxPrefix: first.inboxPrefix, groups: first.groups };
  }

  /** Stops renewing. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  /** How many times the head was asked (tests). */
  fetches = 0;

  private schedule(a: NatsAccess, retry = false): void {
    const inMs = renewInMs(a.expiresAtMs, Date.now());
    if (this.closed || inMs === undefined) return;
    this.timer = setTimeout(() => void this.renew(), retry ? RENEW_RETRY_MS : inMs);
    this.timer.unref();
  }

  private lastRefusalRenewal = 0;

  private renewAfterRefusal(): void {
    if (this.closed || Date.now() - this.lastRefusalRenewal < RENEW_RETRY_MS) return;
    this.lastRefusalRenewal = Date.now();
    clearTimeout(this.timer);
    void this.renew();
  }

  private async renew(): Promise<void> {
    try {
      // The inbox prefix is the connection's for its life: the head keeps it for the same identity.
      this.fetches++;
      const next = await this.fetch(this.access?.inboxPrefix ?? '');
      if (next.inboxPrefix !== this.access?.inboxPrefix) {
        // A new prefix (the cluster token that keys it was rotated) cannot serve this connection,
        // whose inbox is fixed: stop renewing it and let the owner open a new one.
        this.close();
        this.onStale?.();
        return;
      }
      this.access = next;
      this.schedule(next);
    } catch {
      if (this.access && this.access.expiresAtMs > Date.now()) this.schedule(this.access, true);
    }
  }
}

/** The server refused this user (revoked, expired, unknown): nats.js' AuthorizationError or UserAuthenticationExpiredError. */
function isAuthRefusal(e: unknown): boolean {
  return e instanceof Error && (e.name === 'AuthorizationError' || e.name === 'UserAuthenticationExpiredError' || /authorization violation|authentication expired/i.test(e.message));
}

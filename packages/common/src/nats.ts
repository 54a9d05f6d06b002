/**
 * NATS connections of every Muster process: same options everywhere
 * (credentials, TLS, unlimited reconnects, pings every 5 s, a name that says
 * who we are). Server URLs are printed (errors, logs) without their
 * user:password part (`withoutCredentials`): a URL may carry one.
 *
 * Credentials are a NATS user JWT and its nkey seed (docs/security.md, "NATS:
 * users per role"): nats.js presents the JWT and signs the server's nonce.
 * They are read through a function at every (re)connect, so a client whose
 * JWT is renewed (the SDK asks the head again before it expires) reconnects
 * with the new one (`user`/`password`: the legacy shared user). `caPem` set: the connection requires TLS and trusts only
 * that CA. `inboxPrefix` set: replies come under it (a caller may subscribe
 * to nothing else).
 */
import { connect, jwtAuthenticator, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { NatsAccess } from '@muster/proto';
import { ErrorCode, MusterError } from './errors.js';

export type { NatsConnection, Subscription };

/** The fields of NatsAccess a connection uses (servers, JWT, seed, CA, inbox prefix). */
export type NatsDial = Pick<NatsAccess, 'servers' | 'jwt' | 'seed' | 'caPem' | 'inboxPrefix'> & Partial<Pick<NatsAccess, 'user' | 'password'>>;

/**
 * Connects with `access`, or with whatever `current()` answers at each
 * (re)connect when given (its servers, CA and inbox prefix are read once).
 */
export async function connectNats(access: NatsDial, name: string, current?: () => NatsDial): Promise<NatsConnection> {
  const now = current ?? (() => access);
  const enc = new TextEncoder();
  try {
    return await connect({
      servers: access.servers,
      ...(access.jwt ? { authenticator: jwtAuthenticator(() => now().jwt, () => enc.encode(now().seed)) } : {}),
      // The legacy shared user (a head started with --nats-user).
      ...(!access.jwt && access.user ? { user: access.user, pass: access.password ?? '' } : {}),
      ...(access.caPem ? { tls: { ca: access.caPem } } : {}),
      ...(access.inboxPrefix ? { inboxPrefix: access.inboxPrefix } : {}),
      name,
      reconnect: true,
      maxReconnectAttempts: -1,
      // An expired JWT refused at a reconnect is not the end: the SDK renews it
      // (docs/security.md), and the next attempt presents the new one.
      ignoreAuthErrorAbort: true,
      reconnectTimeWait: 250,
      timeout: 5_000,
      // A silent partition (no closed socket) is noticed after two missed
      // pings, ~10 s, instead of the client's default ~4 min; the data plane
      // then fails in-flight calls with a retryable error (docs/dataplane.md).
      pingInterval: 5_000,
      maxPingOut: 2,
    });
  } catch (e) {
    throw new MusterError(
      ErrorCode.UNAVAILABLE,
      `cannot connect to NATS at ${access.servers.map(withoutCredentials).join(', ')}: ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/** `nats://user:pass@host:4222` → `nats://***@host:4222`, for logs and errors; anything else unchanged. */
export function withoutCredentials(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^@/]*@/i, '$1***@');
}

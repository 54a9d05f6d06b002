/**
 * NATS connections of every Muster process: same options everywhere
 * (credentials, unlimited reconnects, pings every 5 s, a name that says who
 * we are). Server URLs are printed (errors, logs) without their user:password
 * part (`withoutCredentials`): a URL may carry one.
 */
import { connect, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { NatsAccess } from '@muster/proto';
import { ErrorCode, MusterError } from './errors.js';

export type { NatsConnection, Subscription };

export async function connectNats(access: NatsAccess, name: string): Promise<NatsConnection> {
  try {
    return await connect({
      servers: access.servers,
      user: access.user || undefined,
      pass: access.password || undefined,
      name,
      reconnect: true,
      maxReconnectAttempts: -1,
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

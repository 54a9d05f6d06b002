/**
 * NATS connections of every Muster process: same options everywhere
 * (credentials, unlimited reconnects, a name that says who we are).
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
    });
  } catch (e) {
    throw new MusterError(
      ErrorCode.UNAVAILABLE,
      `cannot connect to NATS at ${access.servers.join(', ')}: ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/** Subject of a cluster event: "<prefix>.events.<kind>". */
export function eventSubject(prefix: string, kind: string): string {
  return `${prefix}.events.${kind}`;
}

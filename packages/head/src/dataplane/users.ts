/**
 * What the head hands out on the data plane, whichever way NATS
 * authenticates: operator mode (nats-users.ts, the default) or the legacy
 * shared user (shared-user.ts). `dataPlaneUsers` (index.ts) picks one from
 * the config.
 */
import { readFile } from 'node:fs/promises';
import type { Identity } from '@muster/contracts';
import type { NatsAccess } from '@muster/proto';
import type { HeadConfig } from '../config.js';

/** What the head hands out on the data plane: operator mode (NatsUsers) or the legacy shared user (shared-user.ts). */
export interface DataPlaneUsers {
  /** What anyone may know: servers, prefix, CA (ClusterInfo, Registered). */
  readonly publicAccess: NatsAccess;
  /** The head's own connection. */
  head(headId: string): NatsAccess;
  /** The NATS variables of a launch order's ranks of `group`. */
  replicaEnv(group: string): Record<string, string>;
  /** GetDataPlaneAccess for `who` (`renewing`: the inbox prefix it holds). */
  caller(who: Identity, renewing?: string, nowMs?: number): NatsAccess;
}

/** Reads --nats-ca ('' when not set). */
export async function readNatsCa(config: HeadConfig): Promise<string> {
  if (!config.natsCa) return '';
  return readFile(config.natsCa, 'utf8').catch((e: unknown) => {
    throw new Error(`--nats-ca ${config.natsCa}: ${(e as Error).message}`, { cause: e });
  });
}

/** A NatsAccess with every field at its zero value. */
export function blank(): NatsAccess {
  return { servers: [], user: '', password: '', subjectPrefix: '', jwt: '', seed: '', caPem: '', inboxPrefix: '', expiresAtMs: 0, groups: [] };
}

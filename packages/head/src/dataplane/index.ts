/**
 * The head's data-plane credentials: `dataPlaneUsers(config, token)` is operator
 * mode (a user per role, minted by the head) unless --nats-user names the
 * legacy shared user. docs/security.md, "NATS: users per role".
 */
import type { SecretFileOptions } from '@muster/common';
import type { HeadConfig } from '../config.js';
import { NatsUsers } from './nats-users.js';
import { SharedNatsUser } from './shared-user.js';
import type { DataPlaneUsers } from './users.js';

export type { DataPlaneUsers } from './users.js';
export { NatsUsers, callableGroups } from './nats-users.js';

/** `clusterSecret` (the cluster token) keys callers' inbox prefixes, the same on every head and across signing-key rotations. */
export async function dataPlaneUsers(config: HeadConfig, clusterSecret: string, secret: SecretFileOptions = {}): Promise<DataPlaneUsers> {
  return config.natsUser ? SharedNatsUser.fromConfig(config) : NatsUsers.fromConfig(config, clusterSecret, secret);
}

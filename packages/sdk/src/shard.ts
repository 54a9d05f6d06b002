/**
 * For code running as a shard (a rank of a gang): the environment contract,
 * typed, and the readiness signal of the `sdk` probe. The variable names and
 * the reader are @muster/contracts' (shard-env.ts), shared with the head that
 * writes them; here its error becomes MUSTER_FAILED_PRECONDITION.
 *
 *   import { shard } from '@muster/sdk';
 *   const env = shard.env();          // { rank, worldSize, tpRank, ..., ports }
 *   await loadWeights();
 *   shard.ready();                    // the gang is READY once every rank said so
 */
import { ErrorCode, MusterError } from '@muster/common';
import { readRoleEnv, readShardEnv, ShardEnvError, type RoleView, type ShardEnv } from '@muster/contracts';

export type { RoleView, ShardEnv };

/** Reads and checks the environment contract of this process (@muster/contracts shard-env.ts). */
export function env(e: NodeJS.ProcessEnv = process.env): ShardEnv {
  try {
    return readShardEnv(e);
  } catch (err) {
    if (!(err instanceof ShardEnvError)) throw err;
    throw new MusterError(ErrorCode.FAILED_PRECONDITION, err.message, { details: { field: err.field }, cause: err });
  }
}

/**
 * This rank's role in a replica with roles (docs/gangs.md, "Roles"): its
 * role, instance, and the `host:port` of every role instance's first rank by
 * role and port name; undefined when the replica has no roles.
 *
 *   const decode = shard.role()?.addrs.decode?.http ?? [];   // ["10.0.0.5:30002", …]
 */
export function role(e: NodeJS.ProcessEnv = process.env): RoleView | undefined {
  return readRoleEnv(e);
}

/** Tells the agent this rank is ready (the `sdk` readiness probe). False when not launched with that probe, or once the agent closed the channel (the rank is ready, and its liveness is not `sdk`). */
export function ready(): boolean {
  if (typeof process.send !== 'function' || !process.connected) return false;
  // A callback, so that a channel closing meanwhile is not an 'error' event on the process (uncaught: a crash).
  process.send({ muster: 'ready' }, undefined, {}, () => undefined);
  return true;
}

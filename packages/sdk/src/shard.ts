/**
 * For code running as a shard (a rank of a gang): the environment contract,
 * typed, and the readiness signal of the `sdk` probe.
 *
 *   import { shard } from '@muster/sdk';
 *   const env = shard.env();          // { rank, worldSize, tpRank, ..., ports }
 *   await loadWeights();
 *   shard.ready();                    // the gang is READY once every rank said so
 */
import { ErrorCode, MusterError } from '@muster/common';

export interface ShardEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  tpRank: number;
  tpSize: number;
  ppRank: number;
  ppSize: number;
  replicaId: string;
  group: string;
  cudaVisibleDevices: string;
  /** MUSTER_PORT_<NAME> values, by lower-case name. */
  ports: Record<string, number>;
}

function num(env: NodeJS.ProcessEnv, name: string): number {
  const v = env[name];
  const n = Number(v);
  if (v === undefined || v === '' || !Number.isInteger(n) || n < 0) {
    throw new MusterError(ErrorCode.FAILED_PRECONDITION, `shard environment: ${name} is ${v === undefined ? 'missing' : `"${v}", not a non-negative integer`} (is this process running as a Muster shard?)`, { details: { field: name } });
  }
  return n;
}

/** Reads and checks the environment contract of this process. */
export function env(e: NodeJS.ProcessEnv = process.env): ShardEnv {
  const ports: Record<string, number> = {};
  for (const [k, v] of Object.entries(e)) if (k.startsWith('MUSTER_PORT_') && v) ports[k.slice('MUSTER_PORT_'.length).toLowerCase()] = Number(v);
  const s: ShardEnv = {
    rank: num(e, 'RANK'),
    worldSize: num(e, 'WORLD_SIZE'),
    localRank: num(e, 'LOCAL_RANK'),
    localWorldSize: num(e, 'LOCAL_WORLD_SIZE'),
    masterAddr: e.MASTER_ADDR ?? '',
    masterPort: num(e, 'MASTER_PORT'),
    tpRank: num(e, 'MUSTER_TP_RANK'),
    tpSize: num(e, 'MUSTER_TP_SIZE'),
    ppRank: num(e, 'MUSTER_PP_RANK'),
    ppSize: num(e, 'MUSTER_PP_SIZE'),
    replicaId: e.MUSTER_REPLICA_ID ?? '',
    group: e.MUSTER_GROUP ?? '',
    cudaVisibleDevices: e.CUDA_VISIBLE_DEVICES ?? '',
    ports,
  };
  if (s.worldSize !== s.tpSize * s.ppSize) throw new MusterError(ErrorCode.FAILED_PRECONDITION, `shard environment: WORLD_SIZE ${s.worldSize} ≠ MUSTER_TP_SIZE ${s.tpSize} × MUSTER_PP_SIZE ${s.ppSize}`, { details: { field: 'WORLD_SIZE' } });
  if (s.rank !== s.ppRank * s.tpSize + s.tpRank) throw new MusterError(ErrorCode.FAILED_PRECONDITION, `shard environment: RANK ${s.rank} ≠ MUSTER_PP_RANK × MUSTER_TP_SIZE + MUSTER_TP_RANK`, { details: { field: 'RANK' } });
  return s;
}

/** Tells the agent this rank is ready (the `sdk` readiness probe). False when not launched with that probe. */
export function ready(): boolean {
  if (typeof process.send !== 'function') return false;
  process.send({ muster: 'ready' });
  return true;
}

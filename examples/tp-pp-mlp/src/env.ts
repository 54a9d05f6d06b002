/**
 * The shard environment contract, read and checked once at start-up.
 *
 * A rank is configured by nothing else (see ../README.md for the table):
 * RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
 * (torch-compatible), MUSTER_TP_RANK/SIZE, MUSTER_PP_RANK/SIZE,
 * MUSTER_REPLICA_ID, MUSTER_GROUP, CUDA_VISIBLE_DEVICES and the allocated
 * ports MUSTER_PORT_<NAME> (this example uses HTTP and, if given, DIST).
 *
 * Every rule here is one that Muster promises; a violation means the
 * launcher is wrong, so the rank refuses to start (exit 2) and says which
 * variable is off, rather than compute something that might look right.
 * The rank layout rule, RANK = PP_RANK × TP_SIZE + TP_RANK, matters most:
 * a TP all-reduce sums partials commutatively, so two ranks with swapped TP
 * ranks would still produce the right numbers here, while the same mistake
 * on GPUs puts a TP group on the wrong devices. Only this check (and rank
 * 0's re-check of every rank's coordinates at the rendezvous) catches it.
 */
import { portVar, SHARD_ENV } from '@muster/contracts';
import { D_HIDDEN } from './model.js';

/** A broken contract: `variable` is the one to fix. */
export class EnvError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message);
    this.name = 'EnvError';
  }
}

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
  /** As given; null when unset (a CPU-only node). */
  cudaVisibleDevices: string | null;
  /** MUSTER_PORT_HTTP: where /health and /result are served; none when unset. */
  httpPort: number | null;
  /** MUSTER_PORT_DIST: this rank's peer listener; an ephemeral port when unset. */
  distPort: number | null;
  /** MUSTER_ATTEMPT (set by Muster's gang launcher; null elsewhere): ranks of different attempts must never pair up. */
  attempt: string | null;
}

/** The contract's variables, in the order the start line shows them. */
export const CONTRACT_VARS = [
  'RANK',
  'WORLD_SIZE',
  'LOCAL_RANK',
  'LOCAL_WORLD_SIZE',
  'MASTER_ADDR',
  'MASTER_PORT',
  SHARD_ENV.TP_RANK,
  SHARD_ENV.TP_SIZE,
  SHARD_ENV.PP_RANK,
  SHARD_ENV.PP_SIZE,
  SHARD_ENV.REPLICA_ID,
  SHARD_ENV.GROUP,
  'CUDA_VISIBLE_DEVICES',
] as const;

/** Set by Muster's gang launcher on top of the contract; logged when present. */
const GANG_VARS = [SHARD_ENV.GANG_ID, SHARD_ENV.ATTEMPT] as const;

type Env = Readonly<Record<string, string | undefined>>;

/** The contract exactly as this process sees it (unset = null), ports included: logged before any check. */
export function rawContract(env: Env): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const name of CONTRACT_VARS) out[name] = env[name] ?? null;
  for (const name of GANG_VARS) if (env[name] !== undefined) out[name] = env[name];
  for (const name of Object.keys(env).sort()) if (name.startsWith(SHARD_ENV.PORT_PREFIX)) out[name] = env[name] ?? null;
  return out;
}

function text(env: Env, name: string): string {
  const v = env[name];
  if (v === undefined || v.trim() === '') throw new EnvError(name, `${name} is not set`);
  return v.trim();
}

function int(env: Env, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = text(env, name);
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  if (!(n >= min && n <= max)) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer in ${min}..${max}`;
    throw new EnvError(name, `${name}="${v}" is not ${range}`);
  }
  return n;
}

function optionalPort(env: Env, name: string): number | null {
  return env[name] === undefined || env[name] === '' ? null : int(env, name, 1, 65535);
}

/** Parses and checks the contract; throws EnvError naming the first bad variable. */
export function parseShardEnv(env: Env): ShardEnv {
  const s: ShardEnv = {
    rank: int(env, 'RANK', 0),
    worldSize: int(env, 'WORLD_SIZE', 1),
    localRank: int(env, 'LOCAL_RANK', 0),
    localWorldSize: int(env, 'LOCAL_WORLD_SIZE', 1),
    masterAddr: text(env, 'MASTER_ADDR'),
    masterPort: int(env, 'MASTER_PORT', 1, 65535),
    tpRank: int(env, SHARD_ENV.TP_RANK, 0),
    tpSize: int(env, SHARD_ENV.TP_SIZE, 1),
    ppRank: int(env, SHARD_ENV.PP_RANK, 0),
    ppSize: int(env, SHARD_ENV.PP_SIZE, 1),
    replicaId: text(env, SHARD_ENV.REPLICA_ID),
    group: text(env, SHARD_ENV.GROUP),
    cudaVisibleDevices: env['CUDA_VISIBLE_DEVICES'] ?? null,
    httpPort: optionalPort(env, portVar('http')),
    distPort: optionalPort(env, portVar('dist')),
    attempt: env[SHARD_ENV.ATTEMPT] ?? null,
  };
  const fail = (variable: string, message: string): never => {
    throw new EnvError(variable, message);
  };
  if (s.worldSize !== s.tpSize * s.ppSize) {
    fail('WORLD_SIZE', `WORLD_SIZE=${s.worldSize} but MUSTER_TP_SIZE × MUSTER_PP_SIZE = ${s.tpSize} × ${s.ppSize} = ${s.tpSize * s.ppSize}`);
  }
  if (s.rank >= s.worldSize) fail('RANK', `RANK=${s.rank} is out of range for WORLD_SIZE=${s.worldSize}`);
  if (s.tpRank >= s.tpSize) fail(SHARD_ENV.TP_RANK, `MUSTER_TP_RANK=${s.tpRank} is out of range for MUSTER_TP_SIZE=${s.tpSize}`);
  if (s.ppRank >= s.ppSize) fail(SHARD_ENV.PP_RANK, `MUSTER_PP_RANK=${s.ppRank} is out of range for MUSTER_PP_SIZE=${s.ppSize}`);
  const expected = s.ppRank * s.tpSize + s.tpRank;
  if (expected !== s.rank) {
    // Name the coordinate that disagrees with RANK: the stage if RANK lies in another stage, else the TP rank.
    const variable = Math.floor(s.rank / s.tpSize) !== s.ppRank ? SHARD_ENV.PP_RANK : SHARD_ENV.TP_RANK;
    fail(
      variable,
      `${variable} breaks the rank layout: RANK must be MUSTER_PP_RANK × MUSTER_TP_SIZE + MUSTER_TP_RANK = ` +
        `${s.ppRank} × ${s.tpSize} + ${s.tpRank} = ${expected}, but RANK=${s.rank}`,
    );
  }
  if (s.localRank >= s.localWorldSize) {
    fail('LOCAL_RANK', `LOCAL_RANK=${s.localRank} must be below LOCAL_WORLD_SIZE=${s.localWorldSize}`);
  }
  if (s.localWorldSize > s.worldSize) {
    fail('LOCAL_WORLD_SIZE', `LOCAL_WORLD_SIZE=${s.localWorldSize} exceeds WORLD_SIZE=${s.worldSize}`);
  }
  if (D_HIDDEN % s.tpSize !== 0) {
    fail(SHARD_ENV.TP_SIZE, `MUSTER_TP_SIZE=${s.tpSize} does not divide the model's hidden width ${D_HIDDEN}`);
  }
  return s;
}

/** Loopback addresses: the only case where a rank may bind to MASTER_ADDR's interface alone. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/**
 * Where this rank's listeners bind. On loopback, only there (a local run
 * stays local); otherwise on every interface, since a rank's own address is
 * not part of the contract — rank 0 learns it from the rendezvous socket.
 */
export function bindHost(env: Pick<ShardEnv, 'masterAddr'>): string {
  // "localhost" may resolve to ::1 or 127.0.0.1; pin it so probes on 127.0.0.1 find us.
  if (env.masterAddr === 'localhost') return '127.0.0.1';
  return isLoopback(env.masterAddr) ? env.masterAddr : '0.0.0.0';
}

/** Where /health binds: Muster's probes always dial 127.0.0.1, whatever MASTER_ADDR says. */
export function httpBindHost(env: Pick<ShardEnv, 'masterAddr'>): string {
  return isLoopback(env.masterAddr) ? '127.0.0.1' : '0.0.0.0';
}

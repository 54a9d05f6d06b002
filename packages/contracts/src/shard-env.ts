/**
 * The environment contract of a shard process: every variable name the head
 * writes into a rank's environment (and the worker adds), the one function
 * that builds a rank's variables (the head's gang controller) and the ones
 * that read them (the SDK's `shard.env()`, `serve()`, the worker's HTTP
 * bridge). docs/gangs.md documents the contract for users.
 *
 * Decisions:
 *  - The torch-compatible names (RANK, WORLD_SIZE, MASTER_ADDR, …) are kept as
 *    torch spells them; everything Muster adds starts with MUSTER_.
 *  - A named port `http` of the template is MUSTER_PORT_HTTP: the name upper-
 *    cased behind PORT_PREFIX. Readers give ports back by lower-case name.
 *  - Readers throw `ShardEnvError` (a plain Error naming the variable): this
 *    package has no error table; callers wrap it into their own (the SDK
 *    turns it into MUSTER_FAILED_PRECONDITION / MUSTER_INVALID_ARGUMENT).
 *  - An environment is a plain string map here (no `process`): the package
 *    does no I/O, callers pass `process.env`.
 */

/** Every variable name of the shard contract. */
export const SHARD_ENV = {
  // torch.distributed compatible
  RANK: 'RANK',
  WORLD_SIZE: 'WORLD_SIZE',
  LOCAL_RANK: 'LOCAL_RANK',
  LOCAL_WORLD_SIZE: 'LOCAL_WORLD_SIZE',
  MASTER_ADDR: 'MASTER_ADDR',
  MASTER_PORT: 'MASTER_PORT',
  // CUDA
  CUDA_VISIBLE_DEVICES: 'CUDA_VISIBLE_DEVICES',
  CUDA_DEVICE_ORDER: 'CUDA_DEVICE_ORDER',
  // the rank's place in its gang
  TP_RANK: 'MUSTER_TP_RANK',
  TP_SIZE: 'MUSTER_TP_SIZE',
  PP_RANK: 'MUSTER_PP_RANK',
  PP_SIZE: 'MUSTER_PP_SIZE',
  REPLICA_ID: 'MUSTER_REPLICA_ID',
  GROUP: 'MUSTER_GROUP',
  GANG_ID: 'MUSTER_GANG_ID',
  ATTEMPT: 'MUSTER_ATTEMPT',
  /** Followed by the upper-cased port name: MUSTER_PORT_HTTP. */
  PORT_PREFIX: 'MUSTER_PORT_',
  // what a replica-group shard needs to serve on the data plane
  SUBJECT: 'MUSTER_SUBJECT',
  REVISION: 'MUSTER_REVISION',
  NATS_SUBJECT_PREFIX: 'MUSTER_NATS_SUBJECT_PREFIX',
  NATS_URL: 'MUSTER_NATS_URL',
  /** The group's data-plane user: a NATS user JWT minted by the head for this replica group (docs/security.md). */
  NATS_JWT: 'MUSTER_NATS_JWT',
  /** The nkey seed that goes with NATS_JWT (never written anywhere but this environment). */
  NATS_SEED: 'MUSTER_NATS_SEED',
  /** PEM of the CA that signed the NATS server's certificate ('' when NATS runs without TLS). */
  NATS_CA: 'MUSTER_NATS_CA',
  /** Legacy shared NATS user (a head started with --nats-user): instead of NATS_JWT/NATS_SEED. */
  NATS_USER: 'MUSTER_NATS_USER',
  NATS_PASSWORD: 'MUSTER_NATS_PASSWORD',
  /** The address a replica's direct-path listener binds and callers reach it at (the worker sets its node's address; docs/dataplane.md). */
  DATA_ADDR: 'MUSTER_DATA_ADDR',
  /** The port name the worker bridges HTTP requests to (replica groups with `httpPort`). */
  HTTP_BRIDGE: 'MUSTER_HTTP_BRIDGE',
  /** How the worker scrapes an HTTP replica's engine metrics: JSON of EngineScrapeConfig (engine-metrics.ts). */
  ENGINE_METRICS: 'MUSTER_ENGINE_METRICS',
  // a gang with roles (role-env.ts)
  /** The rank's role ("prefill", "decode"). */
  ROLE: 'MUSTER_ROLE',
  /** The index of the rank's role instance (0 … count − 1). */
  ROLE_INDEX: 'MUSTER_ROLE_INDEX',
  /** Instances of the rank's role in its replica. */
  ROLE_COUNT: 'MUSTER_ROLE_COUNT',
  /** Every role of the replica, comma-separated, in gang order. */
  ROLES: 'MUSTER_ROLES',
  /** Followed by ROLE_PORT: MUSTER_ROLE_ADDR_PREFILL_HTTP = "host:port,…", one per instance's first rank. */
  ROLE_ADDR_PREFIX: 'MUSTER_ROLE_ADDR_',
  /** JSON constructor arguments of an actor's host process. */
  ACTOR_ARGS: 'MUSTER_ACTOR_ARGS',
  /** The test kit's run tag; the worker passes it on to shards so a run can prove none was left behind. */
  TEST_RUN: 'MUSTER_TEST_RUN',
} as const;

/** The environment as this package sees it. */
export type EnvMap = Readonly<Record<string, string | undefined>>;

/** A variable of the contract is missing or malformed. */
export class ShardEnvError extends Error {
  override readonly name = 'ShardEnvError';
  constructor(
    /** The variable at fault. */
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** MUSTER_PORT_<NAME> of a template port. */
export function portVar(name: string): string {
  return `${SHARD_ENV.PORT_PREFIX}${name.toUpperCase()}`;
}

/** The rank as the head places it. */
export interface RankEnvInput {
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
  gangId: string;
  attempt: number;
  cudaVisibleDevices: string;
  /** Allocated port by template port name. */
  ports: Readonly<Record<string, number>>;
}

/** The variables of one rank (the head writes them over the template's env). */
export function rankEnv(r: RankEnvInput): Record<string, string> {
  const env: Record<string, string> = {
    [SHARD_ENV.RANK]: String(r.rank),
    [SHARD_ENV.WORLD_SIZE]: String(r.worldSize),
    [SHARD_ENV.LOCAL_RANK]: String(r.localRank),
    [SHARD_ENV.LOCAL_WORLD_SIZE]: String(r.localWorldSize),
    [SHARD_ENV.MASTER_ADDR]: r.masterAddr,
    [SHARD_ENV.MASTER_PORT]: String(r.masterPort),
    [SHARD_ENV.TP_RANK]: String(r.tpRank),
    [SHARD_ENV.TP_SIZE]: String(r.tpSize),
    [SHARD_ENV.PP_RANK]: String(r.ppRank),
    [SHARD_ENV.PP_SIZE]: String(r.ppSize),
    [SHARD_ENV.REPLICA_ID]: r.replicaId,
    [SHARD_ENV.GROUP]: r.group,
    [SHARD_ENV.GANG_ID]: r.gangId,
    [SHARD_ENV.ATTEMPT]: String(r.attempt),
    [SHARD_ENV.CUDA_VISIBLE_DEVICES]: r.cudaVisibleDevices,
    [SHARD_ENV.CUDA_DEVICE_ORDER]: 'PCI_BUS_ID',
  };
  for (const [name, port] of Object.entries(r.ports)) env[portVar(name)] = String(port);
  return env;
}

/** What a replica-group shard gets on top of the rank variables. */
export interface ReplicaEnvInput {
  subject: string;
  revision: string;
  subjectPrefix: string;
  /** Port name to bridge HTTP to; '' for none. */
  httpBridge: string;
  /** With httpBridge: the engine metrics scrape configuration (encodeEngineScrapeConfig's JSON). */
  engineMetrics?: string;
}

/** What a rank needs to reach NATS as its group's user. */
export interface NatsCredentialEnv {
  servers: readonly string[];
  jwt: string;
  seed: string;
  /** PEM of the NATS server's CA; '' for plaintext NATS. */
  caPem: string;
  /** Legacy shared user instead of jwt/seed. */
  user?: string;
  password?: string;
}

/**
 * The variables of a rank that hold a NATS secret: never written to the
 * worker's registry, never given to an HTTP-bridged rank (it speaks no NATS).
 */
export const NATS_SECRET_ENV: readonly string[] = [SHARD_ENV.NATS_JWT, SHARD_ENV.NATS_SEED, SHARD_ENV.NATS_USER, SHARD_ENV.NATS_PASSWORD];

/**
 * The NATS variables of a rank, merged into its launch order's env by the
 * head after the spec's (gang-executor.ts), minted per launch: never part of a
 * stored spec.
 */
export function natsCredentialEnv(c: NatsCredentialEnv): Record<string, string> {
  return {
    [SHARD_ENV.NATS_URL]: c.servers.join(','),
    ...(c.jwt ? { [SHARD_ENV.NATS_JWT]: c.jwt, [SHARD_ENV.NATS_SEED]: c.seed } : {}),
    ...(c.user ? { [SHARD_ENV.NATS_USER]: c.user, [SHARD_ENV.NATS_PASSWORD]: c.password ?? '' } : {}),
    ...(c.caPem ? { [SHARD_ENV.NATS_CA]: c.caPem } : {}),
  };
}

/** The NATS credential a rank was given (undefined: none; MUSTER_NATS_URL without a JWT is refused). */
export function readNatsCredentialEnv(env: EnvMap): NatsCredentialEnv | undefined {
  const url = env[SHARD_ENV.NATS_URL];
  if (!url) return undefined;
  const jwt = env[SHARD_ENV.NATS_JWT] ?? '';
  const seed = env[SHARD_ENV.NATS_SEED] ?? '';
  const servers = url.split(',').map((u) => u.trim()).filter((u) => u.length > 0);
  const user = env[SHARD_ENV.NATS_USER];
  if (!jwt && user) return { servers, jwt: '', seed: '', caPem: env[SHARD_ENV.NATS_CA] ?? '', user, password: env[SHARD_ENV.NATS_PASSWORD] ?? '' };
  if (!jwt || !seed) throw new ShardEnvError(jwt ? SHARD_ENV.NATS_SEED : SHARD_ENV.NATS_JWT, `shard environment: ${SHARD_ENV.NATS_URL} is set but ${jwt ? SHARD_ENV.NATS_SEED : SHARD_ENV.NATS_JWT} is missing (the head launches replicas with their group's NATS user)`);
  return { servers, jwt, seed, caPem: env[SHARD_ENV.NATS_CA] ?? '' };
}

export function replicaEnv(r: ReplicaEnvInput): Record<string, string> {
  return {
    [SHARD_ENV.SUBJECT]: r.subject,
    [SHARD_ENV.REVISION]: r.revision,
    [SHARD_ENV.NATS_SUBJECT_PREFIX]: r.subjectPrefix,
    ...(r.httpBridge ? { [SHARD_ENV.HTTP_BRIDGE]: r.httpBridge } : {}),
    ...(r.httpBridge && r.engineMetrics ? { [SHARD_ENV.ENGINE_METRICS]: r.engineMetrics } : {}),
  };
}

/** A rank's view of its environment (`shard.env()`): what the head wrote, less the gang's own bookkeeping. */
export type ShardEnv = Omit<RankEnvInput, 'gangId' | 'attempt' | 'ports'> & {
  /** MUSTER_PORT_<NAME> values, by lower-case name. */
  ports: Record<string, number>;
};

function num(env: EnvMap, name: string): number {
  const v = env[name];
  const n = Number(v);
  if (v === undefined || v === '' || !Number.isInteger(n) || n < 0) {
    throw new ShardEnvError(name, `shard environment: ${name} is ${v === undefined ? 'missing' : `"${v}", not a non-negative integer`} (is this process running as a Muster shard?)`);
  }
  return n;
}

/** MUSTER_PORT_<NAME> values by lower-case name. */
export function portsOf(env: EnvMap): Record<string, number> {
  const ports: Record<string, number> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith(SHARD_ENV.PORT_PREFIX) && v) ports[k.slice(SHARD_ENV.PORT_PREFIX.length).toLowerCase()] = Number(v);
  return ports;
}

/** Reads and checks a rank's environment; throws ShardEnvError naming the variable. */
export function readShardEnv(env: EnvMap): ShardEnv {
  const s: ShardEnv = {
    rank: num(env, SHARD_ENV.RANK),
    worldSize: num(env, SHARD_ENV.WORLD_SIZE),
    localRank: num(env, SHARD_ENV.LOCAL_RANK),
    localWorldSize: num(env, SHARD_ENV.LOCAL_WORLD_SIZE),
    masterAddr: env[SHARD_ENV.MASTER_ADDR] ?? '',
    masterPort: num(env, SHARD_ENV.MASTER_PORT),
    tpRank: num(env, SHARD_ENV.TP_RANK),
    tpSize: num(env, SHARD_ENV.TP_SIZE),
    ppRank: num(env, SHARD_ENV.PP_RANK),
    ppSize: num(env, SHARD_ENV.PP_SIZE),
    replicaId: env[SHARD_ENV.REPLICA_ID] ?? '',
    group: env[SHARD_ENV.GROUP] ?? '',
    cudaVisibleDevices: env[SHARD_ENV.CUDA_VISIBLE_DEVICES] ?? '',
    ports: portsOf(env),
  };
  if (s.worldSize !== s.tpSize * s.ppSize) throw new ShardEnvError(SHARD_ENV.WORLD_SIZE, `shard environment: WORLD_SIZE ${s.worldSize} ≠ MUSTER_TP_SIZE ${s.tpSize} × MUSTER_PP_SIZE ${s.ppSize}`);
  if (s.rank !== s.ppRank * s.tpSize + s.tpRank) throw new ShardEnvError(SHARD_ENV.RANK, `shard environment: RANK ${s.rank} ≠ MUSTER_PP_RANK × MUSTER_TP_SIZE + MUSTER_TP_RANK`);
  return s;
}

/** The port an HTTP replica is bridged to (its `MUSTER_HTTP_BRIDGE` port), 0 for none. */
export function httpBridgePort(env: EnvMap): number {
  const name = env[SHARD_ENV.HTTP_BRIDGE];
  if (!name) return 0;
  const port = Number(env[portVar(name)]);
  return Number.isInteger(port) && port > 0 && port <= 65_535 ? port : 0;
}

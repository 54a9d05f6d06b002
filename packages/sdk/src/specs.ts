/**
 * What a user writes: the specs of placement groups, gangs, replica groups
 * and actors, as the SDK takes them (plain objects, YAML through the CLI).
 * One module, so the strict schemas that check them (spec-schemas.ts) and
 * the handles that send them (placement-groups.ts, gangs.ts, …) import it
 * without importing each other. The wire forms are @muster/proto's; the
 * head's validated forms are its own.
 */

export interface BundleSpec {
  cpuMillis?: number;
  memoryBytes?: number;
  /** Whole GPUs; with `migProfile`, the number of MIG slices. */
  gpus?: number;
  /** Minimum memory of each whole GPU. */
  gpuMemoryMiB?: number;
  migProfile?: string;
  custom?: Record<string, number>;
}

export type Strategy = 'PACK' | 'SPREAD' | 'STRICT_PACK' | 'STRICT_SPREAD';
export type TopologyLevel = 'gpu-island' | 'node' | 'nvlink-domain' | 'rack' | 'zone';

export interface PlacementGroupSpec {
  name: string;
  strategy?: Strategy;
  bundles: BundleSpec[];
  topology?: Array<{ level: TopologyLevel; mode?: 'required' | 'preferred' }>;
  selector?: { matchLabels?: Record<string, string> };
  tolerations?: Array<{ key?: string; operator?: 'Equal' | 'Exists'; value?: string; effect?: 'NoSchedule' | 'PreferNoSchedule' }>;
  priority?: number;
}

export interface ProbeSpec {
  kind: 'http' | 'tcp' | 'exec' | 'sdk';
  /** A port name of the template, or a number. */
  port?: string | number;
  path?: string;
  command?: string[];
  periodMs?: number;
  timeoutMs?: number;
  failureThreshold?: number;
}

/** One warm-up request (warmup-spec.ts; docs/gangs.md#warm-up). */
export interface WarmupRequestSpec {
  kind: 'call' | 'http' | 'exec';
  /** call: what serve()'s handler gets: a JSON value, or bytes (a Uint8Array). */
  payload?: unknown;
  /** call: run the stream handler (its chunks are read to the end). */
  stream?: boolean;
  /** http: a port name of the template, or a number (on 127.0.0.1 of rank 0's node). */
  port?: string | number;
  /** http: default POST with a body, GET without. */
  method?: string;
  /** http: default "/". */
  path?: string;
  headers?: Record<string, string>;
  /** http: text as it is; any other value as JSON (content-type application/json unless `headers` set one). */
  body?: unknown;
  /** http: the status that passes (default: any 2xx). */
  expectStatus?: number;
  /** exec: argv run as rank 0 (its env, user and cwd); exit 0 passes. */
  command?: string[];
}

export interface WarmupSpec {
  /** In order, one at a time; at most 16. */
  requests: WarmupRequestSpec[];
  /** All of them together (default 60000, at most 600000). */
  timeoutMs?: number;
}

export interface GangSpec {
  name: string;
  /** Name or id of the placement group: one bundle per PP stage, its GPUs split over the TP ranks. */
  placementGroup: string;
  tp: number;
  pp: number;
  template: {
    command: string;
    args?: string[];
    env?: Record<string, string>;
    cwd?: string;
    /** Each becomes MUSTER_PORT_<NAME>; port 0/absent: allocated on the rank's node. */
    ports?: Array<{ name: string; port?: number }>;
    readiness?: ProbeSpec;
    liveness?: ProbeSpec;
    /** Requests rank 0 answers before the gang is READY (a replica before it takes traffic): docs/gangs.md#warm-up. */
    warmup?: WarmupSpec;
  };
  startup?: { deadlineMs?: number; maxRestarts?: number; backoffInitialMs?: number; backoffMaxMs?: number; gracePeriodMs?: number };
  logMaxBytes?: number;
}

export interface ReplicaGroupSpec {
  name: string;
  /** Unset with `roles` (each role has its own). */
  template?: GangSpec['template'];
  tp?: number;
  pp?: number;
  /** Per shard (rank). */
  resources?: { gpus?: number; cpuMillis?: number; memoryBytes?: number; gpuMemoryMiB?: number; migProfile?: string; custom?: Record<string, number> };
  placement?: {
    strategy?: Strategy;
    topology?: Array<{ level: TopologyLevel; mode?: 'required' | 'preferred' }>;
    selector?: { matchLabels?: Record<string, string> };
    tolerations?: Array<{ key?: string; operator?: 'Equal' | 'Exists'; value?: string; effect?: 'NoSchedule' | 'PreferNoSchedule' }>;
    priority?: number;
  };
  replicas?: { min?: number; max?: number; initial?: number };
  startup?: GangSpec['startup'];
  rollout?: { strategy?: 'rolling' | 'canary'; canaryWeight?: number; maxSurge?: number };
  drainDeadlineMs?: number;
  /** A port name of the template where the shard speaks HTTP: the worker bridges calls to it. */
  httpPort?: string;
  /** Failed replicas replaced within 10 minutes before giving up (default 3; 0: never). */
  maxReplacements?: number;
  /** Model names served on the gateway's OpenAI routes (the body's "model"); each name in one group only (docs/gateway.md). */
  models?: string[];
  /** A call's deadline when the caller gives none (ms, at most 1 h; default: the gateway's 30 s). */
  requestTimeoutMs?: number;
  /**
   * HTTP shards: how the worker reads the engine's Prometheus endpoint for
   * `engine-*` autoscaling metrics. Default: vLLM's names on /metrics every
   * second (docs/autoscaling.md, "Engine metrics"). Changing it rolls replicas
   * (each learns it at launch).
   */
  engineMetrics?: { path?: string; intervalMs?: number; waitingMetric?: string; runningMetric?: string; kvCacheMetric?: string; metrics?: string[] };
  /**
   * The router's limit of calls in flight per replica (from each caller).
   * Default: 32 for NATS shards; 1024 for HTTP shards, so the engine does the
   * queueing and batching. Changing it does not roll replicas.
   */
  maxInFlightPerReplica?: number;
  /**
   * Where calls go when this group is saturated (docs/replica-groups.md,
   * "Overflow"): another group's name and at least one rule. One hop: a call
   * sent there never overflows again. When the overflow group is saturated
   * too (or has no ready replica), the call gets MUSTER_BACKPRESSURE.
   */
  overflow?: {
    group: string;
    /** Saturated when calls waiting per ready replica (the router's queue + what replicas report), this call counted, would be above this (0 … 10,000,000). */
    queuePerReplicaAbove?: number;
    /** Saturated when the call would get MUSTER_BACKPRESSURE: no free slot and the router's queue (maxQueued) full. */
    onBackPressure?: boolean;
  };
  /**
   * How routers choose a replica (docs/replica-groups.md, "Routing policies").
   * `p2c` (default): the less loaded of two at random. `prefix`: calls with
   * the same key (the call's `routeKey`, else the first `prefixChars`
   * characters of its prompt, default 256) prefer the same replica, by
   * rendezvous hashing with bounded loads (`loadFactor` c, default 1.25: a
   * replica takes a keyed call while its load + 1 ≤ ceil(c × (total + 1) / n)).
   * Changing it does not roll replicas.
   */
  routing?: { policy?: 'p2c' | 'prefix'; prefixChars?: number; loadFactor?: number };
  /**
   * Roles of one replica (prefill ×1, decode ×2, …): placed together (one
   * placement group; `placement.topology` binds the roles), started and
   * restarted as one. With roles, template/tp/pp/resources are per role and
   * `httpPort` names a port of the entry role (docs/replica-groups.md, "Roles").
   */
  roles?: ReplicaRoleSpec[];
  /** Let the head move the replica count between replicas.min and replicas.max (docs/autoscaling.md). */
  autoscaling?: {
    /**
     * queue (default) | ongoing | engine-waiting | engine-running | engine-kv-cache | `engine:<a name in engineMetrics.metrics>`
     * | cpu (cores) | memory (bytes) | gpu-utilization (0…1) | gpu-memory (bytes) | `custom:<a gauge serve()'s customMetrics sets>`.
     */
    metric?: AutoscalingMetricName;
    target?: number;
    /**
     * Several metrics, each with its target per replica (at most 8; instead of
     * metric/target): the count is the largest any of them asks for, as HPA
     * does (docs/autoscaling.md, "Resource metrics").
     */
    metrics?: Array<{ metric: AutoscalingMetricName; target: number }>;
    upscaleDelayMs?: number;
    downscaleDelayMs?: number;
    maxStep?: number;
    tolerance?: number;
    scaleToZeroAfterMs?: number;
    lookbackMs?: number;
    floors?: Array<{ cron: string; durationMs: number; timezone?: string; min: number }>;
  };
}

/** One role of a replica group's replica. */
export interface ReplicaRoleSpec {
  /** 1-31 lowercase letters or digits, starting with a letter. */
  name: string;
  /** Instances of the role per replica (default 1), each its own TP × PP world. */
  count?: number;
  tp?: number;
  pp?: number;
  /** Per rank. */
  resources?: ReplicaGroupSpec['resources'];
  template: GangSpec['template'];
  /** This role's first rank receives the replica's calls (at most one role; none marked: the first). */
  entry?: boolean;
}

/** A metric an autoscaling policy may target (docs/autoscaling.md). */
export type AutoscalingMetricName = 'queue' | 'ongoing' | 'engine-waiting' | 'engine-running' | 'engine-kv-cache' | `engine:${string}` | 'cpu' | 'memory' | 'gpu-utilization' | 'gpu-memory' | `custom:${string}`;

export interface ActorOptions {
  /** Find it later by this name (lowercase letters, digits, "-"); default: a random one. */
  name?: string;
  /** Constructor arguments (JSON). */
  args?: unknown[];
  resources?: { gpus?: number; cpuMillis?: number; memoryBytes?: number };
  /** Restarts after a crash before the actor is FAILED (default 3). */
  maxRestarts?: number;
}

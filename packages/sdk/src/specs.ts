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
  };
  startup?: { deadlineMs?: number; maxRestarts?: number; backoffInitialMs?: number; backoffMaxMs?: number; gracePeriodMs?: number };
  logMaxBytes?: number;
}

export interface ReplicaGroupSpec {
  name: string;
  template: GangSpec['template'];
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

/**
 * The shapes a LocalCluster is described by: its options, the specs of its
 * workers and the handles of its children. In a module of their own so that
 * cluster.ts and heads.ts both import them and neither imports the other's
 * types back (no import cycle inside the package).
 */
import type { ManagedProcess } from './procs.js';

export type StopSignal = 'SIGTERM' | 'SIGKILL';

export interface WorkerSpec {
  nodeId?: string;
  profile?: string;
  labels?: Record<string, string>;
  taints?: string[];
  /** Extra flags for muster-worker. */
  args?: string[];
  /**
   * Its Prometheus port on 127.0.0.1; one that is taken falls back to a free
   * one (the handle's metricsAddress says which). Default: a free one.
   */
  metricsPort?: number;
}

export interface ClusterOptions {
  /** Where data and logs go; a temp dir (removed on stop) when unset. */
  dataDir?: string;
  /** gRPC port of the first head; 0 = any free one (the others always pick a free one). */
  port?: number;
  /**
   * Prometheus port of the first head on 127.0.0.1; one that is taken falls
   * back to a free one (HeadHandle.metricsAddress says which). Default: a
   * free one. (Workers: WorkerSpec.metricsPort.)
   */
  metricsPort?: number;
  /**
   * The web dashboard (docs/dashboard.md): every head serves it on
   * 127.0.0.1 — the first head on `dashboardPort` (0, unset or taken: a
   * free port), the others on free ports, each keeping its port across restarts; HeadHandle.dashboardUrl says where. `false`:
   * none. Default: on.
   */
  dashboard?: boolean;
  dashboardPort?: number;
  /** How many heads; default 1. More than one needs `store: 'etcd'`. */
  heads?: number;
  workers?: number | WorkerSpec[];
  /** Default GPU profile of workers. */
  profile?: string;
  store?: 'embedded' | 'etcd';
  /**
   * Plaintext everywhere (heads started with --insecure, workers and clients
   * use the token only, etcd without TLS). Default false: the cluster gets a
   * PKI in `<dataDir>/pki` and every gRPC and etcd link is TLS.
   */
  insecure?: boolean;
  nats?: boolean;
  heartbeatIntervalMs?: number;
  deadAfterMs?: number;
  /** Called with every line a child prints, prefixed by its name. */
  onLine?: (name: string, line: string) => void;
  /** Extra flags for muster-head. */
  headArgs?: string[];
  /** `--shard-user` of every worker (default: the worker's own choice, a uid per gang when it runs as root). */
  shardUser?: string;
  /** Ports the heads hand to shard ranks, "FIRST-LAST" (default: the head's own). */
  shardPortRange?: string;
  /** Flags for node itself when it runs a head (e.g. --cpu-prof). */
  headNodeArgs?: string[];
  /**
   * MUSTER_TEST_RUN of every child (workers pass it on to shards). Default:
   * `<MUSTER_TEST_RUN>/<random>` when this process runs under the test suite,
   * else none. `createTestCluster()` always sets one.
   */
  runTag?: string;
}

export interface ChildInfo {
  readonly name: string;
  readonly process: ManagedProcess;
  /** Its Prometheus endpoint "host:port", when it serves one. */
  readonly metricsAddress: string | undefined;
}

export interface WorkerHandle extends ChildInfo {
  readonly nodeId: string;
  readonly spec: WorkerSpec;
}

export interface HeadHandle extends ChildInfo {
  /** Position in `cluster.heads`; the head id is `head-<index>`. */
  readonly index: number;
  readonly headId: string;
  /** gRPC address "127.0.0.1:port" (the same port across restarts). */
  readonly address: string;
  /** The web dashboard's URL ("https://127.0.0.1:port"), unless the cluster runs without (`dashboard: false`). */
  readonly dashboardUrl: string | undefined;
}

/**
 * The scheduler's vocabulary: what goes in (a snapshot of nodes and the
 * reservations already made), what a user asks for (a placement group spec),
 * and what comes out (a plan, or a reason why not).
 *
 * Everything here is plain data: a snapshot can be built from etcd, from a
 * test table or from a simulator, and a plan can be written back in one etcd
 * transaction by a controller. The core never does I/O itself.
 */

/** Label keys the scheduler reads to find a node's place in the data centre. */
export const TopologyLabel = {
  ZONE: 'muster.io/zone',
  RACK: 'muster.io/rack',
  /** Fallback for `SchedulerNode.nvlinkDomain` (multi-node NVLink domain / clique). */
  NVLINK_DOMAIN: 'muster.io/nvlink-domain',
} as const;

export interface Taint {
  key: string;
  value: string;
  /** `NoSchedule` keeps groups off unless tolerated; `PreferNoSchedule` only lowers the score. */
  effect: 'NoSchedule' | 'PreferNoSchedule';
}

export interface MigSlice {
  /** e.g. "1g.10gb" */
  profile: string;
  /** "MIG-..." — what ends up in CUDA_VISIBLE_DEVICES. */
  uuid: string;
}

export interface SchedulerGpu {
  index: number;
  memoryMiB: number;
  /** NUMA node of the GPU's PCIe root, when known; breaks ties between equal links. */
  numaNode?: number;
  /** MIG slices configured on this GPU. A GPU with slices is never handed out whole. */
  mig: MigSlice[];
}

/** One node as the scheduler sees it. Built by the controller from the node registry. */
export interface SchedulerNode {
  id: string;
  alive: boolean;
  /**
   * Draining (cordoned): takes no new placement (filter `draining`). It still
   * counts as a node shape for "would it fit an empty cluster?", as a dead node
   * does: it may be uncordoned.
   */
  draining?: boolean;
  labels: Record<string, string>;
  /** Multi-node NVLink domain; falls back to the `muster.io/nvlink-domain` label. */
  nvlinkDomain?: string;
  taints: Taint[];
  capacity: { cpuMillis: number; memoryBytes: number; custom: Record<string, number> };
  /** GPUs in index order: `gpus[i].index === i` is expected. */
  gpus: SchedulerGpu[];
  /** N×N, as `nvidia-smi topo -m` prints: "X", "NV18", "PIX", "PXB", "PHB", "NODE", "SYS". */
  links: string[][];
  /** NVLink islands (connected components of the NVLink graph); derived from `links` when empty. */
  islands: number[][];
}

/** Where one bundle of a group went. A reservation is the same thing plus the group id. */
export interface BundlePlacement {
  /** Index of the bundle in the spec's `bundles`. */
  bundleIndex: number;
  nodeId: string;
  /** Whole GPUs, ascending. */
  gpuIndices: number[];
  /** MIG slices, when the bundle asked for a MIG profile. */
  migUuids: string[];
  cpuMillis: number;
  memoryBytes: number;
  custom: Record<string, number>;
}

export interface Reservation extends BundlePlacement {
  groupId: string;
}

/** The scheduler's whole input about the cluster. */
export interface ClusterSnapshot {
  nodes: SchedulerNode[];
  reservations: Reservation[];
}

export type Strategy = 'PACK' | 'SPREAD' | 'STRICT_PACK' | 'STRICT_SPREAD';
export type TopologyLevel = 'gpu-island' | 'node' | 'nvlink-domain' | 'rack' | 'zone';
export type ConstraintMode = 'required' | 'preferred';

export interface Bundle {
  cpuMillis: number;
  memoryBytes: number;
  /** Whole GPUs; with `migProfile`, the number of MIG slices of that profile. */
  gpus: number;
  /** Minimum memory of each whole GPU (0: any). */
  gpuMemoryMiB: number;
  migProfile?: string | undefined;
  custom: Record<string, number>;
}

export interface TopologyConstraint {
  level: TopologyLevel;
  mode: ConstraintMode;
}

export interface Toleration {
  /** Empty key with `Exists` tolerates every taint. */
  key: string;
  operator: 'Equal' | 'Exists';
  value: string;
  /** Absent: tolerates both effects. */
  effect?: Taint['effect'] | undefined;
}

/** A validated placement group spec (the output of `parsePlacementGroupSpec`). */
export interface ValidPgSpec {
  name: string;
  strategy: Strategy;
  bundles: Bundle[];
  topology: TopologyConstraint[];
  selector: { matchLabels: Record<string, string> };
  tolerations: Toleration[];
  priority: number;
}

/** One counted cause of rejection: code plus a short stable detail ("spot", "gpu"). */
export interface RejectionCount {
  code: string;
  detail: string;
  count: number;
}

/** Why a group is not placed: structured, plus one human sentence built from it. */
export interface Unschedulable {
  /** The main reason code (see `ReasonCode`). */
  code: string;
  /** "needs 8 GPUs in one NVLink island; largest free island is 4 (node-3); ..." */
  message: string;
  /** The bundle that could not be placed (spec index), when one bundle is to blame. */
  bundleIndex?: number;
  /** How many bundles were placed tentatively before giving up (in the best attempt). */
  bundlesPlaced: number;
  nodesTotal: number;
  /** Node rejections by reason, largest first; each node is counted once, for its first failing filter. */
  rejections: RejectionCount[];
  largestFreeIsland?: { size: number; nodeId: string };
  mostFreeGpus?: { count: number; nodeId: string };
  /** Set when a required topology level confined the group. */
  domain?: { level: string; tried: number; best?: string; bestPlaced?: number };
}

export type ScheduleResult =
  | { status: 'PLACED'; placements: BundlePlacement[] }
  | { status: 'PENDING'; reason: Unschedulable }
  /** Fits no node shape even on an empty cluster: waiting will not help. */
  | { status: 'INFEASIBLE'; reason: Unschedulable };

/**
 * The plugin contract, in the vocabulary of the Kubernetes scheduling
 * framework: a plugin may filter (say no, with a reason) and may score
 * (say how much it likes a node). Plugins never throw and never mutate state;
 * reserve/unreserve belong to the pipeline.
 *
 * Filters come in two scopes so the pipeline can run each as rarely as
 * possible: `filterNode` depends only on the node and the group (liveness,
 * taints, labels) and runs once per node per group; `filterBundle` depends on
 * the bundle and on what the gang has already taken, and runs per bundle.
 */
import { popcount } from '../bits.js';
import type { FilterResult } from '../reasons.js';
import type { NodeHeadroom } from '../state.js';
import type { Bundle, ValidPgSpec, Strategy } from '../types.js';

/** The co-location levels (everything but `gpu-island`, which is inside one bundle). */
export type DomainLevel = 'node' | 'nvlink-domain' | 'rack' | 'zone';

/** What every plugin may know about the group being placed. */
export interface GangContext {
  readonly spec: ValidPgSpec;
  readonly strategy: Strategy;
  /** `gpu-island` required: each bundle's GPUs inside one NVLink island. */
  readonly islandRequired: boolean;
  /** Co-location levels that must hold (STRICT_PACK adds `node`). */
  readonly requiredLevels: readonly DomainLevel[];
  readonly preferredLevels: readonly DomainLevel[];
  /** Nodes held for a starving group (node id → group id), set by the queue. */
  readonly held: ReadonlyMap<string, string> | undefined;
  /** Bundles of this gang placed so far in the current attempt, by node index. */
  readonly bundlesOnNode: Map<number, number>;
  /** Per preferred level, the domains the gang's placed bundles are in. */
  readonly placedDomains: Map<DomainLevel, Set<string>>;
  /** What the gang still needs, the bundle being placed included (PACK looks for a node that takes it all). */
  readonly remaining: GangDemand;
}

export interface GangDemand {
  gpus: number;
  migSlices: number;
  cpuMillis: number;
  memoryBytes: number;
  custom: Map<string, number>;
}

/** GPU availability of one node for one bundle, computed once and shared by filters and scorers. */
export interface NodeFit {
  /** Free whole GPUs with enough memory. */
  eligible: number;
  count: number;
  /** Free eligible GPUs in the fullest island that still holds the bundle (-1: none does). */
  bestIslandFree: number;
  largestIslandFree: number;
}

/** One bundle being placed, with a one-entry memo of its fit on the node being looked at. */
export class BundleContext {
  readonly index: number;
  readonly bundle: Bundle;
  /** Whole GPUs wanted (0 for MIG bundles). */
  readonly gpus: number;
  /** MIG slices wanted (0 unless `migProfile`). */
  readonly migSlices: number;
  readonly custom: [string, number][];
  private memoNode = -1;
  /** Reused, not reallocated: read a fit before asking for the next node's. */
  private readonly memo: NodeFit = { eligible: 0, count: 0, bestIslandFree: -1, largestIslandFree: 0 };

  constructor(index: number, bundle: Bundle) {
    this.index = index;
    this.bundle = bundle;
    const mig = bundle.migProfile !== undefined && bundle.migProfile !== '';
    this.gpus = mig ? 0 : bundle.gpus;
    this.migSlices = mig ? bundle.gpus : 0;
    this.custom = Object.entries(bundle.custom).filter(([, v]) => v > 0);
  }

  /** Forget the memo: the pipeline calls this before each scan, since reservations move. */
  resetMemo(): void {
    this.memoNode = -1;
  }

  fit(ns: NodeHeadroom): NodeFit {
    if (this.memoNode === ns.idx) return this.memo;
    const eligible = ns.eligibleMask(this.bundle.gpuMemoryMiB);
    let best = -1;
    let largest = 0;
    const islands = ns.topo.islands;
    for (let i = 0; i < islands.length; i++) {
      const f = popcount(eligible & islands[i]!);
      if (f > largest) largest = f;
      if (f >= this.gpus && (best < 0 || f < best)) best = f;
    }
    this.memoNode = ns.idx;
    const m = this.memo;
    m.eligible = eligible;
    m.count = popcount(eligible);
    m.bestIslandFree = best;
    m.largestIslandFree = largest;
    return m;
  }

  /** Human description, e.g. "8 GPUs (≥ 80000 MiB each), 32 CPU cores, 256 GiB memory". */
  describe(islandRequired: boolean): string {
    const b = this.bundle;
    const parts: string[] = [];
    if (this.migSlices > 0) parts.push(`${this.migSlices} MIG ${b.migProfile} slice${this.migSlices === 1 ? '' : 's'}`);
    if (this.gpus > 0) {
      const mem = b.gpuMemoryMiB > 0 ? ` (≥ ${b.gpuMemoryMiB} MiB each)` : '';
      const island = islandRequired && this.gpus > 1 ? ' in one NVLink island' : '';
      parts.push(`${this.gpus} GPU${this.gpus === 1 ? '' : 's'}${mem}${island}`);
    }
    if (b.cpuMillis > 0) parts.push(`${b.cpuMillis / 1000} CPU cores`);
    if (b.memoryBytes > 0) parts.push(`${formatBytes(b.memoryBytes)} memory`);
    for (const [k, v] of this.custom) parts.push(`${v} ${k}`);
    return parts.length > 0 ? parts.join(', ') : 'nothing';
  }
}

export function formatBytes(n: number): string {
  const gib = n / 2 ** 30;
  return gib >= 1 ? `${Number(gib.toFixed(1))} GiB` : `${Number((n / 2 ** 20).toFixed(1))} MiB`;
}

export interface SchedulerPlugin {
  readonly name: string;
  /** Depends on node and group only; runs once per node per group. */
  filterNode?(node: NodeHeadroom, ctx: GangContext): FilterResult;
  /** Depends on the bundle and the gang's tentative reservations; runs per node per bundle. */
  filterBundle?(node: NodeHeadroom, bundle: BundleContext, ctx: GangContext): FilterResult;
  /** 0..100, higher is better; only on nodes that passed every filter. */
  score?(node: NodeHeadroom, bundle: BundleContext, ctx: GangContext): number;
}

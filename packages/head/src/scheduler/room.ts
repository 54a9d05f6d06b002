/**
 * "Is there room at all?": a necessary condition for a group to fit, from
 * cluster-wide free totals, in O(bundles) per group.
 *
 * The queue (controllers/pg-queue.ts) keeps a backlog of pending
 * groups without running the whole pipeline for each of them in every cycle:
 * when the cluster has fewer free GPUs (or CPU, memory, MIG slices of a
 * profile) than a group asks for in total, or no node has as many free
 * GPUs as its largest bundle, the group cannot fit, whatever its topology,
 * selector or strategy. `roomFor` only ever answers false when that is so
 * (the property tests check it against the pipeline), so skipping a group
 * it rules out never delays a group that would have fit.
 */
import { popcount } from './bits.js';
import type { ClusterState } from './state.js';
import type { ValidPgSpec } from './types.js';

export interface FreeTotals {
  gpus: number;
  /** The most free whole GPUs on one node. */
  maxNodeGpus: number;
  cpuMillis: number;
  memoryBytes: number;
  /** Free MIG slices by profile. */
  mig: Map<string, number>;
}

/** What is free on the nodes that take placements (alive, not draining, supported). */
export function freeTotals(state: ClusterState): FreeTotals {
  const t: FreeTotals = { gpus: 0, maxNodeGpus: 0, cpuMillis: 0, memoryBytes: 0, mig: new Map() };
  for (const ns of state.nodes) {
    if (!ns.alive || ns.draining || ns.unsupported !== '') continue;
    const gpus = popcount(ns.freeMask);
    t.gpus += gpus;
    t.maxNodeGpus = Math.max(t.maxNodeGpus, gpus);
    t.cpuMillis += Math.max(0, ns.freeCpu);
    t.memoryBytes += Math.max(0, ns.freeMem);
    for (const [profile, n] of ns.migFree) t.mig.set(profile, (t.mig.get(profile) ?? 0) + Math.max(0, n));
  }
  return t;
}

/** False only when `spec` cannot fit in what `free` says is left (true does not mean it fits). */
export function roomFor(free: FreeTotals, spec: ValidPgSpec): boolean {
  let gpus = 0;
  let largest = 0;
  let cpuMillis = 0;
  let memoryBytes = 0;
  const mig = new Map<string, number>();
  for (const b of spec.bundles) {
    cpuMillis += b.cpuMillis;
    memoryBytes += b.memoryBytes;
    if (b.migProfile) mig.set(b.migProfile, (mig.get(b.migProfile) ?? 0) + b.gpus);
    else {
      gpus += b.gpus;
      largest = Math.max(largest, b.gpus);
    }
  }
  if (gpus > free.gpus || largest > free.maxNodeGpus || cpuMillis > free.cpuMillis || memoryBytes > free.memoryBytes) return false;
  for (const [profile, n] of mig) if (n > (free.mig.get(profile) ?? 0)) return false;
  return true;
}

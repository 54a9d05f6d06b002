/**
 * The scheduler's index of nodes by what they have free, kept as
 * reservations are made and released, so a bundle visits only the nodes that
 * could hold it instead of filtering and scoring every node of the cluster.
 *
 *   byFree[k]   nodes with exactly k free whole GPUs (k = 0..32)
 *   islandAtLeast[t]  nodes with t or more free GPUs inside one NVLink island
 *   untouched   nodes with nothing reserved (judged once per shape class)
 *   mig[p]      nodes with at least one free MIG slice of profile p
 *
 * ClusterState files a node again (`track`) after every reserve and release
 * of it, and when the view replaces or adds a node (`forget` then `track`);
 * nothing else writes a node's headroom. A move between buckets is two bit
 * operations, so the index costs O(1) per reservation.
 *
 * How the pipeline uses it (scan.ts): a bundle of g whole GPUs visits the
 * buckets k ≥ g, fewest free first, each in node order; the nodes of lower
 * buckets fail the resources filter by construction and are counted under
 * `insufficient-gpu` without a visit. Best fit scores a node with fewer free
 * GPUs higher, so the score a bucket can reach at most falls as k grows, and
 * the pass stops once no node left can beat (or tie from a lower index) the
 * best found. A MIG bundle visits only the nodes with a free slice of its
 * profile. The answers are those of a pass over every node, tie-breaking
 * included; the property tests compare the two.
 */
import { MAX_GPUS_PER_NODE, popcount } from './bits.js';
import { NodeSet } from './node-set.js';
import type { NodeHeadroom } from './state.js';

export class NodeIndex {
  /** byFree[k]: the nodes with exactly k free whole GPUs. */
  readonly byFree: NodeSet[];
  /** islandAtLeast[t]: the nodes with at least t free GPUs inside one NVLink island (t = 1..32). */
  readonly islandAtLeast: NodeSet[];
  readonly untouched: NodeSet;
  /** Per MIG profile, the nodes with a free slice of it. */
  readonly mig = new Map<string, NodeSet>();
  /** Each node's bucket, by index (-1: not filed). */
  private readonly bucket: number[] = [];
  /** Each node's largest free island, by index. */
  private readonly island: number[] = [];

  constructor(capacity: number) {
    this.byFree = Array.from({ length: MAX_GPUS_PER_NODE + 1 }, () => new NodeSet(capacity));
    this.islandAtLeast = Array.from({ length: MAX_GPUS_PER_NODE + 1 }, () => new NodeSet(capacity));
    this.untouched = new NodeSet(capacity);
  }

  /** Files `ns` where its headroom says it belongs now. */
  track(ns: NodeHeadroom): void {
    const i = ns.idx;
    const k = popcount(ns.freeMask);
    const old = this.bucket[i] ?? -1;
    if (old !== k) {
      if (old >= 0) this.byFree[old]!.delete(i);
      this.byFree[k]!.add(i);
      this.bucket[i] = k;
    }
    let largest = 0;
    for (const isl of ns.topo.islands) largest = Math.max(largest, popcount(ns.freeMask & isl));
    this.fileIsland(i, largest);
    if (ns.untouched) this.untouched.add(i);
    else this.untouched.delete(i);
    for (const [profile, free] of ns.migFree) {
      let set = this.mig.get(profile);
      if (set === undefined) this.mig.set(profile, (set = new NodeSet(this.untouched.words.length * 32)));
      if (free > 0) set.add(i);
      else set.delete(i);
    }
  }

  /** Takes index `i` out of every set (its node is about to be replaced). */
  forget(i: number): void {
    const old = this.bucket[i] ?? -1;
    if (old >= 0) this.byFree[old]!.delete(i);
    this.bucket[i] = -1;
    this.fileIsland(i, 0);
    this.untouched.delete(i);
    for (const set of this.mig.values()) set.delete(i);
  }

  private fileIsland(i: number, largest: number): void {
    const old = this.island[i] ?? 0;
    for (let t = old + 1; t <= largest; t++) this.islandAtLeast[t]!.add(i);
    for (let t = largest + 1; t <= old; t++) this.islandAtLeast[t]!.delete(i);
    this.island[i] = largest;
  }

  /** The bucket `i` is filed in (-1: none); for tests. */
  bucketOf(i: number): number {
    return this.bucket[i] ?? -1;
  }
}

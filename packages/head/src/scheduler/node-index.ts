/**
 * The scheduler's index of nodes by what they have free, kept as
 * reservations are made and released, so a bundle visits only the nodes that
 * could hold it instead of filtering and scoring every node of the cluster.
 *
 *   byFree[k]   nodes with exactly k free whole GPUs (k = 0..32)
 *   islandAtLeast[t]  nodes with t or more free GPUs inside one NVLink island
 *   islandWith[j]     nodes with an NVLink island that has exactly j free GPUs
 *               (a node's island sizes are kept as a 32-bit set, size j at
 *               bit j − 1, read unsigned: 32 free GPUs is bit 31)
 *   untouched   nodes with nothing reserved (judged once per shape class),
 *               and per bucket how many shape classes they fall into
 *   migWith[p][n]     nodes with exactly n free slices of profile p (n ≥ 64 filed at 64)
 *   cpu         nodes by CPU capacity, free GPUs and step of free CPU share,
 *               for bundles without GPUs (cpu-index.ts)
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
 * profile. A bundle without GPUs walks the cpu index by free GPUs, then
 * free CPU share, with the same early stop. The answers are those of a pass over every node, tie-breaking
 * included; the property tests compare the two.
 */
import { MAX_GPUS_PER_NODE, popcount } from './bits.js';
import { CpuIndex } from './cpu-index.js';
import { NodeSet } from './node-set.js';

/** What the index reads of a node's headroom (state.ts NodeHeadroom has it; no import, so no cycle). */
export interface IndexedNode {
  readonly idx: number;
  readonly freeMask: number;
  readonly untouched: boolean;
  readonly topo: { readonly islands: readonly number[] };
  readonly migFree: ReadonlyMap<string, number>;
  readonly freeCpu: number;
  readonly node: { readonly capacity: { readonly cpuMillis: number } };
}

/** Free-slice counts filed one by one; more are filed together. */
export const MIG_COUNTS = 64;

export class NodeIndex {
  /** byFree[k]: the nodes with exactly k free whole GPUs. */
  readonly byFree: NodeSet[];
  /** islandAtLeast[t]: the nodes with at least t free GPUs inside one NVLink island (t = 1..32). */
  readonly islandAtLeast: NodeSet[];
  /** islandWith[j]: the nodes with an island of exactly j free GPUs (j = 1..32): best fit's first key. */
  readonly islandWith: NodeSet[];
  readonly untouched: NodeSet;
  /** Per MIG profile, the nodes by how many slices of it are free (MIG_COUNTS and more filed last). */
  readonly migWith = new Map<string, NodeSet[]>();
  /** Each node's filed free-slice count per profile, by index. */
  private readonly migCount: Array<Map<string, number> | undefined> = [];
  /** How many nodes each byFree bucket holds. */
  private readonly bucketCount = new Int32Array(MAX_GPUS_PER_NODE + 1);
  /** Each node's bucket, by index (-1: not filed). */
  private readonly bucket: number[] = [];
  /** Each node's largest free island, by index. */
  private readonly island: number[] = [];
  /** Each node's island free counts as an unsigned bit set (bit j − 1: an island with j free), by index. */
  private readonly islandCounts: number[] = [];
  /** Per bucket, the shape classes of its untouched nodes with their counts (a pass stops once each is judged). */
  private readonly classes: Array<Map<number, number>> = Array.from({ length: MAX_GPUS_PER_NODE + 1 }, () => new Map());
  /** Each untouched node's filed [bucket, shape], by index. */
  private readonly filedClass: Array<[number, number] | undefined> = [];
  /** How many nodes are in islandWith[j] ∩ byFree[k], at j·33 + k: a pass skips the empty pairs. */
  readonly pairs = new Int32Array((MAX_GPUS_PER_NODE + 1) ** 2);
  /** The nodes for bundles without GPUs: by CPU capacity, free GPUs, free CPU share. */
  readonly cpu: CpuIndex;

  constructor(
    capacity: number,
    /** The shape class of the node at an index (state.ts shapeOf). */
    private readonly shapeOf: (i: number) => number,
  ) {
    this.byFree = Array.from({ length: MAX_GPUS_PER_NODE + 1 }, () => new NodeSet(capacity));
    this.islandAtLeast = Array.from({ length: MAX_GPUS_PER_NODE + 1 }, () => new NodeSet(capacity));
    this.islandWith = Array.from({ length: MAX_GPUS_PER_NODE + 1 }, () => new NodeSet(capacity));
    this.untouched = new NodeSet(capacity);
    this.cpu = new CpuIndex(capacity);
  }

  /** Files `ns` where its headroom says it belongs now. */
  track(ns: IndexedNode): void {
    const i = ns.idx;
    const k = popcount(ns.freeMask);
    const old = this.bucket[i] ?? -1;
    this.countPairs(i, -1);
    if (old !== k) {
      if (old >= 0) this.byFree[old]!.delete(i);
      if (old >= 0) this.bucketCount[old]! -= 1;
      this.byFree[k]!.add(i);
      this.bucketCount[k]! += 1;
      this.bucket[i] = k;
    }
    let largest = 0;
    let counts = 0;
    for (const isl of ns.topo.islands) {
      const free = popcount(ns.freeMask & isl);
      largest = Math.max(largest, free);
      if (free > 0) counts = (counts | (1 << (free - 1))) >>> 0;
    }
    this.fileIsland(i, largest, counts);
    this.countPairs(i, 1);
    this.cpu.file(i, k, ns.freeCpu, ns.node.capacity.cpuMillis);
    if (ns.untouched) this.untouched.add(i);
    else this.untouched.delete(i);
    const was = this.filedClass[i];
    if (!ns.untouched) this.unfileClass(i);
    else if (was === undefined || was[0] !== k) {
      this.unfileClass(i);
      this.fileClass(i, k, this.shapeOf(i));
    }
    for (const [profile, free] of ns.migFree) {
      let byCount = this.migWith.get(profile);
      if (byCount === undefined) this.migWith.set(profile, (byCount = Array.from({ length: MIG_COUNTS + 1 }, () => new NodeSet(this.untouched.words.length * 32))));
      const counts = (this.migCount[i] ??= new Map());
      const was = counts.get(profile);
      const now = Math.min(MIG_COUNTS, Math.max(0, free));
      if (was === now) continue;
      if (was !== undefined) byCount[was]!.delete(i);
      byCount[now]!.add(i);
      counts.set(profile, now);
    }
  }

  /** Takes index `i` out of every set (its node is about to be replaced). */
  forget(i: number): void {
    this.countPairs(i, -1);
    this.unfileClass(i);
    const old = this.bucket[i] ?? -1;
    if (old >= 0) this.byFree[old]!.delete(i);
    if (old >= 0) this.bucketCount[old]! -= 1;
    this.bucket[i] = -1;
    this.cpu.unfile(i);
    this.fileIsland(i, 0, 0);
    this.untouched.delete(i);
    for (const [profile, n] of this.migCount[i] ?? []) this.migWith.get(profile)?.[n]?.delete(i);
    this.migCount[i] = undefined;
  }

  /** How many shape classes the untouched nodes of bucket k fall into. */
  untouchedClasses(k: number): number {
    return this.classes[k]!.size;
  }

  /** The shape classes were numbered anew: file every untouched node under its new class. */
  refileClasses(untouched: readonly number[]): void {
    for (const m of this.classes) m.clear();
    this.filedClass.length = 0;
    for (const i of untouched) this.fileClass(i, this.bucket[i] ?? 0, this.shapeOf(i));
  }

  private fileClass(i: number, k: number, shape: number): void {
    const m = this.classes[k]!;
    m.set(shape, (m.get(shape) ?? 0) + 1);
    this.filedClass[i] = [k, shape];
  }

  private unfileClass(i: number): void {
    const was = this.filedClass[i];
    if (was === undefined) return;
    const m = this.classes[was[0]]!;
    const n = (m.get(was[1]) ?? 0) - 1;
    if (n > 0) m.set(was[1], n);
    else m.delete(was[1]);
    this.filedClass[i] = undefined;
  }

  /** Adds (1) or takes away (-1) node i's (island, bucket) pairs as filed now. */
  private countPairs(i: number, sign: 1 | -1): void {
    const k = this.bucket[i] ?? -1;
    const counts = this.islandCounts[i] ?? 0;
    if (k < 0 || counts === 0) return;
    for (let j = 1; j <= k; j++) if (((counts >>> (j - 1)) & 1) === 1) this.pairs[j * (MAX_GPUS_PER_NODE + 1) + k]! += sign;
  }

  private fileIsland(i: number, largest: number, counts: number): void {
    const old = this.island[i] ?? 0;
    for (let t = old + 1; t <= largest; t++) this.islandAtLeast[t]!.add(i);
    for (let t = largest + 1; t <= old; t++) this.islandAtLeast[t]!.delete(i);
    this.island[i] = largest;
    const was = this.islandCounts[i] ?? 0;
    if (was === counts) return;
    for (let j = 1; j <= MAX_GPUS_PER_NODE; j++) {
      const before = ((was >>> (j - 1)) & 1) === 1;
      const now = ((counts >>> (j - 1)) & 1) === 1;
      if (now && !before) this.islandWith[j]!.add(i);
      else if (before && !now) this.islandWith[j]!.delete(i);
    }
    this.islandCounts[i] = counts;
  }

  /** The most free whole GPUs on any filed node (0 with none). */
  mostFree(): number {
    let k = MAX_GPUS_PER_NODE;
    while (k > 0 && this.bucketCount[k] === 0) k--;
    return k;
  }

  /** The bucket `i` is filed in: its free whole GPUs (-1: not filed). */
  bucketOf(i: number): number {
    return this.bucket[i] ?? -1;
  }

  /** The most free GPUs inside one NVLink island of node `i` (0: none or not filed). */
  largestIsland(i: number): number {
    return this.island[i] ?? 0;
  }
}

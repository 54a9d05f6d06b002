/**
 * The scheduler's index of nodes for bundles without GPUs (CPU, memory or
 * custom resources only), kept beside the GPU buckets of node-index.ts.
 *
 * Best fit scores such a bundle on a node by two things only
 * (plugins/resources.ts): the node's free whole GPUs k (fewer is better, 3
 * points each), then the share of its CPU left after the bundle,
 * (freeCpu − want) / capacity (less is better, up to 9 points). The GPU
 * buckets order the first; this index orders the second. Nodes are filed by
 *
 *   capacity class   the node's CPU capacity (clusters have a few node types)
 *   k                free whole GPUs (0..32)
 *   step q           floor(freeCpu / capacity × SHARE_STEPS), 0..SHARE_STEPS − 1,
 *                    and SHARE_STEPS for a node with all its CPU free
 *
 * Each set also keeps the least free CPU of its nodes, so the least share
 * any of them has left after a bundle, (least − want) / capacity, is known
 * before one is visited: the most a node of (class, k, q) can score (scan.ts
 * `ceiling`), computed with the scorer's own expression, so the node with
 * the least free CPU scores exactly it and ends the walk of its set (nodes
 * of one type running the same work sit in one set with equal free CPU; a
 * bound from the step alone left all of them to visit). The least is
 * found again, from the set, when its node leaves. The pass
 * walks the steps upwards, each in node order, until no node left can beat
 * the best found. Steps below floor(want / capacity × SHARE_STEPS) hold only
 * nodes with less free CPU than the bundle wants (the step is monotone in
 * free CPU), so they are never walked: with no winner, their nodes are
 * counted under insufficient CPU in one sum, as a pass over every node would
 * count them (or under STRICT_SPREAD's refusal, checked for the gang's own nodes).
 *
 * Why classes by capacity: steps are shares of one capacity, so that step
 * order is score order within a class. Classes are kept while some node has
 * that capacity (so their number is bounded by the node count, in practice
 * by the node types); a class's sets are allocated on first use. Filing a
 * node again costs O(1); a set whose least node left finds its least again
 * when next asked, in one pass over the set.
 */
import { MAX_GPUS_PER_NODE } from './bits.js';
import { NodeSet } from './node-set.js';

/** Steps of free-CPU share below "all free": more steps, fewer nodes visited per pass, more sets kept. */
export const SHARE_STEPS = 64;
/** Steps per (class, k): the share steps and the step of nodes with all their CPU free. */
export const CPU_STEPS = SHARE_STEPS + 1;
const SLOTS = (MAX_GPUS_PER_NODE + 1) * CPU_STEPS;

/** The nodes of one CPU capacity, by (free GPUs, step of free CPU share). */
export interface CpuClass {
  /** CPU capacity of every node of the class, millicores. */
  readonly capacity: number;
  /** sets[k · CPU_STEPS + q]: the nodes with k free GPUs at step q (undefined until first used). */
  readonly sets: Array<NodeSet | undefined>;
  /** How many nodes each set holds: a pass skips the empty ones without touching them. */
  readonly counts: Int32Array;
  /** The least free CPU of a node in each set (valid where not stale): what bounds the set's scores. */
  readonly least: Float64Array;
  /** 1 where the node with the least free CPU left its set: recomputed when next asked. */
  readonly stale: Uint8Array;
  /** Nodes filed in the class; the class is dropped at 0. */
  nodes: number;
}

/** The step a node with `freeCpu` of `capacity` is filed at. */
export function cpuStep(freeCpu: number, capacity: number): number {
  if (capacity <= 0) return 0;
  if (freeCpu >= capacity) return SHARE_STEPS;
  return Math.min(SHARE_STEPS - 1, Math.max(0, Math.floor((freeCpu * SHARE_STEPS) / capacity)));
}

/**
 * The first step that may hold a node with `want` free CPU (steps below hold
 * none); CPU_STEPS when the class's capacity is below `want` (a node's free
 * CPU never exceeds its capacity: reserve and release move it in pairs).
 */
export function firstCpuStep(want: number, capacity: number): number {
  if (want > capacity) return CPU_STEPS;
  return capacity <= 0 ? 0 : cpuStep(want, capacity);
}

export class CpuIndex {
  /** Classes by CPU capacity. */
  readonly classes = new Map<number, CpuClass>();
  /** Each node's filed class capacity, slot (-1: not filed) and free CPU, by index. */
  private readonly filedCapacity: number[] = [];
  private readonly filedSlot: number[] = [];
  private readonly filedFree: number[] = [];

  constructor(private readonly capacity: number) {}

  /** Files node `i` (k free GPUs, `freeCpu` of `cpuCapacity`) where it belongs now. */
  file(i: number, k: number, freeCpu: number, cpuCapacity: number): void {
    const slot = k * CPU_STEPS + cpuStep(freeCpu, cpuCapacity);
    const was = this.filedSlot[i] ?? -1;
    if (was >= 0 && this.filedCapacity[i] === cpuCapacity) {
      // Same class (every reserve and release): move between its sets.
      if (was === slot && this.filedFree[i] === freeCpu) return;
      const cls = this.classes.get(cpuCapacity)!;
      this.take(cls, i, was);
      this.put(cls, i, slot, freeCpu);
      return;
    }
    this.unfile(i);
    let cls = this.classes.get(cpuCapacity);
    if (cls === undefined) {
      cls = { capacity: cpuCapacity, sets: new Array<NodeSet | undefined>(SLOTS), counts: new Int32Array(SLOTS), least: new Float64Array(SLOTS), stale: new Uint8Array(SLOTS), nodes: 0 };
      this.classes.set(cpuCapacity, cls);
    }
    cls.nodes++;
    this.filedCapacity[i] = cpuCapacity;
    this.put(cls, i, slot, freeCpu);
  }

  /**
   * The least share of CPU any node of `cls` at `slot` has left after a
   * bundle wanting `want` (0 if some node there has less than `want`: those
   * cannot take it, and the others have at least 0 left). Computed with the
   * scorer's own expression from the slot's least free CPU, so a node with
   * that much free scores exactly the bound and ends the walk of its slot.
   */
  leastCpuLeft(cls: CpuClass, slot: number, want: number): number {
    if (cls.capacity <= 0) return 0;
    if (cls.stale[slot] === 1) {
      let least = Infinity;
      for (const i of cls.sets[slot]!) least = Math.min(least, this.filedFree[i]!);
      cls.least[slot] = least;
      cls.stale[slot] = 0;
    }
    return Math.max(0, (cls.least[slot]! - want) / cls.capacity);
  }

  private put(cls: CpuClass, i: number, slot: number, freeCpu: number): void {
    (cls.sets[slot] ??= new NodeSet(this.capacity)).add(i);
    if ((cls.counts[slot]! += 1) === 1) {
      cls.least[slot] = freeCpu;
      cls.stale[slot] = 0;
    } else if (freeCpu < cls.least[slot]!) cls.least[slot] = freeCpu;
    this.filedSlot[i] = slot;
    this.filedFree[i] = freeCpu;
  }

  private take(cls: CpuClass, i: number, slot: number): void {
    cls.sets[slot]!.delete(i);
    cls.counts[slot]! -= 1;
    // The slot's least may have left with it: found again when next asked.
    if (this.filedFree[i] === cls.least[slot]) cls.stale[slot] = 1;
  }

  /** Takes node `i` out of the index. */
  unfile(i: number): void {
    const slot = this.filedSlot[i] ?? -1;
    if (slot < 0) return;
    const cls = this.classes.get(this.filedCapacity[i]!)!;
    this.take(cls, i, slot);
    if (--cls.nodes === 0) this.classes.delete(cls.capacity);
    this.filedSlot[i] = -1;
  }
}

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
 * Within one class the share left of every node at step q is at least
 * q / SHARE_STEPS − want / capacity, and exactly 1 − want / capacity at the
 * last step (idle nodes: their bound is their score, so the first one judged
 * ends the walk of its step), so the most a node of (class, k, q) can
 * score is known before it is visited (scan.ts `ceiling`), and the pass
 * walks the steps upwards, each in node order, until no node left can beat
 * the best found. Steps below floor(want / capacity × SHARE_STEPS) hold only
 * nodes with less free CPU than the bundle wants (the step is monotone in
 * free CPU), so they are never walked: with no winner, their nodes are
 * counted under insufficient CPU in one sum, as a pass over every node would
 * count them (or under STRICT_SPREAD's refusal, checked for the gang's own nodes).
 *
 * Why classes by capacity and not one share for all: the bound subtracts
 * want / capacity, and with one bound for all classes (the smallest
 * capacity) a 16-core bundle would make a quarter of the steps look equally
 * good. Classes are kept while some node has that capacity (so their number
 * is bounded by the node count, in practice by the node types); a class's
 * sets are allocated on first use. Filing a node again costs O(1).
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

/**
 * The least share of CPU a node of `capacity` at step `q` has left after a
 * bundle wanting `want`, lowered by a hair so that rounding never puts a
 * node's computed score above its bound.
 */
export function leastCpuLeft(q: number, want: number, capacity: number): number {
  if (capacity <= 0) return 0;
  // All free: the scorer's own expression, (freeCpu − want) / capacity, so the bound is the score.
  if (q === SHARE_STEPS) return (capacity - want) / capacity;
  return Math.max(0, q / SHARE_STEPS - want / capacity - 1e-9);
}

export class CpuIndex {
  /** Classes by CPU capacity. */
  readonly classes = new Map<number, CpuClass>();
  /** Each node's filed class capacity and slot, by index (slot -1: not filed). */
  private readonly filedCapacity: number[] = [];
  private readonly filedSlot: number[] = [];

  constructor(private readonly capacity: number) {}

  /** Files node `i` (k free GPUs, `freeCpu` of `cpuCapacity`) where it belongs now. */
  file(i: number, k: number, freeCpu: number, cpuCapacity: number): void {
    const slot = k * CPU_STEPS + cpuStep(freeCpu, cpuCapacity);
    const was = this.filedSlot[i] ?? -1;
    if (was >= 0 && this.filedCapacity[i] === cpuCapacity) {
      // Same class (every reserve and release): move between its sets.
      if (was === slot) return;
      const cls = this.classes.get(cpuCapacity)!;
      cls.sets[was]!.delete(i);
      cls.counts[was]! -= 1;
      this.put(cls, i, slot);
      return;
    }
    this.unfile(i);
    let cls = this.classes.get(cpuCapacity);
    if (cls === undefined) {
      cls = { capacity: cpuCapacity, sets: new Array<NodeSet | undefined>(SLOTS), counts: new Int32Array(SLOTS), nodes: 0 };
      this.classes.set(cpuCapacity, cls);
    }
    cls.nodes++;
    this.filedCapacity[i] = cpuCapacity;
    this.put(cls, i, slot);
  }

  private put(cls: CpuClass, i: number, slot: number): void {
    (cls.sets[slot] ??= new NodeSet(this.capacity)).add(i);
    cls.counts[slot]! += 1;
    this.filedSlot[i] = slot;
  }

  /** Takes node `i` out of the index. */
  unfile(i: number): void {
    const slot = this.filedSlot[i] ?? -1;
    if (slot < 0) return;
    const cls = this.classes.get(this.filedCapacity[i]!)!;
    cls.sets[slot]!.delete(i);
    cls.counts[slot]! -= 1;
    if (--cls.nodes === 0) this.classes.delete(cls.capacity);
    this.filedSlot[i] = -1;
  }
}

/**
 * Choosing which GPUs of one node a bundle gets.
 *
 * The candidate sets come from two cheap generators, never from enumerating
 * all C(n,k) subsets:
 *
 * 1. Buddy descent through the node's block hierarchy (see topology.ts):
 *    from a block, go into the child that alone can hold the bundle with the
 *    fewest free GPUs (best fit); when neither child can, take one child whole
 *    and the rest from the other, trying both ways. Run from every NVLink
 *    island that can hold the bundle, and from the node root when none can.
 * 2. Greedy growth from every free GPU: add the GPU whose weakest link to the
 *    set so far is strongest (sum of links breaks ties).
 *
 * Each candidate is ranked, best first, by:
 *   islands spanned (1 is the point of NVLink) → weakest pair link in the set
 *   (a ring all-reduce runs at its slowest link) → fragmentation (total size
 *   of intact blocks the choice breaks: taking {0,4} from an idle DGX-1 breaks
 *   both fully linked quads, {0,3} breaks one) → sum of pair links → lowest
 *   GPU indices.
 *
 * Cost: O(n·k·n) for the greedy seeds plus O(n) descents, each candidate
 * scored in O(k² + n): a few thousand operations on a 16-GPU node.
 */
import { indicesOf, popcount } from './bits.js';
import type { NodeHeadroom } from './state.js';
import type { HierarchyNode, Topology } from './topology.js';

/** Picks `k` GPUs from `free` (a mask); null when impossible (or no single island can when `requireIsland`). */
export function selectGpus(topo: Topology, free: number, k: number, requireIsland: boolean): number | null {
  if (k <= 0) return 0;
  if (popcount(free) < k) return null;
  const fitting = topo.islandTrees.filter((t) => popcount(free & t.mask) >= k);
  if (requireIsland && fitting.length === 0) return null;

  const candidates: number[] = [];
  for (const t of fitting) candidates.push(descend(t, free, k, topo));
  if (fitting.length === 0) candidates.push(descend(topo.root, free, k, topo));
  // Greedy seeds only inside regions that can hold the whole bundle.
  const regions = fitting.length > 0 ? fitting.map((t) => (t.mask & free) >>> 0) : [free];
  for (const region of regions) for (const seed of indicesOf(region)) candidates.push(grow(seed, region, k, topo));

  let best = candidates[0]!;
  for (let i = 1; i < candidates.length; i++) if (better(candidates[i]!, best, free, topo)) best = candidates[i]!;
  return best;
}

function descend(t: HierarchyNode, free: number, need: number, topo: Topology): number {
  const here = (free & t.mask) >>> 0;
  if (popcount(here) <= need || t.children.length < 2) return here;
  const [l, r] = t.children as [HierarchyNode, HierarchyNode];
  const fl = popcount(free & l.mask);
  const fr = popcount(free & r.mask);
  if (fl >= need && (fr < need || fl <= fr)) return descend(l, free, need, topo);
  if (fr >= need) return descend(r, free, need, topo);
  const a = ((free & l.mask) | descend(r, free, need - fl, topo)) >>> 0;
  const b = ((free & r.mask) | descend(l, free, need - fr, topo)) >>> 0;
  return better(b, a, free, topo) ? b : a;
}

function grow(seed: number, region: number, k: number, topo: Topology): number {
  const { n, score } = topo;
  let set = (1 << seed) >>> 0;
  // minTo[g], sumTo[g]: weakest and total link from g to the set so far.
  const minTo = new Float64Array(n).fill(Infinity);
  const sumTo = new Float64Array(n);
  let last = seed;
  for (let size = 1; size < k; size++) {
    let pick = -1;
    for (const g of indicesOf((region & ~set) >>> 0)) {
      const s = score[g * n + last] ?? 0;
      if (s < minTo[g]!) minTo[g] = s;
      sumTo[g] = sumTo[g]! + s;
      if (pick === -1 || minTo[g]! > minTo[pick]! || (minTo[g] === minTo[pick] && sumTo[g]! > sumTo[pick]!)) pick = g;
    }
    if (pick === -1) break;
    set = (set | (1 << pick)) >>> 0;
    last = pick;
  }
  return set;
}

interface Rank {
  spanned: number;
  minPair: number;
  frag: number;
  sumPair: number;
}

export function rankSet(set: number, free: number, topo: Topology): Rank {
  let spanned = 0;
  for (const isl of topo.islands) if ((isl & set) !== 0) spanned++;
  const idx = indicesOf(set);
  let minPair = Infinity;
  let sumPair = 0;
  for (let a = 0; a < idx.length; a++) {
    for (let b = a + 1; b < idx.length; b++) {
      const s = topo.score[idx[a]! * topo.n + idx[b]!] ?? 0;
      if (s < minPair) minPair = s;
      sumPair += s;
    }
  }
  let frag = 0;
  const blocks = topo.blocks;
  for (let i = 0; i < blocks.length; i++) {
    const b = blocks[i]!;
    // A block that was wholly free and is now partly taken has been broken.
    if ((b & ~free) === 0 && (b & set) !== 0 && (b & ~set) !== 0) frag += topo.blockSizes[i]!;
  }
  return { spanned, minPair, frag, sumPair };
}

function better(a: number, b: number, free: number, topo: Topology): boolean {
  if (a === b) return false;
  const ra = rankSet(a, free, topo);
  const rb = rankSet(b, free, topo);
  if (ra.spanned !== rb.spanned) return ra.spanned < rb.spanned;
  if (ra.minPair !== rb.minPair) return ra.minPair > rb.minPair;
  if (ra.frag !== rb.frag) return ra.frag < rb.frag;
  if (ra.sumPair !== rb.sumPair) return ra.sumPair > rb.sumPair;
  const diff = (a ^ b) >>> 0;
  return (a & diff & -diff) !== 0; // the set holding the lowest differing GPU wins
}

/**
 * Picks `count` free MIG slices of `profile`. Slices come from the busiest
 * GPUs first (fewest free slices of any profile), so idle MIG GPUs stay idle
 * for bundles that need several slices, or for re-partitioning.
 */
export function selectMig(ns: NodeHeadroom, profile: string, count: number): string[] | null {
  if (count <= 0) return [];
  if ((ns.migFree.get(profile) ?? 0) < count) return null;
  const freePerGpu = new Map<number, number>();
  for (const s of ns.mig) if (s.free) freePerGpu.set(s.gpu, (freePerGpu.get(s.gpu) ?? 0) + 1);
  const slots = ns.mig.filter((s) => s.free && s.profile === profile);
  slots.sort((x, y) => (freePerGpu.get(x.gpu) ?? 0) - (freePerGpu.get(y.gpu) ?? 0) || x.gpu - y.gpu);
  return slots.slice(0, count).map((s) => s.uuid);
}

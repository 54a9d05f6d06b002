/**
 * A node's GPU interconnect, digested once per distinct topology.
 *
 * Nodes of one model share one `Topology` object (cached by the link matrix,
 * islands and NUMA layout), so a 1,000-node cluster of five models builds five.
 *
 * - `score[i*n+j]` ranks the link between two GPUs: every NVLink bond beats
 *   every PCIe path, more bonded links beat fewer (NV18 > NV12 > NV2 > NV1),
 *   then PIX > PXB > PHB > NODE > SYS. GPUs on the same NUMA node get a small
 *   bonus, so on a machine whose matrix says only "SYS" (some PCIe boxes) the
 *   two sockets still show.
 * - `islands` are NVLink islands (connected components of the NVLink graph),
 *   as the node reported them, else derived by @muster/contracts' `nvlinkIslands`
 *   (the one derivation the worker uses too).
 * - `blocks` is a binary hierarchy of nested GPU groups, built by merging the
 *   two groups with the strongest average link first (average-linkage
 *   clustering), islands first, then islands together. On a DGX-1 it yields
 *   pairs {0,3},{1,2} inside the fully NVLinked quads {0..3},{4..7}; on a
 *   two-socket PCIe box, the sockets. The GPU selector uses it like a buddy
 *   allocator: taking GPUs out of an intact block "breaks" it, and breaking
 *   big intact blocks is what fragments a node.
 */
import { nvlinkIslands } from '@muster/contracts';
import { bit, indicesOf, maskOf, popcount } from './bits.js';
import type { SchedulerNode } from './types.js';

export const LinkScore = { NVLINK_BASE: 1000, PER_NVLINK: 10, PIX: 500, PXB: 400, PHB: 300, NODE: 200, SYS: 100, SAME_NUMA: 5 } as const;

/** Rank of one `nvidia-smi topo -m` cell; unknown cells rank below SYS. */
export function linkScore(cell: string): number {
  const c = cell.trim().toUpperCase();
  if (c.startsWith('NV')) {
    const n = Number.parseInt(c.slice(2), 10);
    return LinkScore.NVLINK_BASE + LinkScore.PER_NVLINK * (Number.isFinite(n) && n > 0 ? n : 1);
  }
  switch (c) {
    case 'PIX': return LinkScore.PIX;
    case 'PXB': return LinkScore.PXB;
    case 'PHB': return LinkScore.PHB;
    case 'NODE': return LinkScore.NODE;
    case 'SYS': return LinkScore.SYS;
    default: return 0;
  }
}

export interface HierarchyNode {
  mask: number;
  /** Two children, or none for a single GPU. */
  children: HierarchyNode[];
}

export interface Topology {
  readonly n: number;
  /** Pair score, row-major n×n (diagonal 0). */
  readonly score: Float64Array;
  /** NVLink islands as masks, sorted by lowest GPU. */
  readonly islands: number[];
  readonly islandTrees: HierarchyNode[];
  readonly root: HierarchyNode;
  /** Masks of all hierarchy blocks with two or more GPUs (islands and the root included). */
  readonly blocks: number[];
  readonly blockSizes: number[];
  readonly maxIsland: number;
}

const cache = new Map<string, Topology>();

/** The node's topology, shared with every node of the same shape. */
export function topologyOf(node: SchedulerNode): Topology {
  const n = node.gpus.length;
  const numa = node.gpus.map((g) => g.numaNode ?? -1);
  const key = `${n}|${node.links.map((r) => r.join(',')).join(';')}|${node.islands.map((i) => i.join(',')).join(';')}|${numa.join(',')}`;
  let t = cache.get(key);
  if (t === undefined) {
    t = buildTopology(n, node.links, node.islands, numa);
    if (cache.size > 4096) cache.clear(); // bound memory if shapes churn (random test clusters)
    cache.set(key, t);
  }
  return t;
}

export function buildTopology(n: number, links: string[][], islandsIn: number[][], numa: number[]): Topology {
  const score = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      // Read both halves: published matrices are symmetric, hand-written ones may not be.
      const s = Math.min(linkScore(links[i]?.[j] ?? ''), linkScore(links[j]?.[i] ?? ''));
      const sameNuma = numa[i] !== -1 && numa[i] === numa[j];
      score[i * n + j] = s + (sameNuma ? LinkScore.SAME_NUMA : 0);
    }
  }
  const islands = normaliseIslands(n, islandsIn, links);
  const blocks: number[] = [];
  const islandTrees = islands.map((m) => agglomerate(indicesOf(m).map(leaf), score, n, blocks));
  const root = agglomerate(islandTrees, score, n, blocks);
  return {
    n,
    score,
    islands,
    islandTrees,
    root,
    blocks,
    blockSizes: blocks.map(popcount),
    maxIsland: islands.reduce((m, x) => Math.max(m, popcount(x)), 0),
  };
}

/** NVLink islands of an N×N link matrix, as lists of GPU indices (what a worker reports). */
export function deriveIslands(links: string[][]): number[][] {
  return nvlinkIslands(links);
}

function leaf(i: number): HierarchyNode {
  return { mask: bit(i), children: [] };
}

/** Islands from the snapshot when they cover each GPU once; else NVLink components. */
function normaliseIslands(n: number, given: number[][], links: string[][]): number[] {
  const all = n === 0 ? 0 : (n === 32 ? 0xffffffff : bit(n) - 1) >>> 0;
  let seen = 0;
  let valid = given.length > 0;
  for (const isl of given) {
    if (!isl.every((i) => Number.isInteger(i) && i >= 0 && i < n)) valid = false;
    const m = valid ? maskOf(isl) : 0;
    if (m === 0 || (m & seen) !== 0) valid = false;
    seen = (seen | m) >>> 0;
  }
  const islands = valid && seen === all ? given : nvlinkIslands(Array.from({ length: n }, (_, i) => links[i] ?? []));
  return islands.map((isl) => maskOf(isl)).sort((a, b) => lowest(a) - lowest(b));
}

function lowest(m: number): number {
  return 31 - Math.clz32(m & -m);
}

/**
 * Average-linkage merging: join the two units with the strongest mean link;
 * ties go to the smaller union (keeps the tree balanced), then to lower GPUs.
 * O(u³·k²) for u units — run once per topology, u ≤ 32.
 */
function agglomerate(units: HierarchyNode[], score: Float64Array, n: number, blocks: number[]): HierarchyNode {
  const live = [...units];
  if (live.length === 0) return { mask: 0, children: [] };
  while (live.length > 1) {
    let bestA = 0;
    let bestB = 1;
    let bestAvg = -1;
    let bestSize = Infinity;
    for (let a = 0; a < live.length; a++) {
      for (let b = a + 1; b < live.length; b++) {
        const ua = live[a]!;
        const ub = live[b]!;
        const avg = meanLink(ua.mask, ub.mask, score, n);
        const size = popcount(ua.mask) + popcount(ub.mask);
        if (avg > bestAvg || (avg === bestAvg && size < bestSize)) {
          bestA = a;
          bestB = b;
          bestAvg = avg;
          bestSize = size;
        }
      }
    }
    const merged: HierarchyNode = { mask: (live[bestA]!.mask | live[bestB]!.mask) >>> 0, children: [live[bestA]!, live[bestB]!] };
    blocks.push(merged.mask);
    live.splice(bestB, 1);
    live[bestA] = merged;
  }
  return live[0]!;
}

function meanLink(a: number, b: number, score: Float64Array, n: number): number {
  let sum = 0;
  let cnt = 0;
  for (const i of indicesOf(a)) {
    for (const j of indicesOf(b)) {
      sum += score[i * n + j] ?? 0;
      cnt++;
    }
  }
  return cnt === 0 ? 0 : sum / cnt;
}

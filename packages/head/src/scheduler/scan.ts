/**
 * One bundle's pass over an attempt's nodes: filter, score, keep the best.
 *
 * The answer is the one a pass over every node in index order would give —
 * the highest score, ties to the lower node index — and so are the rejection
 * counts when no node takes the bundle. scan.test.ts checks exactly that
 * against such a pass, written out in the test, on random clusters (islands
 * of up to 32 GPUs, GPU-memory needs, MIG over 64 slices, gang nodes, taints,
 * every strategy). What the index (node-index.ts) saves is the visits:
 *
 *   1. nodes already holding a bundle of this gang are judged first: PACK
 *      draws the gang to them, so they set the bar the others must beat;
 *   2. then the buckets of nodes with k free whole GPUs, k from what the
 *      bundle needs upwards (a MIG bundle: the nodes with a free slice of its
 *      profile; a bundle without GPUs: per k, the nodes of each CPU capacity
 *      by step of free CPU share, cpu-index.ts), each in index order.
 *      Before a node is judged, the best score any node of its bucket could
 *      reach (`ceiling`) is compared with the best found: when it cannot win,
 *      not even a tie from a lower index, the pass moves on, and it stops when
 *      no later bucket can (`ceilingFrom`: for PACK a later bucket may hold
 *      all the gang still needs and score more, so the bound looks ahead to
 *      it, when some node has that many GPUs free). Nodes with no island holding a
 *      whole-GPU bundle are walked last, all of them, and only when no node
 *      kept the bundle inside one island;
 *   3. an untouched node is judged like the first untouched node of its shape
 *      class (state.ts shapeOf): it would score the same and lose the tie;
 *   4. a node never visited failed the resources filter by construction (too
 *      few free GPUs, no free slice of the profile): with no winner, those
 *      are counted in one sum, as a pass over every node would count them.
 *
 * Score tiers, most important first. Scores are integers 0..100 (the last
 * tier may be fractional), so weights of 101^k make the sum lexicographic:
 * no amount of best fit outweighs keeping a TP bundle inside one island.
 */
import { MAX_GPUS_PER_NODE } from './bits.js';
import { CPU_STEPS, cpuStep, firstCpuStep } from './cpu-index.js';
import { MIG_COUNTS } from './node-index.js';
import { NodeSet, eachBoth } from './node-set.js';
import { ReasonCode, reject, type Rejection, type RejectionCounter } from './reasons.js';
import type { ClusterState, NodeHeadroom } from './state.js';
import { bundleFilters, gpuIslandPlugin, resourcesPlugin, strategyPlugin, taintsPlugin, topologyPlugin, type BundleContext, type GangContext } from './plugins/index.js';

export const SCORERS = [
  { plugin: gpuIslandPlugin, weight: 101 ** 4 }, // TP inside one NVLink island beats everything
  { plugin: taintsPlugin, weight: 101 ** 3 }, // stay off PreferNoSchedule (spot) nodes while others fit
  { plugin: strategyPlugin, weight: 101 ** 2 }, // PACK together / SPREAD apart
  { plugin: topologyPlugin, weight: 101 }, // near earlier bundles on preferred levels
  { plugin: resourcesPlugin, weight: 1 }, // best fit: leave whole islands and nodes free
] as const;

/** What a node keeping a TP bundle inside one island scores in the top tier alone: more than all lower tiers together. */
const ISLAND_TIER = SCORERS[0].weight * 100;
const NO_GPU = reject(ReasonCode.GPU, 'gpu');
const NO_CPU = reject(ReasonCode.CPU, 'cpu');
const NODE_USED = reject(ReasonCode.SPREAD_NODE_USED);

/** The nodes of one attempt, as a list and as a set. */
export interface AttemptNodes {
  readonly nodes: readonly NodeHeadroom[];
  readonly set: NodeSet;
}

/** The best node for `b` among `attempt`, or undefined; with none, `rejections` counts every node once. */
export function pickNode(state: ClusterState, attempt: AttemptNodes, b: BundleContext, ctx: GangContext, rejections: RejectionCounter): NodeHeadroom | undefined {
  b.resetMemo();
  let best: NodeHeadroom | undefined;
  let bestScore = -Infinity;
  const judge = (ns: NodeHeadroom): Rejection | undefined => {
    for (const f of bundleFilters) {
      const r = f.filterBundle(ns, b, ctx);
      if (!r.ok) return r;
    }
    let score = 0;
    for (const s of SCORERS) score += s.weight * s.plugin.score(ns, b, ctx);
    if (score > bestScore || (score === bestScore && ns.idx < best!.idx)) {
      bestScore = score;
      best = ns;
    }
    return undefined;
  };

  // 1. The gang's own nodes set the bar (their visit in 2 counts them).
  for (const idx of ctx.bundlesOnNode.keys()) if (attempt.set.has(idx)) judge(state.nodes[idx]!);

  // 2 and 3. The buckets that can hold the bundle, fewest free GPUs first.
  const index = state.index;
  const mig = b.migSlices > 0 ? (index.migWith.get(b.bundle.migProfile!) ?? null) : undefined;
  const judged = new Map<number, Rejection | undefined>();
  // PACK's 50 needs a node with all the gang's remaining GPUs free: with no
  // such node anywhere, no bucket looks ahead to one (multi-bundle gangs
  // larger than any node then stop like one-bundle gangs).
  const most = index.mostFree();
  let visited = 0;
  const visit = (top: number) => (i: number): boolean => {
    if (best !== undefined && bestScore >= top && best.idx < i) return false;
    visited++;
    const ns = state.nodes[i]!;
    const shape = index.untouched.has(i) ? state.shapeOf(ns) : -1;
    if (shape >= 0 && judged.has(shape)) {
      const like = judged.get(shape);
      if (like !== undefined) rejections.add(like);
      return true;
    }
    const r = judge(ns);
    if (r !== undefined) rejections.add(r);
    if (shape >= 0) judged.set(shape, r);
    return true;
  };
  if (mig !== undefined) {
    // Fewest free slices first (best fit), each count in node order.
    for (let n = Math.min(b.migSlices, MIG_COUNTS); mig !== null && n <= MIG_COUNTS; n++) {
      const top = tiers(ctx.strategy === 'PACK' ? 50 : ctx.strategy === 'SPREAD' ? 100 : 0, ctx, 100 - Math.min(99, n - b.migSlices));
      if (best !== undefined && bestScore > top) break;
      eachBoth(mig[n]!, attempt.set, visit(top));
    }
  } else if (b.gpus === 0) {
    // No GPUs (CPU, memory or custom resources only): best fit wants the
    // fewest free GPUs, then the least share of CPU left (cpu-index.ts). By
    // k, then per capacity class by step of free CPU share from the first
    // that may hold the bundle: the ceiling falls along the steps, and no
    // later k can beat the best once ceilingFrom says so. Touched nodes
    // first, then the untouched ones until each of their shape classes has
    // been judged once (with a winner, the rest can only lose the tie; with
    // none, all are walked so that each is counted).
    const want = b.bundle.cpuMillis;
    for (let k = 0; k <= MAX_GPUS_PER_NODE; k++) {
      if (best !== undefined && bestScore > ceilingFrom(k, b, ctx, most)) break;
      const classes = index.untouchedClasses(k);
      const before = judged.size;
      for (const cls of index.cpu.classes.values()) {
        for (let q = firstCpuStep(want, cls.capacity); q < CPU_STEPS; q++) {
          const slot = k * CPU_STEPS + q;
          if (cls.counts[slot] === 0) continue;
          const top = ceiling(k, b, ctx, index.cpu.leastCpuLeft(cls, slot, want));
          if (best !== undefined && bestScore > top) break;
          const v = visit(top);
          eachBoth(cls.sets[slot]!, attempt.set, v, { not: index.untouched });
          if (classes > 0) eachBoth(cls.sets[slot]!, attempt.set, (i) => (best !== undefined && judged.size - before >= classes ? false : v(i)), { and: index.untouched });
        }
      }
    }
    // The steps below the first hold nodes with too little free CPU: never
    // visited; with no winner, 4 counts them in one sum.
  } else {
    // Whole GPUs. Best fit looks first at the fullest island that holds the
    // bundle (j free GPUs, j ≥ g), then at the node: so the nodes are walked
    // by j, each once, at its smallest such j. Nodes where no island holds
    // the bundle score below all of those in the top tier (a TP bundle) or
    // are none (g = 1): they are walked by free GPUs only if nothing above took it.
    const done = new NodeSet(state.nodes.length);
    const once = (top: number) => {
      const v = visit(top);
      return (i: number) => {
        if (done.has(i)) return true;
        done.add(i);
        return v(i);
      };
    };
    // By (j, k): the ceiling falls along j, then along k (33 > any k − g).
    scan: for (let j = b.gpus; j <= MAX_GPUS_PER_NODE; j++) {
      for (let k = j; k <= MAX_GPUS_PER_NODE; k++) {
        if (index.pairs[j * (MAX_GPUS_PER_NODE + 1) + k] === 0) continue;
        const top = islandCeiling(j, k, b, ctx, most);
        if (best !== undefined && bestScore > top) break scan;
        eachBoth(index.islandWith[j]!, attempt.set, once(top), { and: index.byFree[k] });
      }
    }
    // The rest, when no node kept the bundle inside one island: every node
    // with enough free GPUs but no island holding it, all walked. (A bound
    // per bucket would not prune: `ceiling` counts the island tier as won,
    // so it is above any score found here.)
    if (best === undefined || bestScore < ISLAND_TIER) {
      const inIsland = index.islandAtLeast[b.gpus]!;
      const all = visit(Infinity);
      for (let k = b.gpus; k <= MAX_GPUS_PER_NODE; k++) eachBoth(index.byFree[k]!, attempt.set, all, { not: inIsland });
    }
  }
  const kind = state.passes[mig !== undefined ? 'mig' : b.gpus > 0 ? 'gpu' : 'other'];
  kind.passes++;
  kind.visits += visited;
  if (best !== undefined) return best;

  // 4. No winner: every node of the attempt is counted once. Those never
  //    visited lack free GPUs (or slices, or for a bundle without GPUs CPU),
  //    unless STRICT_SPREAD refused them first.
  const skipped = attempt.nodes.length - visited;
  if (skipped > 0) {
    let used = 0;
    if (ctx.strategy === 'STRICT_SPREAD') {
      for (const idx of ctx.bundlesOnNode.keys()) {
        // Visited: filed at a count the MIG walk reached (counts of MIG_COUNTS and more share one set), or in a bucket k ≥ g.
        const seen =
          mig !== undefined
            ? Math.min(state.nodes[idx]!.migFree.get(b.bundle.migProfile!) ?? 0, MIG_COUNTS) >= Math.min(b.migSlices, MIG_COUNTS)
            : b.gpus > 0
              ? index.bucketOf(idx) >= b.gpus
              : cpuStep(state.nodes[idx]!.freeCpu, state.nodes[idx]!.node.capacity.cpuMillis) >= firstCpuStep(b.bundle.cpuMillis, state.nodes[idx]!.node.capacity.cpuMillis);
        if (attempt.set.has(idx) && !seen) used++;
      }
    }
    if (used > 0) rejections.add(NODE_USED, used);
    if (skipped > used) rejections.add(mig !== undefined ? reject(ReasonCode.MIG, b.bundle.migProfile!) : b.gpus > 0 ? NO_GPU : NO_CPU, skipped - used);
  }
  return undefined;
}

/**
 * The most a node with k free whole GPUs that the gang does not use yet can
 * score for `b`, summed in the pipeline's order (so a node that reaches it
 * scores exactly it). Best fit makes it fall as k grows; PACK's "takes all
 * the gang still needs" (50) needs at least that many free GPUs. For a
 * bundle without GPUs, `cpuLeft` is the least share of CPU a node of the
 * walked set has left (cpu-index.ts leastCpuLeft; 0 bounds every set).
 */
function ceiling(k: number, b: BundleContext, ctx: GangContext, cpuLeft = 0): number {
  const strategy = ctx.strategy === 'PACK' ? (k >= ctx.remaining.gpus ? 50 : 0) : ctx.strategy === 'SPREAD' ? 100 : 0;
  const topology = ctx.preferredLevels.length === 0 || ctx.bundlesOnNode.size === 0 ? 0 : 100;
  let resources = 100;
  if (b.gpus > 0) {
    if (b.bundle.gpuMemoryMiB === 0) resources = 100 - ((0 * 33 + (k - b.gpus)) * 100) / 1200;
  } else if (b.migSlices === 0) {
    resources = 100 - Math.min(90, k * 3) - cpuLeft * 9;
  }
  const tiers = [100, 100, strategy, topology, resources];
  let score = 0;
  for (let t = 0; t < SCORERS.length; t++) score += SCORERS[t]!.weight * tiers[t]!;
  return score;
}

/**
 * The most a node with k free GPUs, whose fullest island holding `b` has j
 * free, can score; and, with no later node reaching more (pairs come in
 * order of j, then k), the most any later node can. PACK's 50 needs k ≥
 * what the gang still needs: a later k may have it.
 */
function islandCeiling(j: number, k: number, b: BundleContext, ctx: GangContext, most: number): number {
  if (b.bundle.gpuMemoryMiB > 0) return ceilingFrom(k, b, ctx, most); // eligible GPUs may be fewer: no island bound
  const at = (kk: number, strategy: number) => tiers(strategy, ctx, 100 - (((j - b.gpus) * 33 + (kk - b.gpus)) * 100) / 1200);
  const need = ctx.remaining.gpus;
  if (ctx.strategy !== 'PACK') return at(k, ctx.strategy === 'SPREAD' ? 100 : 0);
  return Math.max(at(k, k >= need ? 50 : 0), need > k && need <= most ? at(need, 50) : -Infinity);
}

/** The five tiers summed as the pipeline sums a node's scores (island and taints at their best). */
function tiers(strategy: number, ctx: GangContext, resources: number): number {
  const topology = ctx.preferredLevels.length === 0 || ctx.bundlesOnNode.size === 0 ? 0 : 100;
  const t = [100, 100, strategy, topology, resources];
  let score = 0;
  for (let i = 0; i < SCORERS.length; i++) score += SCORERS[i]!.weight * t[i]!;
  return score;
}

/** The most any node with k or more free GPUs can score (the ceiling falls with k, but for PACK's step up). */
function ceilingFrom(k: number, b: BundleContext, ctx: GangContext, most: number): number {
  const here = ceiling(k, b, ctx);
  const need = ctx.remaining.gpus;
  return ctx.strategy === 'PACK' && k < need && need <= most ? Math.max(here, ceiling(need, b, ctx)) : here;
}

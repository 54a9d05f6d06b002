/**
 * "Why is my group pending?", answered from data.
 *
 * The pipeline counts every node rejection by (reason, detail); this module
 * adds a few facts read from the same state (largest free NVLink island, most
 * free GPUs on one node) and writes both a structured `Unschedulable` and one
 * sentence, e.g.
 *
 *   bundle 0 needs 8 GPUs in one NVLink island; largest free island is 4
 *   (node-3); 12 nodes rejected: 9 insufficient GPU, 3 untolerated taint spot
 */
import { MAX_GPUS_PER_NODE } from './bits.js';
import { eachBoth, type NodeSet } from './node-set.js';
import { ReasonCode, reasonPhrase, type RejectionCounter } from './reasons.js';
import type { AttemptPlan } from './domains.js';
import type { ClusterState, NodeHeadroom } from './state.js';
import type { ValidPgSpec, RejectionCount, Unschedulable } from './types.js';
import type { BundleContext, GangContext } from './plugins/index.js';

/** The best failed attempt of a gang. */
export interface Failure {
  /** Spec index of the bundle no node took. */
  bundleIndex: number;
  /** Bundles placed (tentatively) before it. */
  placed: number;
  rejections: RejectionCounter;
  /** Domain label of the attempt ("rack=r7"), "" when unconfined. */
  attempt: string;
  required: boolean;
}

export interface Facts {
  largestFreeIsland?: { size: number; nodeId: string };
  mostFreeGpus?: { count: number; nodeId: string };
}

/**
 * Facts over the candidate nodes (those that passed the node filters): the
 * first node (in node order) with the largest free island, and the first
 * with the most free GPUs. Read from the index top down (node-index.ts): the
 * most free GPUs is the first node of the fullest bucket, and a bucket of k
 * free GPUs cannot hold an island larger than k, so the walk stops below the
 * largest island found — a few nodes on a busy cluster, not all of them.
 */
export function collectFacts(state: ClusterState, candidates: { nodes: readonly NodeHeadroom[]; set: NodeSet }, bundle: BundleContext, islandRequired: boolean): Facts {
  if (bundle.gpus === 0) return {};
  let island: (Facts['largestFreeIsland'] & { idx: number }) | undefined;
  let most: Facts['mostFreeGpus'];
  if (bundle.bundle.gpuMemoryMiB > 0) {
    // Eligible GPUs depend on their memory: the bucket bounds do not hold, look at every node.
    bundle.resetMemo();
    for (const ns of candidates.nodes) {
      const fit = bundle.fit(ns);
      if (island === undefined || fit.largestIslandFree > island.size) island = { size: fit.largestIslandFree, nodeId: ns.node.id, idx: ns.idx };
      if (most === undefined || fit.count > most.count) most = { count: fit.count, nodeId: ns.node.id };
    }
    bundle.resetMemo();
  } else {
    for (let k = MAX_GPUS_PER_NODE; k >= 0 && (island === undefined || k >= island.size); k--) {
      eachBoth(state.index.byFree[k]!, candidates.set, (i) => {
        if (island !== undefined && island.size === k && island.idx < i) return false;
        const ns = state.nodes[i]!;
        most ??= { count: k, nodeId: ns.node.id };
        const largest = state.index.largestIsland(i);
        if (island === undefined || largest > island.size || (largest === island.size && i < island.idx)) island = { size: largest, nodeId: ns.node.id, idx: i };
        return true;
      });
    }
  }
  const facts: Facts = {};
  if (island !== undefined && (islandRequired || bundle.gpus > 1)) facts.largestFreeIsland = { size: island.size, nodeId: island.nodeId };
  if (most !== undefined) facts.mostFreeGpus = most;
  return facts;
}

export interface ExplainInput {
  spec: ValidPgSpec;
  ctx: GangContext;
  nodeRejections: RejectionCounter;
  failure: Failure | undefined;
  plan: AttemptPlan;
  candidates: number;
  nodesTotal: number;
  bundle: BundleContext;
  facts: Facts;
}

export function buildUnschedulable(x: ExplainInput): Unschedulable {
  const rejections = mergeCounts(x.nodeRejections.list(), x.failure?.rejections.list() ?? []);
  const base = {
    bundlesPlaced: x.failure?.placed ?? 0,
    nodesTotal: x.nodesTotal,
    rejections,
    ...(x.facts.largestFreeIsland ? { largestFreeIsland: x.facts.largestFreeIsland } : {}),
    ...(x.facts.mostFreeGpus ? { mostFreeGpus: x.facts.mostFreeGpus } : {}),
  };
  const rejected = rejectionSentence(rejections);

  if (x.nodesTotal === 0) return { ...base, code: ReasonCode.NO_NODES, message: 'the cluster has no nodes' };
  if (x.spec.strategy === 'STRICT_SPREAD' && x.candidates < x.spec.bundles.length) {
    const message = `STRICT_SPREAD needs ${x.spec.bundles.length} distinct nodes; ${x.candidates} of ${x.nodesTotal} nodes are eligible${rejected ? `; ${rejected}` : ''}`;
    return { ...base, code: ReasonCode.TOO_FEW_NODES, message };
  }

  const needs = `bundle ${x.bundle.index} needs ${x.bundle.describe(x.ctx.islandRequired)}`;
  const parts: string[] = [];
  const req = x.plan.requiredDomains;
  if (req !== undefined) {
    const all = `all ${x.spec.bundles.length} bundle${x.spec.bundles.length === 1 ? '' : 's'} in one ${req.level.replaceAll('+', ' and ')}`;
    if (x.failure === undefined) {
      const room = req.roomiest ? `; roomiest is ${req.roomiest.label} with ${req.roomiest.freeGpus} free GPUs on ${req.roomiest.nodes} nodes` : '';
      const message = `needs ${all}; no ${req.level} has room (${req.count} considered)${room}${rejected ? `; ${rejected}` : ''}`;
      return { ...base, code: ReasonCode.NO_DOMAIN, message, domain: { level: req.level, tried: 0 } };
    }
    parts.push(`${needs}, ${all}`);
    parts.push(`best ${x.failure.attempt} placed ${x.failure.placed} of ${x.spec.bundles.length}`);
  } else {
    parts.push(needs);
  }
  if (x.bundle.gpus > 0) {
    const f = x.facts;
    if (f.largestFreeIsland && x.ctx.islandRequired && x.bundle.gpus > 1) parts.push(`largest free island is ${f.largestFreeIsland.size} (${f.largestFreeIsland.nodeId})`);
    else if (f.mostFreeGpus) parts.push(`most free GPUs on one node is ${f.mostFreeGpus.count} (${f.mostFreeGpus.nodeId})`);
  }
  if (x.candidates === 0) parts.push('no node passes the group filters');
  if (rejected) parts.push(rejected);

  const top = x.failure?.rejections.list()[0] ?? rejections[0];
  const code = top?.code ?? ReasonCode.BUNDLE_UNPLACEABLE;
  const domain = req !== undefined ? { domain: { level: req.level, tried: x.plan.attempts.length, best: x.failure!.attempt, bestPlaced: x.failure!.placed } } : {};
  return { ...base, code, message: parts.join('; '), bundleIndex: x.bundle.index, ...domain };
}

/** "12 nodes rejected: 9 insufficient GPU, 3 untolerated taint spot" */
export function rejectionSentence(rejections: readonly RejectionCount[]): string {
  if (rejections.length === 0) return '';
  const total = rejections.reduce((s, r) => s + r.count, 0);
  const items = rejections.map((r) => `${r.count} ${phrase(r.code, r.detail)}`);
  return `${total} node${total === 1 ? '' : 's'} rejected: ${items.join(', ')}`;
}

function phrase(code: string, detail: string): string {
  const p = reasonPhrase[code] ?? code;
  // Details that only repeat the phrase ("gpu" after "insufficient GPU") are dropped.
  if (detail === '' || ['gpu', 'cpu', 'memory'].includes(detail)) return p;
  return `${p} ${detail}`;
}

function mergeCounts(a: RejectionCount[], b: RejectionCount[]): RejectionCount[] {
  return [...a, ...b].sort((x, y) => y.count - x.count || x.code.localeCompare(y.code) || x.detail.localeCompare(y.detail));
}

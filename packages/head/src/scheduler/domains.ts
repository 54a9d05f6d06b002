/**
 * Attempts: the node subsets the pipeline tries a gang on, in order.
 *
 * A required co-location level ("all bundles in one rack", STRICT_PACK = one
 * node) cannot be met by placing bundles greedily and hoping the first one
 * picked the right rack. So the gang is tried one domain at a time: every
 * rack (or node, zone, NVLink domain) whose free capacity could hold the
 * whole gang, fullest first (best fit: big empty domains stay free for big
 * gangs). Preferred levels get the same treatment first, narrowest level
 * first, and then one attempt without that confinement.
 *
 * The aggregate check (sum of free GPUs, MIG slices, CPU, memory; node count
 * for STRICT_SPREAD) is necessary, not sufficient; it only prunes domains
 * that cannot possibly work, so their failure is not paid for.
 */
import type { NodeIndex } from './node-index.js';
import type { NodeHeadroom } from './state.js';
import { domainOf, type DomainLevel } from './plugins/index.js';

/** Narrowest first. */
export const DOMAIN_LEVELS: readonly DomainLevel[] = ['node', 'nvlink-domain', 'rack', 'zone'];

/** Preferred-level attempts are capped; the unconfined attempt after them always runs. */
export const MAX_PREFERRED_ATTEMPTS = 64;

export interface Attempt {
  /** e.g. "rack=r7", or "" for the unconfined attempt. */
  label: string;
  nodes: NodeHeadroom[];
  required: boolean;
}

export interface Demand {
  gpus: number;
  migSlices: number;
  cpuMillis: number;
  memoryBytes: number;
  bundles: number;
  /** GPUs of the largest bundle: domains with a free island this big are tried first. */
  maxBundleGpus: number;
  strictSpread: boolean;
}

export interface AttemptPlan {
  attempts: Attempt[];
  /** Set when required levels apply: how many domains exist, and the roomiest one. */
  requiredDomains?: { level: string; count: number; roomiest?: { label: string; freeGpus: number; nodes: number } };
}

/** The index's view of each node's largest free island (node-index.ts keeps it). */
export type IslandIndex = Pick<NodeIndex, 'largestIsland'>;

export function planAttempts(candidates: NodeHeadroom[], required: readonly DomainLevel[], preferred: readonly DomainLevel[], demand: Demand, index: IslandIndex): AttemptPlan {
  const attempts: Attempt[] = [];
  const narrowFirst = (ls: readonly DomainLevel[]) => DOMAIN_LEVELS.filter((l) => ls.includes(l));

  let preferredBudget = MAX_PREFERRED_ATTEMPTS;
  for (const p of narrowFirst(preferred)) {
    if (required.includes(p)) continue;
    for (const d of fittingDomains(candidates, [...narrowFirst(required), p], demand, index).fitting) {
      if (preferredBudget-- <= 0) break;
      attempts.push({ ...d, required: false });
    }
  }
  if (required.length === 0) {
    attempts.push({ label: '', nodes: candidates, required: false });
    return { attempts };
  }
  const levels = narrowFirst(required);
  const { fitting, all } = fittingDomains(candidates, levels, demand, index);
  for (const d of fitting) attempts.push({ ...d, required: true });
  let roomiest: { label: string; freeGpus: number; nodes: number } | undefined;
  for (const d of all) if (roomiest === undefined || d.freeGpus > roomiest.freeGpus) roomiest = { label: d.label, freeGpus: d.freeGpus, nodes: d.nodes.length };
  return { attempts, requiredDomains: { level: levels.join('+'), count: all.length, ...(roomiest ? { roomiest } : {}) } };
}

interface Domain {
  label: string;
  nodes: NodeHeadroom[];
  freeGpus: number;
  /** Some node of it has the largest bundle's GPUs free inside one NVLink island. */
  islandFits: boolean;
}

/**
 * Groups the candidates by domain and keeps the ones whose free totals could
 * hold the gang. Which node is in which domain does not change with
 * reservations, so the grouping is kept per candidate list (the pipeline
 * memoises those per spec shape) and level combination; each call only sums
 * what is free now, domain by domain, reading each node's largest free
 * island from the scheduler's index (node-index.ts) instead of counting it.
 */
function fittingDomains(candidates: NodeHeadroom[], levels: readonly DomainLevel[], demand: Demand, index: IslandIndex): { fitting: Domain[]; all: Domain[] } {
  const all: (Domain & { mig: number; cpu: number; mem: number })[] = [];
  for (const { label, nodes } of groupByDomain(candidates, levels)) {
    const d = { label, nodes, freeGpus: 0, islandFits: false, mig: 0, cpu: 0, mem: 0 };
    for (const ns of nodes) {
      const free = ns.freeGpuCount();
      d.freeGpus += free;
      if (!d.islandFits && index.largestIsland(ns.idx) >= demand.maxBundleGpus) d.islandFits = true;
      if (ns.mig.length > 0) for (const n of ns.migFree.values()) d.mig += n;
      d.cpu += ns.freeCpu;
      d.mem += ns.freeMem;
    }
    all.push(d);
  }
  const fitting = all.filter(
    (d) =>
      d.freeGpus >= demand.gpus &&
      d.mig >= demand.migSlices &&
      d.cpu >= demand.cpuMillis &&
      d.mem >= demand.memoryBytes &&
      (!demand.strictSpread || d.nodes.length >= demand.bundles),
  );
  // Domains where the largest bundle can sit inside one NVLink island first
  // (first success wins, so order is quality); then best fit: the fullest
  // domain that might hold the gang; then the lowest first node.
  const islandOk = (d: Domain) => (d.islandFits ? 0 : 1);
  fitting.sort((a, b) => islandOk(a) - islandOk(b) || a.freeGpus - b.freeGpus || a.nodes[0]!.idx - b.nodes[0]!.idx);
  return { fitting, all };
}

const groupings = new WeakMap<readonly NodeHeadroom[], Map<string, { label: string; nodes: NodeHeadroom[] }[]>>();

/** The candidates by domain label ("rack=r7,zone=z1"), in order of first appearance; nodes lacking a level are left out. */
function groupByDomain(candidates: readonly NodeHeadroom[], levels: readonly DomainLevel[]): { label: string; nodes: NodeHeadroom[] }[] {
  const levelsKey = levels.join('+');
  let byLevels = groupings.get(candidates);
  if (byLevels === undefined) groupings.set(candidates, (byLevels = new Map()));
  const cached = byLevels.get(levelsKey);
  if (cached !== undefined) return cached;
  const byLabel = new Map<string, { label: string; nodes: NodeHeadroom[] }>();
  for (const ns of candidates) {
    const parts: string[] = [];
    let missing = false;
    for (const l of levels) {
      const v = domainOf(ns, l);
      if (v === undefined) missing = true;
      parts.push(`${l}=${v}`);
    }
    if (missing) continue;
    const label = parts.join(',');
    let g = byLabel.get(label);
    if (g === undefined) byLabel.set(label, (g = { label, nodes: [] }));
    g.nodes.push(ns);
  }
  const groups = [...byLabel.values()];
  if (byLevels.size < 16) byLevels.set(levelsKey, groups);
  return groups;
}

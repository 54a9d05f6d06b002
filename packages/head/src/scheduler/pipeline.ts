/**
 * The gang-scheduling pipeline: one placement group in, a plan or a reason out.
 *
 *   sanity → node filters (once per group) → order bundles → attempts (domains)
 *     └ per bundle: bundle filters → score → pick node → pick GPUs → reserve
 *   all bundles placed → plan (tentative reservations released; caller commits)
 *   else → unreserve, explain, and tell PENDING (wait) from INFEASIBLE (never)
 *
 * Read it top to bottom; each stage says why it stands where it does.
 * Complexity per group: O(N) node filters (memoised per spec shape) +
 * A·B bundle passes for A attempts and B bundles, each visiting only the
 * nodes with room for its bundle until none left can win (scan.ts, using
 * the index of nodes by free capacity, node-index.ts), plus one GPU
 * selection per placed bundle (gpu-select.ts). With no topology level, A = 1.
 */
import { indicesOf } from './bits.js';
import { planAttempts } from './domains.js';
import { buildUnschedulable, collectFacts, type Failure } from './explain.js';
import { selectGpus, selectMig } from './gpu-select.js';
import { ReasonCode, RejectionCounter } from './reasons.js';
import { ClusterState, type NodeHeadroom } from './state.js';
import type { BundlePlacement, ClusterSnapshot, ValidPgSpec, ScheduleResult, Unschedulable } from './types.js';
import { NodeSet } from './node-set.js';
import { BundleContext, nodeFilters, domainOf, type DomainLevel, type GangContext } from './plugins/index.js';
import { pickNode, type AttemptNodes } from './scan.js';

export interface PlaceOptions {
  /** Nodes held for a starving group (node id → group id); see queue.ts. */
  held?: ReadonlyMap<string, string>;
  /** Run the empty-cluster check on failure (default true). */
  checkFeasibility?: boolean;
}

/** The pure entry point: snapshot in, result out. */
export function schedule(snapshot: ClusterSnapshot, spec: ValidPgSpec, opts: PlaceOptions = {}): ScheduleResult {
  return placeGroup(ClusterState.from(snapshot), spec, opts);
}

/** Places one group on `state`, leaving `state` unchanged; call `state.commit` to accept the plan. */
export function placeGroup(state: ClusterState, spec: ValidPgSpec, opts: PlaceOptions = {}): ScheduleResult {
  // 0. Sanity. Specs are validated at the edge (spec.ts), but the core must
  //    not crash or loop on one that skipped validation.
  const problem = specProblem(spec);
  if (problem !== '') return { status: 'INFEASIBLE', reason: plainReason(ReasonCode.INVALID_SPEC, problem, state.nodes.length) };

  const ctx = gangContext(spec, opts);

  // 1. Node filters. Liveness, draining, taints, labels and holds do not depend on the
  //    bundle, so they run once per node for the whole group; what survives is
  //    the candidate list every later stage works from. Without a hold the
  //    answer depends only on immutable node data, so the state memoises it.
  const { candidates, candidateSet, nodeRejections } = filterNodes(state, ctx);

  // 2. Largest bundle first (first-fit decreasing): the hardest bundle chooses
  //    while the most room is left, and a gang that cannot fit fails on its
  //    first bundle instead of its last.
  const bundles = spec.bundles.map((b, i) => new BundleContext(i, b));
  const order = [...bundles].sort((a, b) => b.gpus - a.gpus || b.migSlices - a.migSlices || b.bundle.cpuMillis - a.bundle.cpuMillis || a.index - b.index);

  // 3. Attempts. Required co-location levels (and STRICT_PACK) confine the
  //    gang to one domain at a time; preferred ones are tried that way first.
  //    Without levels there is exactly one attempt over all candidates.
  const demand = {
    gpus: sum(bundles, (b) => b.gpus),
    migSlices: sum(bundles, (b) => b.migSlices),
    cpuMillis: sum(bundles, (b) => b.bundle.cpuMillis),
    memoryBytes: sum(bundles, (b) => b.bundle.memoryBytes),
    bundles: bundles.length,
    maxBundleGpus: Math.max(...bundles.map((b) => b.gpus)),
    strictSpread: spec.strategy === 'STRICT_SPREAD',
  };
  // A lone bundle is in one node, rack and zone by definition: its levels need
  // no confinement (the topology filter has already refused unlabelled nodes).
  const lone = bundles.length === 1;
  const plan = planAttempts(candidates, lone ? [] : ctx.requiredLevels, lone ? [] : ctx.preferredLevels, demand, state.index);
  // A preferred domain is not worth splitting a TP bundle across islands for:
  // those attempts demand islands, the unconfined fallback does not.
  const islandsStrict = { ...ctx, islandRequired: true };
  let best: Failure | undefined;
  for (const attempt of plan.attempts) {
    const preferredOnly = !attempt.required && attempt.label !== '';
    const nodes = { nodes: attempt.nodes, set: attempt.nodes === candidates ? candidateSet : NodeSet.of(attempt.nodes.map((n) => n.idx), state.nodes.length) };
    const r = tryGang(state, nodes, order, preferredOnly ? islandsStrict : ctx);
    if (r.ok) return { status: 'PLACED', placements: r.placements.sort((a, b) => a.bundleIndex - b.bundleIndex) };
    const failure: Failure = { ...r.failure, attempt: attempt.label, required: attempt.required };
    // Keep the attempt that got furthest; an unconfined attempt explains best when levels were only preferred.
    if (best === undefined || failure.placed > best.placed || (!attempt.required && attempt.label === '')) best = failure;
  }

  // 4. Nothing fit. Explain from the counted rejections, with facts (largest
  //    free island, most free GPUs) read from the same state. Then decide
  //    whether waiting can help: run the same pipeline on an empty twin of the
  //    cluster (every node alive, nothing reserved). If even that fails, the
  //    group is INFEASIBLE now, not pending forever.
  const failedBundle = best === undefined ? order[0]! : bundles[best.bundleIndex]!;
  const facts = collectFacts(state, { nodes: candidates, set: candidateSet }, failedBundle, ctx.islandRequired);
  const reason = buildUnschedulable({ spec, ctx, nodeRejections, failure: best, plan, candidates: candidates.length, nodesTotal: state.nodes.length, bundle: failedBundle, facts });
  if (opts.checkFeasibility === false) return { status: 'PENDING', reason };
  const never = infeasibility(state, spec);
  return never === undefined ? { status: 'PENDING', reason } : { status: 'INFEASIBLE', reason: never };
}

/**
 * Why the group can never fit, or undefined if it fits an empty twin of the
 * cluster (every node alive, nothing reserved). The twin's verdict depends
 * only on the spec's shape and the node set, so the state memoises it: a
 * pending group re-tried every cycle pays for it once.
 */
function infeasibility(state: ClusterState, spec: ValidPgSpec): Unschedulable | undefined {
  const key = `feasible:${JSON.stringify([spec.strategy, spec.bundles, spec.topology, spec.selector, spec.tolerations])}`;
  if (state.memo.has(key)) return state.memo.get(key) as Unschedulable | undefined;
  const twin = placeGroup(state.emptyTwin(), spec, { checkFeasibility: false });
  const verdict = twin.status === 'PLACED' ? undefined : { ...twin.reason, message: `fits no node shape even on an empty cluster: ${twin.reason.message}` };
  state.remember(key, verdict);
  return verdict;
}

function filterNodes(state: ClusterState, ctx: GangContext): { candidates: NodeHeadroom[]; candidateSet: NodeSet; nodeRejections: RejectionCounter } {
  const key = ctx.held === undefined ? `nodes:${JSON.stringify([ctx.spec.tolerations, ctx.spec.selector.matchLabels, ctx.requiredLevels])}` : undefined;
  const cached = key === undefined ? undefined : state.memo.get(key);
  if (cached !== undefined) return cached as ReturnType<typeof filterNodes>;
  const nodeRejections = new RejectionCounter();
  const candidates: NodeHeadroom[] = [];
  for (const ns of state.nodes) {
    let ok = true;
    for (const f of nodeFilters) {
      const r = f.filterNode(ns, ctx);
      if (!r.ok) {
        nodeRejections.add(r);
        ok = false;
        break;
      }
    }
    if (ok) candidates.push(ns);
  }
  const candidateSet = NodeSet.of(candidates.map((ns) => ns.idx), state.nodes.length);
  if (key !== undefined) state.remember(key, { candidates, candidateSet, nodeRejections });
  return { candidates, candidateSet, nodeRejections };
}

type GangOutcome = { ok: true; placements: BundlePlacement[] } | { ok: false; failure: Omit<Failure, 'attempt' | 'required'> };

/** One all-or-nothing try of the whole gang on `nodes`. */
function tryGang(state: ClusterState, nodes: AttemptNodes, order: readonly BundleContext[], ctx: GangContext): GangOutcome {
  ctx.bundlesOnNode.clear();
  for (const s of ctx.placedDomains.values()) s.clear();
  const need = ctx.remaining;
  need.gpus = need.migSlices = need.cpuMillis = need.memoryBytes = 0;
  need.custom.clear();
  for (const b of order) adjustDemand(need, b, 1);
  const placed: BundlePlacement[] = [];
  let outcome: GangOutcome | undefined;

  for (const b of order) {
    // Filter, then score, keeping just the best; ties go to the lower node
    // index (deterministic). The pass (scan.ts) visits only the nodes the
    // index says could hold the bundle, and stops once none left can win.
    const rejections = new RejectionCounter();
    const bestNode = pickNode(state, nodes, b, ctx, rejections);

    // Pick the concrete GPUs / MIG slices on the winner only: the expensive
    // interconnect search runs on one node, not on a thousand.
    const p = bestNode === undefined ? undefined : bind(bestNode, b, ctx);
    if (p === undefined) {
      outcome = { ok: false, failure: { bundleIndex: b.index, placed: placed.length, rejections } };
      break;
    }

    // Reserve tentatively, so the gang's next bundles see this one (no double
    // booking inside a gang, STRICT_SPREAD sees the node as used, PACK is drawn to it).
    state.reserve(p);
    placed.push(p);
    adjustDemand(need, b, -1);
    const ns = bestNode!;
    ctx.bundlesOnNode.set(ns.idx, (ctx.bundlesOnNode.get(ns.idx) ?? 0) + 1);
    for (const level of ctx.preferredLevels) {
      const d = domainOf(ns, level);
      if (d !== undefined) ctx.placedDomains.get(level)!.add(d);
    }
  }

  // Unreserve: on failure nothing of the gang stays (all-or-nothing); on
  // success the caller decides whether to commit, so the state is unchanged either way.
  for (const p of placed) state.release(p);
  return outcome ?? { ok: true, placements: placed };
}

function bind(ns: NodeHeadroom, b: BundleContext, ctx: GangContext): BundlePlacement | undefined {
  let gpuIndices: number[] = [];
  if (b.gpus > 0) {
    const mask = selectGpus(ns.topo, b.fit(ns).eligible, b.gpus, ctx.islandRequired);
    if (mask === null) return undefined; // unreachable while the filters are exact; fail closed
    gpuIndices = indicesOf(mask);
  }
  let migUuids: string[] = [];
  if (b.migSlices > 0) {
    const picked = selectMig(ns, b.bundle.migProfile!, b.migSlices);
    if (picked === null) return undefined;
    migUuids = picked;
  }
  return {
    bundleIndex: b.index,
    nodeId: ns.node.id,
    gpuIndices,
    migUuids,
    cpuMillis: b.bundle.cpuMillis,
    memoryBytes: b.bundle.memoryBytes,
    custom: { ...b.bundle.custom },
  };
}

function adjustDemand(need: GangContext['remaining'], b: BundleContext, sign: 1 | -1): void {
  need.gpus += sign * b.gpus;
  need.migSlices += sign * b.migSlices;
  need.cpuMillis += sign * b.bundle.cpuMillis;
  need.memoryBytes += sign * b.bundle.memoryBytes;
  for (const [k, v] of b.custom) need.custom.set(k, (need.custom.get(k) ?? 0) + sign * v);
}

function gangContext(spec: ValidPgSpec, opts: PlaceOptions): GangContext {
  const required = new Set<DomainLevel>();
  const preferred = new Set<DomainLevel>();
  let islandRequired = false;
  for (const c of spec.topology) {
    if (c.level === 'gpu-island') islandRequired ||= c.mode === 'required';
    else (c.mode === 'required' ? required : preferred).add(c.level);
  }
  if (spec.strategy === 'STRICT_PACK') required.add('node');
  for (const l of required) preferred.delete(l);
  return {
    spec,
    strategy: spec.strategy,
    islandRequired,
    requiredLevels: [...required],
    preferredLevels: [...preferred],
    held: opts.held,
    bundlesOnNode: new Map(),
    placedDomains: new Map([...preferred].map((l) => [l, new Set<string>()])),
    remaining: { gpus: 0, migSlices: 0, cpuMillis: 0, memoryBytes: 0, custom: new Map() },
  };
}

/** Empty string when the spec is one the core can work on (a spec that skipped spec.ts must not crash it). */
function specProblem(spec: ValidPgSpec): string {
  if (!Array.isArray(spec.bundles) || spec.bundles.length === 0) return 'a placement group needs at least one bundle';
  if (!['PACK', 'SPREAD', 'STRICT_PACK', 'STRICT_SPREAD'].includes(spec.strategy)) return `unknown strategy ${JSON.stringify(spec.strategy)}`;
  if (!Array.isArray(spec.topology) || !Array.isArray(spec.tolerations) || typeof spec.selector?.matchLabels !== 'object' || spec.selector.matchLabels === null) {
    return 'topology, tolerations and selector.matchLabels must be set (parse specs with parsePlacementGroupSpec)';
  }
  for (const [i, b] of spec.bundles.entries()) {
    if (typeof b !== 'object' || b === null || typeof b.custom !== 'object' || b.custom === null) return `bundles[${i}] must be an object with a custom map`;
    for (const [field, v] of [['gpus', b.gpus], ['cpuMillis', b.cpuMillis], ['memoryBytes', b.memoryBytes], ['gpuMemoryMiB', b.gpuMemoryMiB]] as const) {
      if (!Number.isInteger(v) || v < 0) return `bundles[${i}].${field} must be a non-negative integer (got ${v})`;
    }
    for (const [k, v] of Object.entries(b.custom)) if (!Number.isFinite(v) || v < 0) return `bundles[${i}].custom.${k} must be a non-negative number (got ${v})`;
  }
  return '';
}

function plainReason(code: string, message: string, nodesTotal: number) {
  return { code, message, bundlesPlaced: 0, nodesTotal, rejections: [] };
}

function sum<T>(xs: readonly T[], f: (x: T) => number): number {
  let s = 0;
  for (const x of xs) s += f(x);
  return s;
}

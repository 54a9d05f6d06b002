/**
 * The pending queue: which group gets a try first, and how a large gang is
 * kept from starving behind a stream of small ones.
 *
 * Order: priority (higher first), then age (older first), then id.
 *
 * Backfill: a group that does not fit does not block the groups behind it;
 * they are tried in order and take what fits. That keeps GPUs busy, but on
 * its own it starves a big gang: every GPU freed is taken by a small group
 * before eight ever come free together.
 *
 * Anti-starvation, "hold and backfill around it": once the first pending
 * group in queue order has waited `starvationAfterMs`, it gets a hold — the
 * set of nodes it would occupy on a cluster where nothing is reserved,
 * choosing among equal nodes those with the most GPUs free now. Groups
 * ordered behind it may not use held nodes at all (reason `node-held`); groups
 * ahead of it (higher priority) may. As running work on held nodes ends, the
 * GPUs stay free, and the gang fits after at most the time the longest
 * current tenant of those nodes runs. The hold is sticky between cycles (the
 * caller passes it back) so it does not wander, and only one group holds at
 * a time, which bounds the capacity idled to one gang's footprint. A group
 * that is INFEASIBLE never holds anything.
 */
import { placeGroup } from './pipeline.js';
import { ClusterState } from './state.js';
import type { BundlePlacement, ValidPgSpec, Unschedulable } from './types.js';

export interface QueuedGroup {
  id: string;
  spec: ValidPgSpec;
  enqueuedAtMs: number;
}

export interface Hold {
  groupId: string;
  nodeIds: string[];
  sinceMs: number;
}

export interface QueueOptions {
  /** How long the head of the queue may wait before it holds nodes (default 60 s). */
  starvationAfterMs?: number;
}

export const DEFAULT_STARVATION_AFTER_MS = 60_000;

export interface CycleResult {
  placed: { id: string; placements: BundlePlacement[] }[];
  pending: { id: string; reason: Unschedulable }[];
  infeasible: { id: string; reason: Unschedulable }[];
  /** Pass back into the next cycle. */
  hold: Hold | undefined;
}

export function compareQueued(a: QueuedGroup, b: QueuedGroup): number {
  return b.spec.priority - a.spec.priority || a.enqueuedAtMs - b.enqueuedAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * One scheduling cycle over the queue. Placed groups are committed to `state`
 * (so later groups in the same cycle see them); the caller persists them.
 */
export function runCycle(state: ClusterState, queue: readonly QueuedGroup[], nowMs: number, previousHold: Hold | undefined, opts: QueueOptions = {}): CycleResult {
  const starvationAfterMs = opts.starvationAfterMs ?? DEFAULT_STARVATION_AFTER_MS;
  const ordered = [...queue].sort(compareQueued);
  const result: CycleResult = { placed: [], pending: [], infeasible: [], hold: undefined };

  // A hold survives while its group is still queued; its nodes that left the cluster drop out.
  let hold = previousHold !== undefined && ordered.some((g) => g.id === previousHold.groupId) ? previousHold : undefined;
  if (hold !== undefined) hold = { ...hold, nodeIds: hold.nodeIds.filter((id) => state.node(id) !== undefined) };
  if (hold?.nodeIds.length === 0) hold = undefined;
  let behindHolder = false;
  let heldMap = holdMap(hold);

  for (const g of ordered) {
    const isHolder = hold?.groupId === g.id;
    const r = placeGroup(state, g.spec, behindHolder ? { held: heldMap } : {});
    if (r.status === 'PLACED') {
      state.commit(g.id, r.placements);
      result.placed.push({ id: g.id, placements: r.placements });
      if (isHolder) {
        hold = undefined;
        heldMap = undefined;
      }
    } else if (r.status === 'INFEASIBLE') {
      result.infeasible.push({ id: g.id, reason: r.reason });
      if (isHolder) {
        hold = undefined;
        heldMap = undefined;
      }
    } else {
      result.pending.push({ id: g.id, reason: r.reason });
      if (hold === undefined && nowMs - g.enqueuedAtMs >= starvationAfterMs) {
        hold = chooseHold(state, g, nowMs);
        heldMap = holdMap(hold);
      }
    }
    if (hold !== undefined && (isHolder || hold.groupId === g.id)) behindHolder = true;
  }
  result.hold = hold;
  return result;
}

/**
 * The nodes the starving group would take if nothing were reserved, with
 * ties (same shape) going to the nodes with the most GPUs free right now, so
 * the wait is as short as it can be.
 */
export function chooseHold(state: ClusterState, g: QueuedGroup, nowMs: number): Hold | undefined {
  const byFreeNow = [...state.nodes].sort((a, b) => b.freeGpuCount() - a.freeGpuCount() || a.idx - b.idx);
  const shadow = ClusterState.from({ nodes: byFreeNow.map((ns) => ns.node), reservations: [] });
  const r = placeGroup(shadow, g.spec, { checkFeasibility: false });
  if (r.status !== 'PLACED') return undefined;
  return { groupId: g.id, nodeIds: [...new Set(r.placements.map((p) => p.nodeId))], sinceMs: nowMs };
}

function holdMap(hold: Hold | undefined): Map<string, string> | undefined {
  return hold === undefined ? undefined : new Map(hold.nodeIds.map((id) => [id, hold.groupId]));
}

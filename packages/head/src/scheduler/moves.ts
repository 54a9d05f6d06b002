/**
 * Moves: placing groups that already hold bundles somewhere else, off nodes
 * being drained. Pure, like the rest of the core: a state in, a plan out.
 *
 * A move is all or nothing and happens only when the whole group fits
 * elsewhere NOW: the group's own reservations are released in the state, the
 * group is placed again (the `draining` filter keeps it off every draining
 * node), and if that fails its old reservations are put back untouched. So a
 * group that cannot move keeps running where it is; nothing is ever stopped
 * in the hope that room will appear.
 *
 * Order: priority (higher first), then age (older first), as in the queue.
 * The caller runs moves after the pending queue of the same cycle, passing
 * the queue's hold: a move takes only what no pending group got and no
 * starving group is holding, so a drain never delays work that waits.
 */
import { placeGroup } from './pipeline.js';
import type { ClusterState } from './state.js';
import type { BundlePlacement, ValidPgSpec, Unschedulable } from './types.js';

export interface MoveCandidate {
  id: string;
  spec: ValidPgSpec;
  enqueuedAtMs: number;
}

export interface MovePlan {
  /** Placed elsewhere; committed to the state under the same group id. */
  moved: { id: string; placements: BundlePlacement[] }[];
  /** Could not move now; their reservations are as they were. */
  blocked: { id: string; reason: Unschedulable }[];
}

export function planMoves(state: ClusterState, candidates: readonly MoveCandidate[], held?: ReadonlyMap<string, string>): MovePlan {
  const plan: MovePlan = { moved: [], blocked: [] };
  const ordered = [...candidates].sort((a, b) => b.spec.priority - a.spec.priority || a.enqueuedAtMs - b.enqueuedAtMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const c of ordered) {
    const old = state.releaseGroup(c.id);
    const r = placeGroup(state, c.spec, { ...(held ? { held } : {}), checkFeasibility: false });
    if (r.status === 'PLACED') {
      state.commit(c.id, r.placements);
      plan.moved.push({ id: c.id, placements: r.placements });
    } else {
      state.commit(c.id, old);
      plan.blocked.push({ id: c.id, reason: r.reason });
    }
  }
  return plan;
}

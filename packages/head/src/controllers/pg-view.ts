/**
 * What the placement group controller schedules on: one ClusterState kept
 * from cycle to cycle, instead of one rebuilt from every group's placements
 * in every cycle. Rebuilding cost O(groups) per cycle: with 5,000 placed
 * groups it doubled the head's CPU per create.
 *
 * The state is built whole from the node set and the groups' placements
 * at the first cycle, after `invalidate()`, and when the registry can no
 * longer say which records changed (node removed, records reloaded, too many
 * changes since). Otherwise a moved registry version is caught up node by
 * node (`registry.changesSince`): a node that registered, re-registered,
 * died or was drained is replaced in the state at its index (taking over the
 * placements on it), a new one added after the others — O(changed nodes),
 * where a rebuild cost O(nodes): ~150 ms at 10,000 nodes, paid whenever one
 * agent reconnected. Heartbeats change no record and nothing here.
 * Placements are kept current by whoever changes one: the scheduler core
 * commits what it places or moves (runCycle, planMoves), and the controller
 * calls `release` for a group that lets go of its placements (removed, or
 * its node died). The state drops its memoised answers when a node changes.
 *
 * Node order, and so tie-breaking, may differ between the two ways of
 * getting here. The scheduler breaks equal scores by node index; a rebuild
 * indexes nodes in the registry's order, while a caught-up state keeps each
 * node's old index and appends new nodes after the others. Two nodes that
 * score the same can therefore take a group in one and not in the other:
 * each answer is one a full pass would give on that state, but a rebuild
 * (restart, failover, `invalidate()`) may break a tie differently than the
 * state it replaced. Placements already made are not moved by this; we
 * accept it rather than re-sort on every caught-up change (O(nodes)).
 */
import type { Node } from '@muster/proto';
import type * as wire from '@muster/proto';
import type { NodeRegistry } from '../cluster/registry.js';
import { ClusterState, type Reservation } from '../scheduler/index.js';
import { corePlacement, schedulerView } from './pg-convert.js';

export interface SchedulingState {
  readonly state: ClusterState;
  /** Every known node, by id, as the registry had them at the build. */
  readonly nodeById: ReadonlyMap<string, Node>;
  readonly draining: ReadonlySet<string>;
}

interface Built {
  version: number;
  state: ClusterState;
  nodeById: Map<string, Node>;
  draining: Set<string>;
}

export class SchedulingView {
  private built: Built | undefined;

  constructor(
    private readonly registry: NodeRegistry,
    /** Every group that holds placements, with them. */
    private readonly holders: () => Iterable<{ id: string; placements: readonly wire.BundlePlacement[] }>,
  ) {}

  /** The state to schedule on, caught up with the registry. */
  current(): SchedulingState {
    const version = this.registry.version;
    if (this.built?.version === version) return this.built;
    if (this.built !== undefined && this.catchUp(this.built)) {
      this.built.version = version;
      return this.built;
    }
    const nodes = this.registry.list();
    const reservations: Reservation[] = [];
    for (const g of this.holders()) for (const p of g.placements) reservations.push({ groupId: g.id, ...corePlacement(p) });
    const views = nodes.map(schedulerView);
    // A GPU in MIG mode with no MIG device can run nothing: it stays out of every plan.
    for (const v of views) if (v.unusable) reservations.push({ ...v.unusable, groupId: unusableGroup(v.node.id) });
    this.built = {
      version,
      state: ClusterState.from({ nodes: views.map((v) => v.node), reservations }),
      nodeById: new Map(nodes.map((n) => [n.nodeId, n])),
      draining: new Set(nodes.filter((n) => n.draining).map((n) => n.nodeId)),
    };
    return this.built;
  }

  /** Applies the registry's changes since the build; false when a rebuild is needed. */
  private catchUp(built: Built): boolean {
    const ids = this.registry.changesSince(built.version);
    if (ids === undefined) return false;
    for (const id of new Set(ids)) {
      const node = this.registry.get(id);
      if (node === undefined) return false; // removed: indices would shift, build anew
      const v = schedulerView(node);
      built.state.addNode(v.node); // replaces the node when the state has it
      const fixed = unusableGroup(id);
      built.state.releaseGroup(fixed);
      if (v.unusable) built.state.commit(fixed, [v.unusable]);
      built.nodeById.set(id, node);
      if (node.draining) built.draining.add(id);
      else built.draining.delete(id);
    }
    return true;
  }

  /** `groupId` holds nothing any more. */
  release(groupId: string): void {
    this.built?.state.releaseGroup(groupId);
  }

  /** The next `current()` builds from scratch (the groups were read back from the store). */
  invalidate(): void {
    this.built = undefined;
  }
}

/** The pseudo-group holding a node's GPUs that are in MIG mode without MIG devices. */
function unusableGroup(nodeId: string): string {
  return `(mig-mode-without-devices):${nodeId}`;
}

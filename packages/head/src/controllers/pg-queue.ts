/**
 * The placement group controller's queue: the groups the scheduler tries
 * (PENDING, RESCHEDULING, INFEASIBLE), and which of them are worth a
 * pipeline run in this cycle.
 *
 * A group that stayed pending is skipped while the cluster has no room for
 * it at all (scheduler/room.ts: fewer free GPUs, CPU, memory or MIG slices in
 * total than it asks for, or no node with as many free GPUs as its largest
 * bundle). It could not fit, so skipping it never delays a placement; it is
 * still run every RETRY_MS so that its `why` stays current. A backlog of
 * pending gangs then costs a sum per group and cycle instead of a placement
 * attempt. The hold's group is always run, and every group is while one has
 * waited past the starvation time without a hold: the hold goes to the first
 * of them in queue order, as if none were skipped.
 */
import { PlacementGroupState as S } from '@muster/proto';
import { DEFAULT_STARVATION_AFTER_MS, freeTotals, roomFor, type ClusterState, type FreeTotals, type Hold, type ValidPgSpec, type QueuedGroup } from '../scheduler/index.js';

/** How often a pending group the cluster has no room for is run through the pipeline anyway. */
const RETRY_MS = 1_000;
const QUEUED = new Set([S.PLACEMENT_GROUP_STATE_PENDING, S.PLACEMENT_GROUP_STATE_RESCHEDULING, S.PLACEMENT_GROUP_STATE_INFEASIBLE]);

export class PendingQueue {
  private readonly ids = new Set<string>();
  /** When each group the last cycles left pending last went through the pipeline. */
  private readonly triedAt = new Map<string, number>();

  constructor(
    /** The group's spec and age; called only for ids in the queue. */
    private readonly entryOf: (id: string) => { spec: ValidPgSpec; createdAtMs: number },
    private readonly starvationAfterMs = DEFAULT_STARVATION_AFTER_MS,
  ) {}

  /** `id` is now in `state`: queued or not. */
  track(id: string, state: S): void {
    if (QUEUED.has(state)) this.ids.add(id);
    else {
      this.ids.delete(id);
      this.triedAt.delete(id);
    }
  }

  /** How many groups are queued (pending, rescheduling or infeasible). */
  get size(): number {
    return this.ids.size;
  }

  clear(): void {
    this.ids.clear();
    this.triedAt.clear();
  }

  /** A cycle tried `id` at `now` and left it pending. */
  stayedPending(id: string, now: number): void {
    this.triedAt.set(id, now);
  }

  /** The groups to run through the pipeline in this cycle (see the module comment). */
  due(state: ClusterState, hold: Hold | undefined, now: number): QueuedGroup[] {
    const all = [...this.ids].map((id) => {
      const e = this.entryOf(id);
      return { id, spec: e.spec, enqueuedAtMs: e.createdAtMs };
    });
    if (hold === undefined && all.some((g) => this.triedAt.has(g.id) && now - g.enqueuedAtMs >= this.starvationAfterMs)) return all;
    let free: FreeTotals | undefined;
    return all.filter((g) => {
      const last = this.triedAt.get(g.id);
      if (last === undefined || g.id === hold?.groupId || now - last >= RETRY_MS) return true;
      return roomFor((free ??= freeTotals(state)), g.spec);
    });
  }
}

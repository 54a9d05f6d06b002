/**
 * The replica group planner's hands (rg-plan.ts decides, this does): what the
 * head sees of each replica, gathered for the planner, and the I/O of a plan
 * once its record is stored — make a replica's placement group and gang,
 * stop a gang, free a placement group. What that I/O yields (ids made, a
 * placement group freed, a replica gone, a start that failed) goes into the
 * record through the same commit path, after the I/O: the record never names
 * less than what exists, so a head that stops in between leaves nothing its
 * successor cannot find (request ids make a repeated make idempotent).
 * Errors of stop/free are swallowed: the planner asks again next pass.
 *
 * One pass does a bounded amount of I/O, so the group's turn (its writes are
 * serialised) is never held for long: stops all at once, frees in one
 * batched remove (one commit), and at most MATERIALIZE_CONCURRENCY
 * materializations, whose ids are stored before act() returns true; the
 * group's next pass (kicked at once) makes the next ones. An apply, scale,
 * delete or autoscaling decision of the group waits for one pass, not for
 * every replica of a large scale-up, and every replica made is on record
 * within a pass of being made.
 */
import type { Logger } from '@muster/common';
import type { NatsAccess, Replica, ReplicaGroup } from '@muster/proto';
import type { GangController } from './gangs.js';
import type { LoadReports } from './load-reports.js';
import type { PlacementGroupController } from './placement-groups.js';
import type { Entry } from './rg-entry.js';
import { drainingNodesOf, isLive, progressOf } from './rg-moves.js';
import type { RgAction, ReplicaView } from './rg-plan.js';
import { gangSpecOf, pgSpecOf } from './rg-spec.js';

/** What the controller needs of the placement group controller. */
export type PgsPort = Pick<PlacementGroupController, 'create' | 'get' | 'removeMany'>;
/** What the controller needs of the gang controller. */
export type GangsPort = Pick<GangController, 'launch' | 'get' | 'stop' | 'onChange'>;

/**
 * Replicas whose placement group and gang are made at the same time, in one
 * pass. One after the other, each waits for two commits, and a group of
 * 1,000 replicas took minutes to place (docs/benchmarks.md, bench/rg-bytes);
 * the placement group and gang controllers commit concurrent creates
 * together. The rest wait for the group's next pass (see the top).
 */
const MATERIALIZE_CONCURRENCY = 16;

/** A change to one replica's record that I/O produced (undefined: the replica is forgotten). */
type Patch = (r: Replica) => Replica | undefined;

export class RgExecutor {
  constructor(
    private readonly pgs: PgsPort,
    private readonly gangs: GangsPort,
    private readonly log: Logger,
    private readonly access: NatsAccess | undefined,
    private readonly reports: LoadReports,
    private readonly isDraining: (nodeId: string) => boolean,
    /** Stores a record through the controller's commit path; `then` runs once it is durable. */
    private readonly store: (e: Entry, next: ReplicaGroup, then?: () => void) => Promise<void>,
  ) {}

  /** What the head sees of each replica of `rg` (the planner's input). */
  views(rg: ReplicaGroup): Map<string, ReplicaView> {
    return new Map(rg.replicas.map((r) => {
      const gang = this.gangOf(r);
      const view: ReplicaView = {
        gang: gang && { state: gang.state, message: gang.message },
        drainingNodes: isLive(r) ? drainingNodesOf(this.pgs, this.isDraining, r) : [],
        load: this.reports.of(rg.name, r.id),
        ...(r.replaces ? { progress: progressOf(this.pgs, r) } : {}),
      };
      return [r.id, view] as const;
    }));
  }

  /**
   * Does the I/O of `actions` (their record is stored), then stores what it
   * yielded. Returns whether the group should be looked at again now.
   */
  async act(e: Entry, actions: readonly RgAction[]): Promise<boolean> {
    const patches = new Map<string, Patch>();
    const failedAt: number[] = [];
    // What frees capacity first (stop, free, retire), then what takes it.
    const stops = actions.flatMap((a) => (a.kind === 'stop' ? [a.gangId] : []));
    await Promise.all(stops.map((id) => this.gangs.stop(id).catch(() => undefined)));
    const frees: string[] = [];
    for (const a of actions) {
      if (a.kind === 'free') {
        frees.push(a.placementGroupId);
        patches.set(a.replicaId, (x) => ({ ...x, placementGroupId: '' }));
      } else if (a.kind === 'retire') {
        if (a.placementGroupId) frees.push(a.placementGroupId);
        patches.set(a.replicaId, () => undefined);
      }
    }
    // One commit for every free (a group already gone is answered, not refused; a failed commit is asked again next pass).
    if (frees.length > 0) await this.pgs.removeMany(frees).catch(() => undefined);
    const byId = new Map(e.rg.replicas.map((r) => [r.id, r] as const));
    const makes = actions.flatMap((a) => (a.kind === 'materialize' && byId.has(a.replicaId) ? [byId.get(a.replicaId)!] : []));
    const now = makes.slice(0, MATERIALIZE_CONCURRENCY);
    await Promise.all(now.map(async (r) => {
      const spec = r.revision === e.rg.revision ? e.spec : r.revision === e.rg.stableRevision ? e.stableSpec : undefined;
      if (!spec) return;
      const made = await this.materialize(e, spec, r);
      if ('failed' in made) failedAt.push(Date.now());
      patches.set(r.id, (x) => ({ ...x, ...made.fields }));
    }));
    if (patches.size === 0) return makes.length > now.length;
    const replicas = e.rg.replicas.flatMap((r) => {
      const patch = patches.get(r.id);
      const next = patch ? patch(r) : r;
      return next ? [next] : [];
    });
    await this.store(e, { ...e.rg, replicas }, () => {
      e.failures.push(...failedAt);
      const kept = new Set(replicas.map((r) => r.id));
      for (const id of patches.keys()) {
        if (kept.has(id)) continue;
        e.drainingSince.delete(id);
        this.reports.forget(e.rg.name, id);
      }
    });
    for (const r of replicas) e.making.delete(r.placementGroupId);
    return true;
  }

  /**
   * Creates the replica's placement group and gang. Both carry the replica as
   * request id, so doing it again after a failover returns what the first
   * attempt made instead of a second copy.
   */
  private async materialize(e: Entry, spec: NonNullable<Entry['stableSpec']>, r: Replica): Promise<{ fields: Partial<Replica>; failed?: true }> {
    const requestId = `replica ${e.rg.name}/${r.id}`;
    const fields: Partial<Replica> = {};
    try {
      const pg = await this.pgs.create(pgSpecOf(spec, r.id), requestId);
      fields.placementGroupId = pg.id;
      e.making.add(pg.id);
      const gang = await this.gangs.launch(gangSpecOf(spec, r.revision, r.id, pg.id, this.access?.subjectPrefix), requestId);
      return { fields: { ...fields, gangId: gang.id, message: gang.message } };
    } catch (err) {
      const message = `could not start: ${(err as Error).message}`;
      this.log.warn({ group: e.rg.name, replica: r.id, reason: message }, 'replica failed');
      return { fields: { ...fields, state: 'failed', message }, failed: true };
    }
  }

  private gangOf(r: Replica) {
    if (!r.gangId) return undefined;
    try {
      return this.gangs.get(r.gangId);
    } catch {
      return undefined;
    }
  }
}

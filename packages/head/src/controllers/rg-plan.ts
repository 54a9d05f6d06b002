/**
 * The replica group planner: one reconcile pass of one group as a pure
 * function — the group's stored record, its specs, what the head sees of each
 * replica (gang, draining nodes, load report) and the clock in; the record to
 * store next and the actions to take once it is stored out, each with its
 * reason. No I/O: the controller (replica-groups.ts) stores `next`, then acts.
 *
 * Replica lifecycle (the one numbering; docs/replica-groups.md links here).
 * Every transition is a change of the group's record (/muster/rgs/<name>)
 * that is stored before anything is told or done about it:
 *
 *   1. wanted            → starting   recorded first (no placement group, no gang); once stored,
 *                                     its placement group and gang are made (`materialize`: both
 *                                     carry the replica as request id, so a successor head that
 *                                     finds a starting replica without a gang makes them again,
 *                                     idempotently, unless its revision is no longer wanted → 4)
 *   2. gang READY        → ready      joins the membership (routers send traffic)
 *   3. gang not READY    → starting   leaves the membership (a rank failed: the gang restarts)
 *   4. gang FAILED/gone  → failed     its placement group is freed once stored; replaced by a new
 *                                     replica unless more than maxReplacements failed in 10 minutes
 *                                     (then the group says so and stops replacing: no restart loop).
 *                                     The last three failed replicas stay listed with their reason
 *   5. surplus           → draining   leaves the membership at once; waits until the replica
 *                                     reports no call in flight (NATS load reports) or the
 *                                     drain deadline passes
 *   6. drained           → stopping   its gang is stopped once stored (again after a failover, if
 *                                     it still runs); when STOPPED its placement group is removed
 *                                     and the replica forgotten
 *   7. a bundle on a draining node (starting or ready)
 *                        → (stays)    a replacement of the same revision is started, `replaces`
 *                                     naming it (persisted): a surge beyond `desired`, at most one
 *                                     per group at a time; the two count as one replica, so
 *                                     scaling, rollouts and the autoscaler see `desired` unchanged
 *   8. its replacement READY
 *                        → draining   then 6 (make-before-break). While the replacement cannot be
 *                                     placed, this one keeps serving and the group's message says
 *                                     what it waits for; it moves once there is room
 *   (an uncordon before 8 dissolves the pair: the replacement is then a plain surplus replica,
 *   drained by the scale-down rule, not ready first)
 *
 * The pass, in order (each stage sees what the stages before it decided):
 *   a. replica states from their gangs (1-4), freeing failed replicas' placement groups;
 *   b. drains that are done (5 → 6) and stopped replicas retired (6);
 *   c. moves off draining nodes whose replacement is READY (8);
 *   d. wanted replicas per revision: `desired` of the current one; during a canary `desired` of
 *      the stable one and max(1, round(desired × canaryWeight)) of the canary. Start what is
 *      missing (rolling: at most maxSurge above `desired` while other revisions remain), drain
 *      other revisions as wanted ones become READY, drain surplus (replicas on draining nodes
 *      first, then not READY, then newest), then start one replacement for a replica on a
 *      draining node (7);
 *   e. the group's message; a group being deleted with no replica left is deleted.
 * Changing only the replica count never changes the revision, so never rolls out.
 */
import { GangState as G, type ReplicaGroup, type Replica } from '@muster/proto';
import { subjectOf, type ValidRgSpec } from './rg-spec.js';
import { isLive, ReplicaMoves } from './rg-moves.js';

/** How far back failed replicas count against the replacement budget. */
export const FAILURE_WINDOW_MS = 600_000;
/** Failed replicas kept in the record for people to see. */
export const FAILED_KEPT = 3;

/** What the head sees of one replica besides its record. */
export interface ReplicaView {
  /** Its gang (undefined: none, or gone). */
  gang?: { state: G; message: string } | undefined;
  /** Draining nodes that hold a bundle of its placement group. */
  drainingNodes?: readonly string[];
  /** The replica's last load report. */
  load?: { inFlight: number; queued: number; timeMs: number } | undefined;
  /** For the group's message, while it replaces a replica on a draining node: how far it got. */
  progress?: string;
}

export interface RgPlanInput {
  /** The group's record as stored. */
  rg: ReplicaGroup;
  spec: ValidRgSpec;
  /** The previous revision's spec while a canary runs. */
  stableSpec: ValidRgSpec | undefined;
  /** Replica id → what the head sees of it (missing: nothing). */
  views: ReadonlyMap<string, ReplicaView>;
  /** Replica id → when it started draining (missing: now). */
  drainingSince: ReadonlyMap<string, number>;
  /** When replicas of the group failed, before this pass. */
  failures: readonly number[];
  /** Whether load reports are heard at all (no NATS: drains finish at once). */
  listening: boolean;
  subjectPrefix: string;
  nowMs: number;
  /** A fresh replica id. */
  newId(): string;
}

export type RgAction =
  /** 1: a replica was recorded (or found recorded without its gang): make its placement group and gang. */
  | { kind: 'materialize'; replicaId: string; revision: string; reason: string }
  /** 2-3: the replica's state follows its gang (a record change only). */
  | { kind: 'follow'; replicaId: string; state: 'ready' | 'starting'; reason: string }
  /** 4: the replica failed; it counts against the replacement budget. */
  | { kind: 'fail'; replicaId: string; reason: string }
  /** 4: remove a failed replica's placement group, then forget it in the record. */
  | { kind: 'free'; replicaId: string; placementGroupId: string; reason: string }
  /** 5, 8: the replica leaves the membership and drains. */
  | { kind: 'drain'; replicaId: string; reason: string }
  /** 6: stop the replica's gang. */
  | { kind: 'stop'; replicaId: string; gangId: string; reason: string }
  /** 6: remove the stopped replica's placement group, then forget the replica. */
  | { kind: 'retire'; replicaId: string; placementGroupId: string; reason: string }
  /** The group was being deleted and has no replica left: delete its record. */
  | { kind: 'delete'; reason: string };

export interface RgPlan {
  /** The record to store (the input's record if nothing changed). */
  next: ReplicaGroup;
  actions: RgAction[];
  /** Whether the replacement budget is spent (no replica is started). */
  blocked: boolean;
}

/** Failed replicas replaced within the failure window before the group stops replacing them. */
export function replacementBudget(spec: ValidRgSpec): number {
  return spec.maxReplacements;
}

export function planReplicaGroup(input: RgPlanInput): RgPlan {
  const { rg, spec, stableSpec, views, nowMs } = input;
  const actions: RgAction[] = [];
  let replicas = rg.replicas.map((r) => ({ ...r }));
  const view = (r: Replica): ReplicaView => views.get(r.id) ?? {};
  const specOf = (revision: string) => (revision === rg.revision ? spec : revision === rg.stableRevision ? stableSpec : undefined);
  let failedNow = 0;
  const fail = (r: Replica, reason: string) => {
    r.state = 'failed';
    r.message = reason;
    failedNow++;
    actions.push({ kind: 'fail', replicaId: r.id, reason });
  };

  // a. Replica states from their gangs (1-4).
  for (const r of replicas) {
    if (r.state === 'starting' && !r.gangId) {
      if (specOf(r.revision)) actions.push({ kind: 'materialize', replicaId: r.id, revision: r.revision, reason: 'recorded without its gang (not made yet: a pass makes 16; or a head stopped in between)' });
      else fail(r, `its revision ${r.revision} is no longer wanted`);
    } else if (r.state === 'starting' || r.state === 'ready') {
      const gang = view(r).gang;
      const next = gang?.state === G.GANG_STATE_READY ? 'ready' : !gang || gang.state === G.GANG_STATE_FAILED ? 'failed' : 'starting';
      if (next === 'failed') fail(r, gang ? gang.message || 'its gang FAILED' : 'gang gone');
      else if (next !== r.state) {
        r.state = next;
        r.message = gang?.message ?? '';
        actions.push({ kind: 'follow', replicaId: r.id, state: next, reason: next === 'ready' ? 'its gang is READY' : `its gang is not READY: ${r.message}` });
      }
    }
    if (r.state === 'failed' && r.placementGroupId) actions.push({ kind: 'free', replicaId: r.id, placementGroupId: r.placementGroupId, reason: 'failed: its resources go back' });
  }
  // Only a replica whose placement group is freed is forgotten: the record names what is still held.
  const kept = new Set(replicas.filter((r) => r.state === 'failed').slice(-FAILED_KEPT));
  replicas = replicas.filter((r) => r.state !== 'failed' || kept.has(r) || r.placementGroupId);
  const recentFailures = input.failures.filter((t) => t > nowMs - FAILURE_WINDOW_MS).length + failedNow;
  const budget = replacementBudget(spec);
  const blocked = recentFailures > budget;

  // b. Drains that are done (5 → 6); stopped replicas retired (6).
  for (const r of replicas.filter((x) => x.state === 'draining')) {
    const since = input.drainingSince.get(r.id) ?? nowMs;
    const report = view(r).load;
    const idle = report !== undefined && report.timeMs >= since + 1_000 && report.inFlight + report.queued === 0;
    if (idle || nowMs - since >= spec.drainDeadlineMs || !input.listening) {
      r.state = 'stopping';
      r.message = idle ? 'drained' : 'drain deadline passed';
      if (r.gangId) actions.push({ kind: 'stop', replicaId: r.id, gangId: r.gangId, reason: r.message });
    }
  }
  for (const r of replicas.filter((x) => x.state === 'stopping')) {
    const gang = view(r).gang;
    if (!gang || gang.state === G.GANG_STATE_STOPPED || gang.state === G.GANG_STATE_FAILED) {
      actions.push({ kind: 'retire', replicaId: r.id, placementGroupId: r.placementGroupId, reason: gang ? 'its gang stopped' : 'it has no gang' });
    } else if (gang.state !== G.GANG_STATE_STOPPING && !actions.some((a) => a.kind === 'stop' && a.replicaId === r.id)) {
      actions.push({ kind: 'stop', replicaId: r.id, gangId: r.gangId, reason: 'stopping, but its gang still runs (a head stopped before stopping it)' });
    }
  }

  // c. Moves off draining nodes whose replacement is READY (8). An evacuee and
  //    its replacement count as one replica below (rg-moves.ts).
  const moves = new ReplicaMoves(replicas, (r) => [...(view(r).drainingNodes ?? [])]);
  const drain = (r: Replica, why: string) => {
    r.state = 'draining';
    r.message = `draining (${why})`;
    actions.push({ kind: 'drain', replicaId: r.id, reason: why });
  };
  for (const { evacuee, replacement, nodes } of moves.takeDone()) drain(evacuee, `moved off draining node ${nodes.join(', ')}: replaced by ${replacement.id}`);
  const shadows = moves.shadows();

  // d. Wanted replicas per revision.
  const live = (rev: string) => replicas.filter((r) => r.revision === rev && isLive(r) && !shadows.has(r.id));
  const running = () => replicas.filter(isLive).length;
  const want = new Map<string, number>();
  if (rg.stableRevision && rg.stableRevision !== rg.revision && stableSpec) {
    want.set(rg.stableRevision, rg.desired);
    want.set(rg.revision, rg.desired === 0 ? 0 : Math.max(1, Math.round(rg.desired * spec.rollout.canaryWeight)));
  } else {
    want.set(rg.revision, rg.desired);
  }
  const start = (revision: string, reason: string, replaces = ''): Replica => {
    const id = input.newId();
    const r: Replica = { id, revision, state: 'starting', placementGroupId: '', gangId: '', subject: subjectOf(input.subjectPrefix, rg.name, id), message: 'placing', createdAtMs: nowMs, replaces };
    replicas.push(r);
    actions.push({ kind: 'materialize', replicaId: id, revision, reason });
    return r;
  };
  for (const [rev, n] of want) {
    const others = replicas.filter((r) => !want.has(r.revision) && isLive(r)).length;
    let room = others > 0 ? Math.max(0, rg.desired + spec.rollout.maxSurge - running()) : Infinity;
    for (let i = live(rev).length; i < n && room > 0 && !blocked; i++, room--) {
      start(rev, others > 0 ? `rolling out revision ${rev}: ${i + 1} of ${n} (surge ${spec.rollout.maxSurge})` : `${i} of ${n} replica(s) of revision ${rev}`);
    }
  }
  const readyWanted = [...want.keys()].reduce((s, rev) => s + live(rev).filter((r) => r.state === 'ready').length, 0);
  const old = replicas.filter((r) => !want.has(r.revision) && isLive(r));
  let canRetireOld = Math.max(0, old.length - Math.max(0, rg.desired - readyWanted));
  for (const r of old.sort(byNotReadyThenNewest)) {
    if (canRetireOld-- <= 0) break;
    drain(r, 'old revision');
  }
  for (const [rev, n] of want) {
    const mine = live(rev);
    for (const r of mine.sort((a, b) => moves.evacueesFirst(a, b) || byNotReadyThenNewest(a, b)).slice(0, Math.max(0, mine.length - n))) drain(r, 'scaled down');
  }
  for (const [rev] of want) {
    const x = blocked || rg.deleting ? undefined : moves.next(live(rev));
    if (!x) continue;
    moves.replacementOf.set(x.id, start(rev, `replaces ${x.id}, which has a bundle on draining node ${moves.evacuees.get(x.id)!.join(', ')}`, x.id));
    break;
  }

  // e. The group's message; a deleted group with nothing left goes.
  if (rg.deleting) replicas = replicas.filter((r) => r.state !== 'failed' || r.placementGroupId);
  if (rg.deleting && replicas.length === 0) actions.push({ kind: 'delete', reason: 'deleted, and every replica is gone' });
  const lastFailed = replicas.filter((r) => r.state === 'failed').at(-1);
  const message = `${replicas.filter((r) => r.state === 'ready').length}/${rg.desired} ready` +
    (blocked ? `; ${recentFailures} replica(s) failed in the last 10 min, more than maxReplacements ${budget}: not replacing (last: ${lastFailed?.message ?? '?'})` : '') +
    moves.describe((s) => view(s).progress ?? `${s.state}${s.message ? ` (${s.message})` : ''}`).map((m) => `; ${m}`).join('');
  return { next: { ...rg, replicas, message }, actions, blocked };
}

/** Removal order: replicas not ready first, then the newest. */
function byNotReadyThenNewest(a: Replica, b: Replica): number {
  return Number(a.state === 'ready') - Number(b.state === 'ready') || b.createdAtMs - a.createdAtMs;
}

/**
 * The replica group controller: keeps `desired` replicas of a group's current
 * revision running, each one placement group + one gang, and publishes the
 * live membership routers send traffic to.
 *
 * Replica lifecycle (persisted in the group's record, /muster/rgs/<name>):
 *
 *   1. created           → starting   placement group created, gang launched on it
 *   2. gang READY        → ready      joins the membership (routers send traffic)
 *   3. gang not READY    → starting   leaves the membership (a rank failed: the gang restarts)
 *   4. gang FAILED       → failed     its placement group freed; replaced by a new replica
 *                                     unless more than maxReplacements failed in 10 minutes
 *                                     (then the group says so and stops replacing: no restart loop)
 *   5. surplus           → draining   leaves the membership at once; waits until the replica
 *                                     reports no call in flight (NATS load reports) or the
 *                                     drain deadline passes
 *   6. drained           → stopping   gang stopped; when STOPPED its placement group is removed
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
 * Reconcile (one pass per change, per group): count ready/starting replicas per
 * revision, start replicas of the current revision up to `desired` (rolling:
 * with at most maxSurge extra while old-revision replicas remain), drain old
 * revision replicas as new ones become ready, drain surplus (replicas on
 * draining nodes first, then not-ready, then newest), replace replicas on
 * draining nodes one at a time. Canary: `stable` keeps `desired` replicas of the previous
 * revision, the canary revision gets max(1, round(desired × weight)), and the
 * membership carries the traffic weights. Changing only the replica count
 * never changes the revision, so never rolls out.
 */
import { ErrorCode, MusterError, type Logger, type NatsConnection, randomId } from '@muster/common';
import { GangState as G, ReplicaGroup, type Membership, type NatsAccess, type Replica, type ReplicaGroupSpec } from '@muster/proto';
import type { EventLog } from '../events/event-log.js';
import type { StateWriter } from '../state/fence.js';
import type { GangController } from './gangs.js';
import type { PlacementGroupController } from './placement-groups.js';
import { gangSpecOf, parseRgSpec, pgSpecOf, policyOf, revisionOf, subjectOf, type ValidRgSpec } from './rg-spec.js';
import { decide, type AutoscalingPolicy } from '../autoscaler/index.js';
import { LoadReports } from './load-reports.js';
import { MembershipFeed } from './rg-membership.js';
import { drainingNodesOf, isLive, progressOf, ReplicaMoves } from './rg-moves.js';

export const RGS_PREFIX = '/muster/rgs/';

interface Entry {
  rg: ReplicaGroup;
  spec: ValidRgSpec;
  /** The spec's autoscaling policy, parsed once per spec (undefined: not autoscaled). */
  policy: AutoscalingPolicy | undefined;
  stableSpec: ValidRgSpec | undefined;
  membership: MembershipFeed;
  /** replica id → when draining started (ms) */
  drainingSince: Map<string, number>;
  /** When replicas failed (for the replacement budget). */
  failures: number[];
  running: boolean;
  again: boolean;
}

export class ReplicaGroupController {
  private readonly groups = new Map<string, Entry>();
  private readonly reports: LoadReports;
  private readonly autoscaleTimer: NodeJS.Timeout;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly writer: StateWriter,
    private readonly pgs: PlacementGroupController,
    private readonly gangs: GangController,
    private readonly events: EventLog,
    private readonly log: Logger,
    private readonly nats: { conn: NatsConnection; access: NatsAccess } | undefined,
    /** Whether a node is being drained (the node registry). */
    private readonly isDraining: (nodeId: string) => boolean = () => false,
  ) {
    gangs.onChange((g) => {
      const group = g.spec?.replicaGroup;
      if (group) this.kick(group);
    });
    this.reports = new LoadReports(nats && { conn: nats.conn, prefix: nats.access.subjectPrefix });
    // Drains and deadlines progress with time, not only with events.
    this.timer = setInterval(() => {
      for (const name of this.groups.keys()) this.kick(name);
    }, 500);
    this.timer.unref();
    // Autoscaling decisions: at least every 250 ms (docs/autoscaling.md).
    this.autoscaleTimer = setInterval(() => {
      for (const e of this.groups.values()) void this.autoscale(e).catch((err: unknown) => this.log.error({ group: e.rg.name, err: (err as Error).message }, 'autoscaling decision failed'));
    }, 250);
    this.autoscaleTimer.unref();
  }

  /** A node was drained or uncordoned: every group looks at its replicas again now. */
  nodesChanged(): void {
    for (const name of this.groups.keys()) this.kick(name);
  }

  /** Whether `pgId` is a replica's placement group (replicas move off draining nodes here, make-before-break). */
  owns(pgId: string): boolean {
    for (const e of this.groups.values()) if (e.rg.replicas.some((r) => r.placementGroupId === pgId)) return true;
    return false;
  }

  close(): void {
    clearInterval(this.timer);
    clearInterval(this.autoscaleTimer);
    this.reports.close();
  }

  /** One decision for an autoscaled group; a change is recorded as an `rg.autoscale` event with its inputs. */
  private async autoscale(e: Entry): Promise<void> {
    const policy = e.policy;
    if (!policy || e.rg.deleting) return;
    const now = Date.now();
    const { samples, demand } = this.reports.window(e.rg.name, e.rg.replicas.map((r) => r.id), policy.lookbackMs, now);
    const mem = e.rg.autoscaler;
    const state = { aboveSinceMs: mem?.aboveSinceMs || undefined, belowSinceMs: mem?.belowSinceMs || undefined, idleSinceMs: mem?.idleSinceMs || undefined, lastChangeMs: mem?.lastChangeMs || undefined };
    const ready = e.rg.replicas.filter((r) => r.state === 'ready').length;
    const d = decide(policy, { nowMs: now, current: e.rg.desired, ready, samples, demand }, state);
    e.rg.autoscaler = { aboveSinceMs: d.state.aboveSinceMs ?? 0, belowSinceMs: d.state.belowSinceMs ?? 0, idleSinceMs: d.state.idleSinceMs ?? 0, lastChangeMs: d.state.lastChangeMs ?? 0, lastReason: d.reason };
    if (!d.changed) return;
    const from = e.rg.desired;
    e.rg.desired = d.desired;
    const inputs = Object.fromEntries(Object.entries(d.inputs).map(([k, v]) => [k, String(Math.round(v * 1000) / 1000)]));
    await this.persist(e, 'rg.autoscale', `replica group ${e.rg.name}: ${from} → ${d.desired}: ${d.reason}`, { from: String(from), to: String(d.desired), ...inputs });
    this.kick(e.rg.name);
  }

  async load(): Promise<void> {
    const { kvs } = await this.writer.store.range(RGS_PREFIX);
    for (const kv of kvs) {
      const rg = ReplicaGroup.decode(kv.value);
      try {
        this.groups.set(rg.name, this.entry(rg, parseRgSpec(rg.spec), rg.stableSpec ? parseRgSpec(rg.stableSpec) : undefined));
      } catch (e) {
        this.log.error({ group: rg.name, err: (e as Error).message }, 'stored replica group is invalid; left out');
      }
    }
    for (const name of this.groups.keys()) this.kick(name);
  }

  // ── API ────────────────────────────────────────────────────────────────

  async apply(wire: ReplicaGroupSpec | undefined): Promise<ReplicaGroup> {
    const spec = parseRgSpec(wire);
    const revision = revisionOf(spec);
    const e = this.groups.get(spec.name);
    if (!e) {
      const rg: ReplicaGroup = {
        name: spec.name, spec, desired: spec.replicas.initial, revision, stableRevision: '', replicas: [],
        membershipVersion: 0, message: 'created', createdAtMs: Date.now(), deleting: false, stableSpec: undefined, autoscaler: undefined,
      };
      const entry = this.entry(rg, spec, undefined);
      this.groups.set(spec.name, entry);
      await this.persist(entry, 'rg.created', `replica group ${spec.name} created with ${rg.desired} replica(s), revision ${revision}`);
    } else {
      if (e.rg.deleting) throw new MusterError(ErrorCode.FAILED_PRECONDITION, `replica group ${spec.name} is being deleted`);
      const rolled = revision !== e.rg.revision;
      if (rolled && spec.rollout.strategy === 'canary') {
        // The running revision becomes the stable one (unless a canary is already running: then it stays).
        if (!e.rg.stableRevision) {
          e.rg.stableRevision = e.rg.revision;
          e.stableSpec = e.spec;
          e.rg.stableSpec = e.spec;
        }
      } else if (spec.rollout.strategy === 'rolling') {
        e.rg.stableRevision = '';
        e.stableSpec = undefined;
        e.rg.stableSpec = undefined;
      }
      e.spec = spec;
      e.policy = policyOf(spec);
      e.rg.spec = spec;
      e.rg.revision = revision;
      e.rg.desired = Math.min(spec.replicas.max, Math.max(spec.replicas.min, e.rg.desired));
      await this.persist(e, rolled ? 'rg.rollout' : 'rg.updated', rolled ? `replica group ${spec.name}: rolling out revision ${revision} (${spec.rollout.strategy})` : `replica group ${spec.name} updated (no rollout)`);
    }
    this.kick(spec.name);
    return this.get(spec.name);
  }

  get(name: string): ReplicaGroup {
    const e = this.groups.get(name);
    if (!e) throw new MusterError(ErrorCode.NOT_FOUND, `no replica group "${name}"`);
    return e.rg;
  }

  list(): ReplicaGroup[] {
    return [...this.groups.keys()].sort().map((n) => this.get(n));
  }

  async scale(name: string, replicas: number): Promise<ReplicaGroup> {
    const e = this.groups.get(name);
    if (!e) throw new MusterError(ErrorCode.NOT_FOUND, `no replica group "${name}"`);
    const { min, max } = e.spec.replicas;
    if (e.spec.autoscaling) {
      throw new MusterError(ErrorCode.FAILED_PRECONDITION, `replica group ${name} is autoscaled between ${min} and ${max}; change its bounds or its policy with apply instead`, { details: { field: 'replicas' } });
    }
    if (!Number.isInteger(replicas) || replicas < min || replicas > max) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `replicas: ${replicas} is outside ${name}'s bounds min ${min} … max ${max} (change them with apply)`, { details: { field: 'replicas' } });
    }
    e.rg.desired = replicas;
    await this.persist(e, 'rg.scaled', `replica group ${name} scaled to ${replicas}`);
    this.kick(name);
    return this.get(name);
  }

  async delete(name: string): Promise<ReplicaGroup> {
    const e = this.groups.get(name);
    if (!e) throw new MusterError(ErrorCode.NOT_FOUND, `no replica group "${name}"`);
    e.rg.deleting = true;
    e.rg.desired = 0;
    await this.persist(e, 'rg.deleting', `replica group ${name} is being deleted: draining ${e.rg.replicas.length} replica(s)`);
    this.kick(name);
    return e.rg;
  }

  /** The live membership now, then on every change, until `signal` aborts. */
  async *watch(name: string, signal: AbortSignal): AsyncGenerator<Membership> {
    const e = this.groups.get(name);
    if (!e) throw new MusterError(ErrorCode.NOT_FOUND, `no replica group "${name}"`);
    yield* e.membership.watch(signal);
  }

  // ── reconcile ──────────────────────────────────────────────────────────

  private entry(rg: ReplicaGroup, spec: ValidRgSpec, stableSpec: ValidRgSpec | undefined): Entry {
    const membership = new MembershipFeed(rg.name, rg.membershipVersion);
    return { rg, spec, policy: policyOf(spec), stableSpec, membership, drainingSince: new Map(), failures: [], running: false, again: false };
  }

  private kick(name: string): void {
    const e = this.groups.get(name);
    if (!e) return;
    if (e.running) {
      e.again = true;
      return;
    }
    e.running = true;
    void (async () => {
      do {
        e.again = false;
        try {
          await this.reconcile(e);
        } catch (err) {
          this.log.error({ group: name, err: (err as Error).message }, 'replica group reconcile failed; retrying');
        }
      } while (e.again);
      e.running = false;
    })();
  }

  private async reconcile(e: Entry): Promise<void> {
    const rg = e.rg;
    let changed = false;
    // 1. Replica states from their gangs.
    for (const r of [...rg.replicas]) {
      // Recorded by a leader that died before making it (startReplica makes
      // its replicas within one reconcile, so no other is half-made here).
      if (r.state === 'starting' && !r.gangId) {
        const spec = r.revision === rg.revision ? e.spec : r.revision === rg.stableRevision ? e.stableSpec : undefined;
        if (spec) await this.materialize(e, spec, r);
        else this.markFailed(e, r, `its revision ${r.revision} is no longer wanted`);
        changed = true;
      }
      const gang = this.gangOf(r);
      if (r.state === 'starting' || r.state === 'ready') {
        const next = gang?.state === G.GANG_STATE_READY ? 'ready' : gang?.state === G.GANG_STATE_FAILED || !gang ? 'failed' : 'starting';
        if (next !== r.state) {
          changed = true;
          if (next === 'failed') this.markFailed(e, r, gang?.message ?? 'gang gone');
          else {
            r.state = next;
            r.message = gang?.message ?? '';
          }
        }
      }
      if (r.state === 'failed' && r.placementGroupId) {
        // Free what it held; keep the entry (with its reason) for people to see.
        await this.pgs.remove(r.placementGroupId).catch(() => undefined);
        r.placementGroupId = '';
        changed = true;
      }
    }
    const failed = rg.replicas.filter((r) => r.state === 'failed');
    if (failed.length > 3) rg.replicas = rg.replicas.filter((r) => r.state !== 'failed' || failed.slice(-3).includes(r));
    e.failures = e.failures.filter((t) => t > Date.now() - 600_000);
    const budget = e.spec.maxReplacements === -1 ? 0 : e.spec.maxReplacements;
    const blocked = e.failures.length > budget;
    // 2. Drains that are done.
    for (const r of rg.replicas.filter((x) => x.state === 'draining')) {
      const since = e.drainingSince.get(r.id) ?? Date.now();
      const report = this.reports.of(r.id);
      const idle = report && report.timeMs >= since + 1_000 && report.inFlight + report.queued === 0;
      if (idle || Date.now() - since >= e.spec.drainDeadlineMs || !this.reports.listening) {
        r.state = 'stopping';
        r.message = idle ? 'drained' : 'drain deadline passed';
        if (r.gangId) await this.gangs.stop(r.gangId).catch(() => undefined);
        changed = true;
      }
    }
    for (const r of rg.replicas.filter((x) => x.state === 'stopping')) {
      const gang = this.gangOf(r);
      if (!gang || gang.state === G.GANG_STATE_STOPPED || gang.state === G.GANG_STATE_FAILED) {
        await this.retire(e, r);
        changed = true;
      }
    }
    // 3. Replicas on draining nodes (steps 7-8, rg-moves.ts): an evacuee and
    //    its replacement count as one replica below, until the replacement is
    //    READY and the evacuee drained (make-before-break).
    const moves = new ReplicaMoves(rg.replicas, (r) => drainingNodesOf(this.pgs, this.isDraining, r));
    for (const { evacuee, replacement, nodes } of moves.takeDone()) {
      this.drain(e, evacuee, `moved off draining node ${nodes.join(', ')}: replaced by ${replacement.id}`);
      changed = true;
    }
    const shadows = moves.shadows();
    // 4. Wanted replicas per revision.
    const live = (rev: string) => rg.replicas.filter((r) => r.revision === rev && isLive(r) && !shadows.has(r.id));
    const ready = (rev: string) => live(rev).filter((r) => r.state === 'ready');
    const want = new Map<string, number>();
    if (rg.stableRevision && rg.stableRevision !== rg.revision && e.stableSpec) {
      want.set(rg.stableRevision, rg.desired);
      want.set(rg.revision, rg.desired === 0 ? 0 : Math.max(1, Math.round(rg.desired * e.spec.rollout.canaryWeight)));
    } else {
      want.set(rg.revision, rg.desired);
    }
    // Start what is missing (rolling: bounded surge while old revisions remain).
    for (const [rev, n] of want) {
      const spec = rev === rg.revision ? e.spec : e.stableSpec!;
      const others = rg.replicas.filter((r) => !want.has(r.revision) && (r.state === 'starting' || r.state === 'ready')).length;
      let room = others > 0 ? Math.max(0, rg.desired + e.spec.rollout.maxSurge - rg.replicas.filter((r) => r.state === 'starting' || r.state === 'ready').length) : Infinity;
      for (let i = live(rev).length; i < n && room > 0 && !blocked; i++, room--) {
        await this.startReplica(e, spec, rev);
        changed = true;
      }
    }
    // Drain: old revisions once enough of the wanted ones are ready; surplus of wanted ones.
    const readyWanted = [...want].reduce((s, [rev]) => s + ready(rev).length, 0);
    const old = rg.replicas.filter((r) => !want.has(r.revision) && (r.state === 'starting' || r.state === 'ready'));
    let canRetireOld = Math.max(0, old.length - Math.max(0, rg.desired - readyWanted));
    for (const r of old.sort(byNotReadyThenNewest)) {
      if (canRetireOld-- <= 0) break;
      this.drain(e, r, 'old revision');
      changed = true;
    }
    for (const [rev, n] of want) {
      const extra = live(rev).sort((a, b) => moves.evacueesFirst(a, b) || byNotReadyThenNewest(a, b)).slice(0, Math.max(0, live(rev).length - n));
      for (const r of extra) {
        this.drain(e, r, 'scaled down');
        changed = true;
      }
    }
    // Step 7: a replacement for one replica on a draining node at a time (a
    // surge of one, as a rolling update's), of its own revision.
    for (const [rev] of want) {
      const x = blocked || rg.deleting ? undefined : moves.next(live(rev));
      if (!x) continue;
      const s = await this.startReplica(e, rev === rg.revision ? e.spec : e.stableSpec!, rev, x.id);
      if (isLive(s)) moves.replacementOf.set(x.id, s);
      changed = true;
      break;
    }
    const moving = moves.describe((s) => progressOf(this.pgs, s));
    // 5. Membership and persistence. A new membership version is stored
    //    before anyone hears of it, so the next leader numbers on from it.
    const membership = e.membership.propose(rg, e.spec.rollout.canaryWeight);
    if (membership) {
      rg.membershipVersion = membership.version;
      changed = true;
    }
    if (rg.deleting) rg.replicas = rg.replicas.filter((r) => r.state !== 'failed');
    if (rg.deleting && rg.replicas.length === 0) {
      this.groups.delete(rg.name);
      await this.writer.txn([{ type: 'delete', key: RGS_PREFIX + rg.name }]);
      if (membership) e.membership.commit(membership);
      void this.events.append('rg.deleted', { message: `replica group ${rg.name} deleted`, attributes: { group: rg.name } });
      return;
    }
    const lastFailed = rg.replicas.filter((r) => r.state === 'failed').at(-1);
    const counts = `${rg.replicas.filter((r) => r.state === 'ready').length}/${rg.desired} ready` +
      (blocked ? `; ${e.failures.length} replica(s) failed in the last 10 min, more than maxReplacements ${budget}: not replacing (last: ${lastFailed?.message ?? '?'})` : '') +
      moving.map((m) => `; ${m}`).join('');
    if (changed || rg.message !== counts) {
      rg.message = counts;
      try {
        await this.persist(e, '', '');
      } catch (err) {
        rg.membershipVersion = e.membership.version; // not stored, so not announced: the next reconcile tries again
        throw err;
      }
    }
    if (membership) e.membership.commit(membership);
  }

  private async startReplica(e: Entry, spec: ValidRgSpec, revision: string, replaces = ''): Promise<Replica> {
    const id = randomId('r', 8);
    const replica: Replica = {
      id, revision, state: 'starting', placementGroupId: '', gangId: '',
      subject: subjectOf(this.nats?.access.subjectPrefix || 'muster', spec.name, id), message: 'placing', createdAtMs: Date.now(), replaces,
    };
    e.rg.replicas.push(replica);
    // Recorded before anything is made for it: a leader that dies in between
    // leaves a replica its successor finishes (load → materialize), never a
    // placement group or gang that no replica group knows.
    await this.persist(e, '', '');
    await this.materialize(e, spec, replica);
    return replica;
  }

  /**
   * Creates the replica's placement group and gang. Both carry the replica as
   * request id, so doing it again after a failover returns what the first
   * attempt made instead of a second copy.
   */
  private async materialize(e: Entry, spec: ValidRgSpec, replica: Replica): Promise<void> {
    const requestId = `replica ${e.rg.name}/${replica.id}`;
    try {
      const pg = await this.pgs.create(pgSpecOf(spec, replica.id), requestId);
      replica.placementGroupId = pg.id;
      const gang = await this.gangs.launch(gangSpecOf(spec, replica.revision, replica.id, pg.id, this.nats?.access), requestId);
      replica.gangId = gang.id;
      replica.message = gang.message;
    } catch (err) {
      this.markFailed(e, replica, `could not start: ${(err as Error).message}`);
    }
  }

  /** A replica failed: it counts against the replacement budget (whatever failed: placing, launching, running). */
  private markFailed(e: Entry, r: Replica, message: string): void {
    r.state = 'failed';
    r.message = message;
    e.failures.push(Date.now());
    this.log.warn({ group: e.rg.name, replica: r.id, reason: message }, 'replica failed');
  }

  private drain(e: Entry, r: Replica, why: string): void {
    r.state = 'draining';
    r.message = `draining (${why})`;
    e.drainingSince.set(r.id, Date.now());
  }

  /** Stops a replica's gang, removes its placement group and forgets it. */
  private async retire(e: Entry, r: Replica): Promise<void> {
    const gang = this.gangOf(r);
    if (gang && gang.state !== G.GANG_STATE_STOPPED && gang.state !== G.GANG_STATE_FAILED) {
      await this.gangs.stop(r.gangId).catch(() => undefined);
      if (r.state !== 'failed') return; // wait for STOPPED
    }
    if (r.placementGroupId) await this.pgs.remove(r.placementGroupId).catch(() => undefined);
    e.rg.replicas = e.rg.replicas.filter((x) => x.id !== r.id);
    e.drainingSince.delete(r.id);
    this.reports.forget(r.id);
  }

  private gangOf(r: Replica) {
    if (!r.gangId) return undefined;
    try {
      return this.gangs.get(r.gangId);
    } catch {
      return undefined;
    }
  }

  private async persist(e: Entry, event: string, message: string, attributes: Record<string, string> = {}): Promise<void> {
    const ops = [{ type: 'put' as const, key: RGS_PREFIX + e.rg.name, value: ReplicaGroup.encode(e.rg).finish() }];
    if (!event) {
      await this.writer.txn(ops);
      return;
    }
    const staged = this.events.stage(event, { message, attributes: { group: e.rg.name, ...attributes } });
    try {
      await this.writer.txn([...ops, staged.op]);
      staged.settle(true);
    } catch (err) {
      staged.settle(false);
      throw err;
    }
  }
}

/** Removal order: replicas not ready first, then the newest. */
function byNotReadyThenNewest(a: Replica, b: Replica): number {
  return Number(a.state === 'ready') - Number(b.state === 'ready') || b.createdAtMs - a.createdAtMs;
}

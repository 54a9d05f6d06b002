/**
 * The replica group controller: keeps `desired` replicas of a group's current
 * revision running, each one placement group + one gang, and publishes the
 * live membership routers send traffic to. What to do is decided by the pure
 * planner (rg-plan.ts, which also holds the replica lifecycle); this file
 * stores records and acts (rg-executor.ts does a plan's I/O).
 *
 * One commit path: every write of a group's record goes through the shared
 * GroupCommit (group-commit.ts), and memory follows the store, never the
 * reverse. The store holds one key for the group and one per replica
 * (rg-store.ts): a write puts only the keys whose value changed, all in the
 * commit of the call that changed them. A call computes the next record from
 * the stored one; only once it is durable (the commit's after()) does the
 * entry take it, the membership move on, the failure and drain clocks
 * start, and a reconcile get kicked.
 * A write that fails rejects the call and changes nothing: get()/list(),
 * watchers, events and agents see only what the store holds. Writes of one
 * group are serialised (one at a time per name), so a reconcile and an
 * apply never compute from the same record and overwrite each other.
 *
 * Soft state, kept in memory only (as before): when each replica started
 * draining, when replicas failed (the replacement budget), and the
 * autoscaler's timers, which ride along with the next write of the group's
 * own key.
 *
 * A stored group this head cannot decode or validate is quarantined
 * (quarantine.ts, rg-quarantine.ts): shown by get and list, its gangs held
 * and its placement groups claimed, never reconciled; delete lets go of what
 * it holds, then deletes its keys.
 */
import type { Identity } from '@muster/contracts';
import { ErrorCode, MusterError, type Logger, type NatsConnection, randomId } from '@muster/common';
import { ReplicaGroup, type Membership, type NatsAccess, type NodeUsage, type ReplicaGroupSpec } from '@muster/proto';
import type { EventLog } from '../events/event-log.js';
import type { StateWriter } from '../state/fence.js';
import { readAll } from '../state/paged.js';
import type { KeyValue } from '../state/store.js';
import { decide, type AutoscalingPolicy, type Decision, type LoadSample } from '../autoscaler/index.js';
import { GroupCommit } from './group-commit.js';
import { LoadReports, type DroppedKind } from './load-reports.js';
import type { Entry } from './rg-entry.js';
import { RgExecutor, type GangsPort, type PgsPort } from './rg-executor.js';
import { MembershipFeed } from './rg-membership.js';
import { FAILURE_WINDOW_MS, planReplicaGroup, replacementBudget } from './rg-plan.js';
import { appliedRecord, autoscaledRecord, autoscalerMemory, autoscalerState, byWhom, deletingRecord, scaledRecord, type RecordEvent } from './rg-records.js';
import { modelConflicts, parseRgSpec, policyOf, type ValidRgSpec } from './rg-spec.js';
import { RGS_PREFIX, assemble, bounded, groupKey, keysOf, parseKey, replicasPrefix, storeOps, type StoreOps, type StoredGroup } from './rg-store.js';
import { heldBy, letGo, quarantinedError, quarantinedGroup, shownQuarantined } from './rg-quarantine.js';
import { Quarantine, type Quarantined } from './quarantine.js';

export { RGS_PREFIX } from './rg-store.js';

export class ReplicaGroupController {
  private readonly groups = new Map<string, Entry>();
  /** Stored groups this head cannot read: shown, holding their gangs and placement groups, never reconciled (rg-quarantine.ts). */
  private readonly quarantine: Quarantine<StoredGroup>;
  /** Group name → the last write queued for it (writes of one group run one at a time). */
  private readonly tails = new Map<string, Promise<unknown>>();
  private readonly reports: LoadReports;
  private readonly commits: GroupCommit;
  private readonly executor: RgExecutor;
  private readonly autoscaleTimer: NodeJS.Timeout;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly writer: StateWriter,
    private readonly pgs: PgsPort,
    private readonly gangs: GangsPort,
    private readonly events: EventLog,
    private readonly log: Logger,
    /** The data plane; `onReportDropped` counts load and demand reports, and agents' usage entries, refused. */
    private readonly nats: { conn: NatsConnection; access: NatsAccess; onReportDropped?: (kind: DroppedKind, n?: number) => void } | undefined,
    /** Whether a node is being drained (the node registry). */
    private readonly isDraining: (nodeId: string) => boolean = () => false,
  ) {
    gangs.onChange((g) => {
      const group = g.spec?.replicaGroup;
      if (group) this.kick(group);
    });
    this.reports = new LoadReports(nats && { conn: nats.conn, prefix: nats.access.subjectPrefix }, log, undefined, nats?.onReportDropped, (group, replicaId, node) => this.runsOn(gangs, group, replicaId, node));
    this.commits = new GroupCommit(writer, log, { name: 'replica groups', recover: () => this.recover() });
    this.quarantine = new Quarantine(log, 'replica group');
    this.executor = new RgExecutor(pgs, gangs, log, nats?.access, this.reports, isDraining, (e, next, then) => this.write(e, next, undefined, then));
    // Drains and deadlines progress with time, not only with events.
    this.timer = setInterval(() => {
      for (const name of this.groups.keys()) this.kick(name);
    }, 500);
    this.timer.unref();
    // Autoscaling decisions: at least every 250 ms (docs/autoscaling.md).
    this.autoscaleTimer = setInterval(() => {
      for (const [name, e] of this.groups) {
        // At most one decision queued per group: a busy group's turns do not pile up behind its writes.
        if (!e.policy || e.autoscaleQueued) continue;
        e.autoscaleQueued = true;
        void this.serial(name, () => {
          e.autoscaleQueued = false;
          return this.autoscale(name);
        }).catch((err: unknown) => {
          e.autoscaleQueued = false;
          this.log.error({ group: name, err: (err as Error).message }, 'autoscaling decision failed');
        });
      }
    }, 250);
    this.autoscaleTimer.unref();
  }

  /** Whether `replicaId` is a replica in `group`'s record whose gang has a rank on `node` (whose agent may report its use). */
  private runsOn(gangs: GangsPort, group: string, replicaId: string, node: string): boolean {
    const replicas = this.groups.get(group)?.rg.replicas;
    const gangId = replicas && gangOfReplica(replicas, replicaId);
    if (!gangId) return false;
    try {
      return gangs.get(gangId).ranks.some((r) => r.nodeId === node);
    } catch {
      return false;
    }
  }

  /** A node's usage report from its agent's stream, `nodeId` being the node that stream registered (load-reports.ts). */
  nodeUsage(nodeId: string, report: NodeUsage): void {
    this.reports.nodeUsage(nodeId, report);
  }

  /** A node was drained or uncordoned: every group looks at its replicas again now. */
  nodesChanged(): void {
    for (const name of this.groups.keys()) this.kick(name);
  }

  /** Whether `pgId` is a replica's placement group (replicas move off draining nodes here, make-before-break). */
  /** Whether a replica record still names `gangId` (its gang is not collected before the group lets go). */
  holdsGang(gangId: string): boolean {
    for (const e of this.groups.values()) if (e.rg.replicas.some((r) => r.gangId === gangId)) return true;
    for (const q of this.quarantine.values()) if (heldBy(q).gangs.includes(gangId)) return true;
    return false;
  }

  owns(pgId: string): boolean {
    for (const e of this.groups.values()) if (e.making.has(pgId) || e.rg.replicas.some((r) => r.placementGroupId === pgId)) return true;
    // A quarantined group's placement groups are claimed and left where they are (not moved off a draining node).
    for (const q of this.quarantine.values()) {
      if (!heldBy(q).pgs.includes(pgId)) continue;
      this.quarantine.skipped(q.id, 'move off a draining node', { pg: pgId });
      return true;
    }
    return false;
  }

  close(): void {
    clearInterval(this.timer);
    clearInterval(this.autoscaleTimer);
    this.reports.close();
  }

  /** Reads every group and replica key (paged), then reconciles each group. */
  async load(): Promise<void> {
    const { kvs } = await readAll(this.writer.store, RGS_PREFIX);
    const { orphans, quarantined } = this.adoptAll(kvs);
    const fresh = this.quarantine.replace(quarantined);
    for (const name of this.groups.keys()) this.kick(name);
    if (orphans.length === 0 && fresh.length === 0) return;
    // Replica keys of a group that has no record (a deletion cut short): nothing refers to them.
    for (const key of orphans) this.commits.delete(key);
    // A group this head cannot read keeps its keys (rg-store.ts); an event says so where operators look.
    for (const q of fresh) {
      this.commits.stage(this.events.stage('rg.quarantined', { message: `replica group ${q.id}: ${shownQuarantined(q).message}`, attributes: { group: q.id, key: q.key, reason: q.why } }));
    }
    await this.commits.flush().catch((err: unknown) => this.log.warn({ keys: orphans.length, err: (err as Error).message }, 'could not delete replica keys of deleted groups; the next leader tries again'));
  }

  // ── API ────────────────────────────────────────────────────────────────

  /** `by`: who asked (an API caller), named in the event. */
  async apply(wire: ReplicaGroupSpec | undefined, by?: Identity): Promise<ReplicaGroup> {
    const spec = parseRgSpec(wire);
    return this.serial(spec.name, async () => {
      const q = this.quarantine.find(spec.name);
      if (q) throw quarantinedError(q, 'apply');
      const e = this.groups.get(spec.name);
      if (e?.rg.deleting) throw new MusterError(ErrorCode.FAILED_PRECONDITION, `replica group ${spec.name} is being deleted`);
      const taken = modelConflicts(spec, [...this.groups.values()].map((o) => ({ name: o.rg.name, models: o.spec.models, deleting: o.rg.deleting })));
      if (taken.length) throw new MusterError(ErrorCode.ALREADY_EXISTS, `models: ${taken.join(', ')}: a model name routes to one group; remove it there first`, { details: { field: 'models' } });
      const { rg, stableSpec, event } = appliedRecord(e, spec, Date.now());
      const entry = e ?? this.entry(rg, spec, undefined);
      await this.write(entry, rg, byWhom(event, by), () => {
        Object.assign(entry, { spec, policy: policyOf(spec), stableSpec });
        this.groups.set(spec.name, entry);
      });
      this.kick(spec.name);
      return this.get(spec.name);
    });
  }

  get(name: string): ReplicaGroup {
    const e = this.groups.get(name);
    const q = e ? undefined : this.quarantine.find(name);
    if (q) return shownQuarantined(q);
    if (!e) throw new MusterError(ErrorCode.NOT_FOUND, `no replica group "${name}"`);
    return e.autoscaler ? { ...e.rg, autoscaler: e.autoscaler } : e.rg;
  }

  list(): ReplicaGroup[] {
    return [...new Set([...this.groups.keys(), ...[...this.quarantine.values()].map((q) => q.id)])].sort().map((n) => this.get(n));
  }

  /** Whether the group `name` is quarantined (its stored record cannot be read by this head). */
  isQuarantined(name: string): boolean {
    return !this.groups.has(name) && this.quarantine.has(name);
  }

  /**
   * What GetReplicaGroup shows beside the record: each replica's last load
   * report, and — for an autoscaled group — the decision the autoscaler
   * would make now, from the inputs of its next tick (decide() is pure:
   * nothing is stored or changed).
   */
  live(name: string): { loads: Map<string, Omit<LoadSample, 'replicaId'>>; policy: AutoscalingPolicy | undefined; decision: Decision | undefined } {
    if (this.isQuarantined(name)) return { loads: new Map(), policy: undefined, decision: undefined };
    const e = this.groups.get(name);
    if (!e) throw new MusterError(ErrorCode.NOT_FOUND, `no replica group "${name}"`);
    const loads = new Map<string, Omit<LoadSample, 'replicaId'>>();
    for (const r of e.rg.replicas) {
      const l = this.reports.of(name, r.id);
      if (l) loads.set(r.id, l);
    }
    return { loads, policy: e.policy, decision: e.policy ? this.decideNow(e, e.policy, Date.now()) : undefined };
  }

  private decideNow(e: Entry, policy: AutoscalingPolicy, now: number): Decision {
    const { samples, demand } = this.reports.window(e.rg.name, e.rg.replicas.map((r) => r.id), policy.lookbackMs, now);
    const state = autoscalerState(e.autoscaler);
    const ready = e.rg.replicas.filter((r) => r.state === 'ready').length;
    return decide(policy, { nowMs: now, current: e.rg.desired, ready, samples, demand }, state);
  }

  async scale(name: string, replicas: number, by?: Identity): Promise<ReplicaGroup> {
    return this.serial(name, async () => {
      const e = this.entryOf(name, 'scale');
      const { min, max } = e.spec.replicas;
      if (e.spec.autoscaling) {
        throw new MusterError(ErrorCode.FAILED_PRECONDITION, `replica group ${name} is autoscaled between ${min} and ${max}; change its bounds or its policy with apply instead`, { details: { field: 'replicas' } });
      }
      if (!Number.isInteger(replicas) || replicas < min || replicas > max) {
        throw new MusterError(ErrorCode.INVALID_ARGUMENT, `replicas: ${replicas} is outside ${name}'s bounds min ${min} … max ${max} (change them with apply)`, { details: { field: 'replicas' } });
      }
      const { rg, event } = scaledRecord(e.rg, replicas);
      await this.write(e, rg, byWhom(event, by));
      this.kick(name);
      return this.get(name);
    });
  }

  async delete(name: string, by?: Identity): Promise<ReplicaGroup> {
    return this.serial(name, async () => {
      const q = this.groups.has(name) ? undefined : this.quarantine.find(name);
      if (q) return this.deleteQuarantined(q, by);
      const e = this.entryOf(name);
      const { rg, event } = deletingRecord(e.rg);
      await this.write(e, rg, byWhom(event, by));
      this.kick(name);
      return e.rg;
    });
  }

  /** The live membership now, then on every change, until `signal` aborts. */
  async *watch(name: string, signal: AbortSignal): AsyncGenerator<Membership> {
    yield* this.entryOf(name, 'WatchMembership').membership.watch(signal);
  }

  // ── reconcile ──────────────────────────────────────────────────────────

  private entryOf(name: string, call = 'this call'): Entry {
    const e = this.groups.get(name);
    const q = e ? undefined : this.quarantine.find(name);
    if (q) throw quarantinedError(q, call);
    if (!e) throw new MusterError(ErrorCode.NOT_FOUND, `no replica group "${name}"`);
    return e;
  }

  /** A quarantined group is deleted: what it holds first (rg-quarantine.ts), then its keys, with an `rg.deleted` event. */
  private async deleteQuarantined(q: Quarantined<StoredGroup>, by?: Identity): Promise<ReplicaGroup> {
    await letGo(q, this.gangs, this.pgs);
    // Every key under its replicas prefix (unreadable ones too), then the group key.
    this.commits.deletePrefix(replicasPrefix(q.id));
    this.commits.delete(q.key);
    const event = byWhom({ kind: 'rg.deleted', message: `quarantined replica group ${q.id} deleted by hand: its gangs were stopped, its placement groups removed, its keys deleted` }, by);
    this.commits.stage(this.events.stage(event.kind, { message: event.message, attributes: { group: q.id, ...event.attributes } }));
    this.commits.after(() => this.quarantine.delete(q.id));
    await this.commits.flush();
    return { ...shownQuarantined(q), deleting: true, desired: 0, message: event.message };
  }

  private entry(rg: ReplicaGroup, spec: ValidRgSpec, stableSpec: ValidRgSpec | undefined, stored?: StoredGroup): Entry {
    const membership = new MembershipFeed(rg.name, rg.membershipVersion);
    return {
      rg, keyed: stored?.keyed ?? new Map(), inline: stored?.inline ?? false, spec, policy: policyOf(spec), stableSpec, membership,
      autoscaler: rg.autoscaler, drainingSince: new Map(), failures: [], making: new Set(), running: false, again: false, autoscaleQueued: false,
    };
  }

  /** Adopts every group found in `kvs` (group and replica keys, any order); returns those to quarantine. */
  private adoptAll(kvs: readonly KeyValue[]): ReturnType<typeof assemble> & { quarantined: Map<string, Quarantined<StoredGroup>> } {
    const found = assemble(kvs);
    if (found.skipped.length > 0) this.log.error({ keys: found.skipped.slice(0, 10), count: found.skipped.length }, 'stored replica group keys could not be read; left out');
    const quarantined = new Map<string, Quarantined<StoredGroup>>();
    // A group record that does not decode: its replica keys (which placement groups and gangs it holds) are kept.
    for (const stray of found.strays) quarantined.set(stray.rg.name, quarantinedGroup(stray, 'its record does not decode', false));
    // A group with a replica key that does not decode is not run either: it would replace a replica it cannot see.
    const broken = new Map<string, string>();
    for (const key of found.skipped) {
      const at = parseKey(key);
      if (at?.replica !== undefined && !broken.has(at.group)) broken.set(at.group, key);
    }
    for (const stored of found.groups) {
      const badKey = broken.get(stored.rg.name);
      const q = badKey ? quarantinedGroup(stored, `its replica key ${badKey} does not decode`, true) : this.adopt(stored);
      if (q) quarantined.set(q.id, q);
    }
    return { ...found, quarantined };
  }

  /** A stored group becomes (or replaces) the group's entry; one this head cannot validate is returned, to be quarantined. */
  private adopt(stored: StoredGroup): Quarantined<StoredGroup> | undefined {
    const { rg, keyed, inline } = stored;
    try {
      // Stored: readable under the record bounds it was written with (gang-spec.ts parseGangSpec).
      const spec = parseRgSpec(rg.spec, { stored: true });
      const stableSpec = rg.stableSpec ? parseRgSpec(rg.stableSpec, { stored: true }) : undefined;
      const e = this.groups.get(rg.name);
      if (!e) {
        this.groups.set(rg.name, this.entry(rg, spec, stableSpec, stored));
        return undefined;
      }
      Object.assign(e, { rg, keyed, inline, spec, stableSpec, policy: policyOf(spec) });
      e.membership.observeStored(rg.membershipVersion);
      return undefined;
    } catch (err) {
      return quarantinedGroup(stored, (err as Error).message, true);
    }
  }

  /** Runs `fn` after every write queued for `name` before it. */
  private serial<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.tails.get(name) ?? Promise.resolve()).then(fn);
    const tail = run.catch(() => undefined);
    this.tails.set(name, tail);
    // `tail` never rejects (caught above): nothing to catch.
    tail.then(() => {
      if (this.tails.get(name) === tail) this.tails.delete(name);
    }, () => undefined);
    return run;
  }

  private kick(name: string): void {
    const e = this.groups.get(name);
    if (!e) return;
    if (e.running) {
      e.again = true;
      return;
    }
    e.running = true;
    (async () => {
      do {
        e.again = false;
        try {
          await this.serial(name, () => this.reconcile(name));
        } catch (err) {
          this.log.error({ group: name, err: (err as Error).message }, 'replica group reconcile failed; retrying');
        }
      } while (e.again);
      e.running = false;
    })().catch((err: unknown) => {
      e.running = false;
      this.log.error({ group: name, err: (err as Error).message }, 'replica group reconcile loop threw; the next change runs it again');
    });
  }

  /** One pass: plan on the stored record, store the plan's record, then act on it. */
  private async reconcile(name: string): Promise<void> {
    const e = this.groups.get(name);
    if (!e) return;
    const now = Date.now();
    // Draining before this leader saw it (a failover): its deadline counts from now.
    for (const r of e.rg.replicas) if (r.state === 'draining' && !e.drainingSince.has(r.id)) e.drainingSince.set(r.id, now);
    const plan = planReplicaGroup({
      rg: e.rg, spec: e.spec, stableSpec: e.stableSpec, views: this.executor.views(e.rg), drainingSince: e.drainingSince, failures: e.failures,
      listening: this.reports.listening, subjectPrefix: this.nats?.access.subjectPrefix || 'muster', nowMs: now, newId: () => randomId('r', 8),
    });
    pruneMemory(e, now);
    const membership = e.membership.propose(plan.next, e.spec.rollout.canaryWeight);
    if (plan.actions.some((a) => a.kind === 'delete')) return this.forget(e, membership);
    // A new membership version is stored before anyone hears of it, so the next leader numbers on from it.
    const next = membership ? { ...plan.next, membershipVersion: membership.version } : plan.next;
    // Written only when a key would change (storeOps compares what would be stored): no empty commits.
    const stored = this.opsOf(e, next);
    if (stored.ops.puts.length > 0 || stored.ops.deletes.length > 0 || stored.ops.clear !== undefined) {
      await this.store(e, stored, undefined, () => {
        for (const a of plan.actions) {
          if (a.kind === 'fail') {
            e.failures.push(now);
            this.log.warn({ group: name, replica: a.replicaId, reason: a.reason }, 'replica failed');
          }
          if (a.kind === 'drain') e.drainingSince.set(a.replicaId, now);
        }
        if (membership) e.membership.commit(membership);
      });
    }
    if (await this.executor.act(e, plan.actions)) this.kick(name);
  }

  /** The group is deleted and empty: its keys go (any replica key left too), then the entry. */
  private async forget(e: Entry, membership: Membership | undefined): Promise<void> {
    for (const key of keysOf(e)) this.commits.delete(key);
    this.commits.stage(this.events.stage('rg.deleted', { message: `replica group ${e.rg.name} deleted`, attributes: { group: e.rg.name } }));
    this.commits.after(() => {
      this.groups.delete(e.rg.name);
      this.reports.forgetGroup(e.rg.name);
      if (membership) e.membership.commit(membership);
    });
    await this.commits.flush();
  }

  /** One autoscaling decision; a change is stored with an `rg.autoscale` event naming its inputs. */
  private async autoscale(name: string): Promise<void> {
    const e = this.groups.get(name);
    const policy = e?.policy;
    if (!e || !policy || e.rg.deleting) return;
    const d = this.decideNow(e, policy, Date.now());
    if (!d.changed) {
      e.autoscaler = autoscalerMemory(d);
      return;
    }
    const { rg, event } = autoscaledRecord(e.rg, d);
    await this.write(e, rg, event, () => (e.autoscaler = rg.autoscaler));
    this.kick(name);
  }

  /**
   * Stores `next` as the group's record (with `event`, in the same write):
   * the keys of the replicas that changed, came or went, and the group's key
   * when its own fields changed (rg-store.ts). Once durable the entry takes
   * it and `then` runs. Rejects, changing nothing, when the write fails.
   */
  private write(e: Entry, next: ReplicaGroup, event?: RecordEvent, then?: () => void): Promise<void> {
    return this.store(e, this.opsOf(e, next), event, then);
  }

  /** write() with its ops computed already (each replica is encoded once per write). */
  private store(e: Entry, { record, ops }: { record: ReplicaGroup; ops: StoreOps }, event?: RecordEvent, then?: () => void): Promise<void> {
    if (ops.clear) this.commits.deletePrefix(ops.clear);
    for (const key of ops.deletes) this.commits.delete(key);
    for (const [key, value] of ops.puts) this.commits.put(key, () => value);
    if (event) this.commits.stage(this.events.stage(event.kind, { message: event.message, attributes: { group: record.name, ...event.attributes } }));
    this.commits.after(() => {
      Object.assign(e, { rg: record, keyed: ops.keyed, inline: false });
      then?.();
    });
    return this.commits.flush();
  }

  /** What storing `next` would write: the record as stored and the ops (rg-store.ts). */
  private opsOf(e: Entry, next: ReplicaGroup): { record: ReplicaGroup; ops: StoreOps } {
    // The autoscaler's soft timers ride along when the group key is written, unless `next` is the autoscaler's own decision.
    const record: ReplicaGroup = bounded(next.autoscaler !== e.rg.autoscaler ? next : { ...next, autoscaler: e.autoscaler ?? next.autoscaler });
    const isNew = !this.groups.has(record.name);
    return { record, ops: storeOps(isNew ? undefined : e, record) };
  }

  /**
   * A commit failed. Memory here only takes what was stored, so it did not
   * run ahead; each group is still read back (under its own turn, after what
   * it is doing), in case a write failed at the store after taking effect.
   */
  private async recover(): Promise<void> {
    for (const name of this.groups.keys()) {
      void this.serial(name, async () => {
        const kv = await this.writer.store.get(groupKey(name));
        if (!kv) {
          this.groups.delete(name);
          return;
        }
        const { kvs } = await readAll(this.writer.store, replicasPrefix(name));
        this.adoptAll([kv, ...kvs]);
      }).catch((err: unknown) => this.writer.abandon(`replica group ${name} could not be read back after a failed commit: ${(err as Error).message}`));
    }
  }
}

/**
 * The group's soft memory stays bounded however long it runs and however
 * many replicas come and go: failure times inside the replacement window,
 * at most one more than the budget (enough to know it is spent); drain
 * starts only of replicas the record still has draining. (The record's own
 * history is bounded by the planner: FAILED_KEPT failed replicas.)
 */
export function pruneMemory(e: Pick<Entry, 'failures' | 'drainingSince' | 'rg' | 'spec'>, nowMs: number): void {
  e.failures = e.failures.filter((t) => t > nowMs - FAILURE_WINDOW_MS).slice(-(replacementBudget(e.spec) + 1));
  const draining = new Set(e.rg.replicas.filter((r) => r.state === 'draining').map((r) => r.id));
  for (const id of e.drainingSince.keys()) if (!draining.has(id)) e.drainingSince.delete(id);
}

/**
 * Replica id → gang id of one version of a group's replica list, made once per
 * version (records are replaced, never edited in place): resource reports
 * arrive once a second per replica and node, so a scan of the list per
 * report would cost replicas² a second in a large group.
 */
const gangsByReplica = new WeakMap<readonly { id: string; gangId: string }[], Map<string, string>>();
function gangOfReplica(replicas: readonly { id: string; gangId: string }[], replicaId: string): string | undefined {
  let byId = gangsByReplica.get(replicas);
  if (!byId) gangsByReplica.set(replicas, (byId = new Map(replicas.map((r) => [r.id, r.gangId]))));
  return byId.get(replicaId);
}

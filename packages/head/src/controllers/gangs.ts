/**
 * The gang controller: launches the ranks of a TP×PP replica on its
 * placement group, watches them as one, restarts them as one.
 *
 * Lifecycle (the one numbered table; gang-plan.ts cites its steps). The record
 * at /muster/gangs/<id> is written on every change, rank phases included:
 *
 *   1. launch, spec valid                       → PENDING     (waits for its placement group)
 *   2. placement group CREATED                  → STARTING    attempt + 1, ranks planned, agents told
 *   3. every rank ready (rank 0 after its warm-up, gang-warmup.ts) → READY
 *   4. a rank exits, fails a probe, misses its startup deadline, or its node dies
 *      (STARTING or READY)                      → RESTARTING  every rank of the attempt stopped;
 *                                                             first/last failure recorded
 *   5. RESTARTING, all ranks gone, backoff over → STARTING    (2 again; same reservation unless
 *                                                             the group was re-placed: then PENDING)
 *   6. 4 with the restart budget spent          → FAILED      (ranks stopped; first failure kept)
 *   7. stop                                     → STOPPING → STOPPED once every rank is gone
 *   8. STARTING or READY, and a rank runs on a node its placement group no
 *      longer holds (the group was moved off a draining node: docs/placement-groups.md
 *      row 8)                                   → RESTARTING  every rank stopped, no backoff, not
 *                                                             counted against maxRestarts (a move is
 *                                                             not a failure); then 5: it waits for
 *                                                             the group's new placement and starts there
 *      (a head that restarts during a move counts that one restart: the
 *      "moving" mark is not persisted)
 *   9. PENDING (or 5), and the group was removed or the ranks cannot be laid
 *      out on it (a fixed port taken)          → FAILED      (first failure: why)
 *
 * Rank phases come from the agents (prestart, started, ready, stopping,
 * exited). An agent that registers sends the shards it runs; ranks the head
 * expects there but that are missing count as failed, and shards of unknown
 * gangs or old attempts are stopped — never orphaned, never doubled.
 *
 * Write path: every event (a call, an agent's report, a node's death, a group
 * change, a timer) is decided by the pure planner (gang-plan.ts) on the
 * working record, and the result goes through one GroupCommit: the record is
 * written with the step's events in one fenced transaction, and only once
 * that is durable are agents told, timers armed, listeners called and
 * waiters woken. Answers (get, list, wait, locate, onChange) show the last
 * durable record. A failed write is reported to the caller (launch, stop, an
 * agent's report that changes the gang's state: its stream is refused and
 * the agent re-registers) and the controller reloads what the store holds;
 * nothing decided on the lost memory is told. Events that arrive during that
 * reload wait for it. A report that only moves a rank's phase is written
 * without the agent waiting for it (its heartbeats share the stream).
 * On head restart (and after such a reload, a second later) the records are
 * read back and decided again: ranks on nodes that are not alive are lost,
 * groups that were placed, moved or removed are followed; RESTARTING gangs
 * restart when their stored backoff is over, STARTING ones get a fresh
 * backstop deadline.
 *
 * Finished gangs (STOPPED, FAILED) are kept by a retention policy
 * (gang-gc.ts: the newest --finished-gangs-kept, none older than
 * --finished-gang-max-age-ms, none a replica group still names) and then
 * deleted through the same GroupCommit, each with a `gang.collected` event;
 * the gang leaves memory (and `gang ls`) once its delete is durable, and no
 * event is decided on it meanwhile.
 */
import { checkLength, ErrorCode, MusterError, traceFields, tracingOn, type Context, type Logger, randomId } from '@muster/common';
import { Gang, GangState as G, NodeState, PlacementGroupState as P, type GangSpec, type HeadMessage, type ShardStatusReport, type TraceContext } from '@muster/proto';
import type { NodeRegistry } from '../cluster/registry.js';
import type { EventLog } from '../events/event-log.js';
import type { StateWriter } from '../state/fence.js';
import { readAll } from '../state/paged.js';
import { GroupCommit } from './group-commit.js';
import { CollectTimer, stageCollection, stagePlan, type PlanSink } from './gang-executor.js';
import { stageWarmedUp, startupBudgetMs } from './gang-warmup.js';
import { DEFAULT_GANG_RETENTION, isFinished, planCollection, type GangRetention } from './gang-gc.js';
import { DEADLINE_SLACK_MS, LIVE, planGang, planLaunch, type GangContext, type GangEvent, type GangPlan } from './gang-plan.js';
import { checkBundles, DEFAULT_PORT_RANGE, parseGangSpec, planLayout, portsInUse, wireGangSpec, type NodeLookup, type ValidGangSpec, type PortRange } from './gang-spec.js';
import type { PlacementGroupController } from './placement-groups.js';
import { ChangeWaiters } from './waiters.js';

export const GANGS_PREFIX = '/muster/gangs/';
const REDERIVE_AFTER_MS = 1_000;

interface Entry {
  /** The working record: what the planner decides on; may be ahead of the store. */
  gang: Gang;
  /** The last record known durable: what answers show (undefined until the first write is). */
  shown: Gang | undefined;
  spec: ValidGangSpec;
  moving: boolean;
  /**
   * The trace of the call that launched it, when traced: its W3C fields, not the call's context
   * (which would hold the call's ended span for the gang's life). Memory only: its first launch
   * orders carry it (gang-executor.ts).
   */
  trace?: TraceContext | undefined;
  timer?: NodeJS.Timeout | undefined;
  /** Its delete is in the next commit (gang-gc.ts): no event is decided on it any more. */
  collecting?: boolean;
}

export class GangController {
  private gangs = new Map<string, Entry>();
  private readonly waiters = new ChangeWaiters();
  private readonly listeners: Array<(g: Gang) => void> = [];
  private readonly commits: GroupCommit;
  private readonly sink: PlanSink;
  /** The reload under way after a failed commit. */
  private reloading: Promise<void> | undefined;
  /** The pass that decides again after a reload (`recover`). */
  private retry: NodeJS.Timeout | undefined;
  private readonly gc: CollectTimer;
  private closed = false;
  /** Whether a gang's owner (a replica group) still names it: such a gang is not collected. */
  private held: (gangId: string) => boolean = () => false;

  constructor(
    private readonly writer: StateWriter,
    private readonly registry: NodeRegistry,
    private readonly pgs: PlacementGroupController,
    private readonly events: EventLog,
    private readonly log: Logger,
    private readonly portRange: PortRange = DEFAULT_PORT_RANGE,
    private readonly retention: GangRetention = DEFAULT_GANG_RETENTION,
    /** The NATS variables of a replica group's ranks, minted per launch order (never stored with the gang). */
    replicaCredentials?: (group: string) => Record<string, string>,
  ) {
    this.commits = new GroupCommit(writer, log, { name: 'gangs', recover: () => this.recover() });
    this.sink = { commits: this.commits, events, send: (nodeId, msg) => this.send(nodeId, msg), replicaCredentials };
    this.gc = new CollectTimer(() => this.collect(), log);
    registry.onTransition((kind, node) => {
      if (kind === 'node.dead') this.background((e) => this.apply(e, { type: 'nodeLost', nodeId: node.nodeId }));
    });
    pgs.onChange((pgId) => this.background((e) => e.gang.placementGroupId === pgId && this.apply(e, { type: 'placement' })));
  }

  /** Reads every gang back and decides what happened while no one watched (head start). */
  async load(): Promise<void> {
    await this.reload();
    this.rederive();
    this.gc.start(this.retention);
  }

  /** Who owns gangs (the replica group controller): a gang it still names is not collected. */
  setOwner(held: (gangId: string) => boolean): void {
    this.held = held;
  }

  /**
   * Deletes the finished gangs the retention policy no longer keeps
   * (gang-gc.ts), each with a `gang.collected` event, in one commit; they
   * leave memory once it is durable. Resolves with how many; rejects if the
   * write failed (then nothing was forgotten).
   */
  async collect(nowMs = Date.now()): Promise<number> {
    await this.reloading;
    if (this.closed) return 0;
    // Decided on durable records, of gangs whose memory is finished too (nothing after the finish is in flight).
    const shown = [...this.gangs.values()].flatMap((e) => (!e.collecting && e.shown && isFinished(e.gang) ? [e.shown] : []));
    const due = planCollection(shown, this.held, this.retention, nowMs);
    for (const c of due) {
      const e = this.gangs.get(c.gang.id);
      if (!e) continue;
      e.collecting = true;
      stageCollection(this.sink, GANGS_PREFIX + c.gang.id, e.spec.name, c, () => {
        if (this.gangs.get(c.gang.id) !== e) return; // replaced by a reload meanwhile
        clearTimeout(e.timer);
        this.gangs.delete(c.gang.id);
      });
    }
    if (due.length > 0) await this.flush();
    return due.length;
  }

  /** Stops the timers (the term ended; the next leader loads the gangs as stored). */
  close(): void {
    this.closed = true;
    this.gc.close();
    this.stopTimers();
  }

  private stopTimers(): void {
    clearTimeout(this.retry);
    for (const e of this.gangs.values()) clearTimeout(e.timer);
  }

  /** Memory becomes what the store holds, in one swap (no event ever sees a half-loaded map); timers are armed again. */
  private async reload(): Promise<void> {
    const { kvs } = await readAll(this.writer.store, GANGS_PREFIX);
    const loaded = new Map<string, Entry>();
    for (const kv of kvs) {
      const gang = Gang.decode(kv.value);
      try {
        loaded.set(gang.id, { gang, shown: gang, spec: parseGangSpec(gang.spec, { stored: true }), moving: false });
      } catch (e) {
        this.log.error({ gang: gang.id, err: (e as Error).message }, 'stored gang has an invalid spec; left out');
      }
    }
    this.stopTimers();
    this.gangs = loaded;
    const now = Date.now();
    for (const e of loaded.values()) {
      const g = e.gang;
      if (g.state === G.GANG_STATE_RESTARTING && g.nextRestartAtMs > now) this.arm(e, { type: 'backoffOver' }, g.nextRestartAtMs);
      // The backstop deadline gets a full window again: the agents re-report their ranks first.
      if (g.state === G.GANG_STATE_STARTING) this.arm(e, { type: 'deadline', attempt: g.attempt }, now + startupBudgetMs(e.spec) + DEADLINE_SLACK_MS);
    }
  }

  /**
   * Decides again what the events lost with memory would have decided: ranks
   * on nodes that are not alive are lost (4), groups that were placed, moved
   * or removed are followed (2, 5, 8, 9).
   */
  private rederive(): void {
    const alive = new Set(this.registry.list(NodeState.NODE_STATE_ALIVE).map((n) => n.nodeId));
    for (const e of this.gangs.values()) {
      for (const nodeId of new Set(e.gang.ranks.map((r) => r.nodeId))) if (!alive.has(nodeId)) this.apply(e, { type: 'nodeLost', nodeId });
      this.apply(e, { type: 'placement' });
    }
    this.commits.kick();
  }

  // ── API ────────────────────────────────────────────────────────────────

  /**
   * A launch repeating the `requestId` of a live gang of that name returns it (idempotent retry).
   * `trace`: the launching call's context, passed by the API (gang-service.ts); never the ambient
   * one, which for a replica group's gangs is whatever call kicked its controller.
   */
  async launch(wire: GangSpec | undefined, requestId = '', trace?: Context): Promise<Gang> {
    await this.reloading;
    const spec = parseGangSpec(wire);
    checkLength('request_id', requestId, 'refLength'); // stored with the gang
    if (requestId !== '') {
      const same = [...this.gangs.values()].find((e) => e.spec.name === spec.name && e.gang.requestId === requestId && LIVE.has(e.gang.state));
      if (same) return this.durable(same);
    }
    let pg;
    try {
      pg = this.pgs.get(spec.placementGroup);
    } catch {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid gang spec: placementGroup: no placement group "${spec.placementGroup}"`, { details: { field: 'placementGroup' } });
    }
    checkBundles(spec, pg);
    // Placed already: a dry run of the layout refuses port clashes now, before anything starts.
    if (pg.state === P.PLACEMENT_GROUP_STATE_CREATED) planLayout(spec, pg, this.nodeMap(), this.usedPorts(''), this.portRange);
    for (const e of this.gangs.values()) {
      if (!LIVE.has(e.gang.state)) continue;
      if (e.spec.name === spec.name) throw new MusterError(ErrorCode.ALREADY_EXISTS, `a gang named "${spec.name}" exists (${e.gang.id})`, { details: { field: 'name' } });
      if (e.gang.placementGroupId === pg.id) throw new MusterError(ErrorCode.ALREADY_EXISTS, `placement group ${pg.spec?.name} already runs gang ${e.spec.name}`, { details: { field: 'placementGroup' } });
    }
    const first = planLaunch(spec, wireGangSpec(spec), pg, randomId('gang', 10), requestId, Date.now());
    const e: Entry = { gang: first.gang, shown: undefined, spec, moving: false, trace: trace && tracingOn() ? traceFields(trace) : undefined };
    this.gangs.set(e.gang.id, e);
    this.execute(e, first);
    this.apply(e, { type: 'placement' });
    return this.durable(e);
  }

  get(idOrName: string): Gang {
    return this.entry(idOrName).shown;
  }

  list(): Gang[] {
    return [...this.gangs.values()].flatMap((e) => (e.shown ? [e.shown] : [])).sort((a, b) => a.createdAtMs - b.createdAtMs);
  }

  async stop(idOrName: string): Promise<Gang> {
    await this.reloading;
    const { e } = this.entry(idOrName);
    this.apply(e, { type: 'stop' });
    return this.durable(e);
  }

  /** Resolves when READY, FAILED or STOPPED, or at the deadline. */
  wait(idOrName: string, timeoutMs: number): Promise<Gang> {
    const id = this.get(idOrName).id;
    return this.waiters.until(id, timeoutMs, () => this.get(id), (g) => g.state === G.GANG_STATE_READY || g.state === G.GANG_STATE_FAILED || g.state === G.GANG_STATE_STOPPED);
  }

  /** Where a rank of a gang runs now: for log requests. */
  locate(idOrName: string, rank: number): { gangId: string; attempt: number; nodeId: string } {
    const { shown: g } = this.entry(idOrName);
    const r = g.ranks.find((x) => x.rank === rank);
    if (!r) throw new MusterError(ErrorCode.NOT_FOUND, `gang ${g.spec?.name} has no rank ${rank} (it has ${g.ranks.length})`);
    return { gangId: g.id, attempt: g.attempt, nodeId: r.nodeId };
  }

  /** Called, once it is durable, after every state change of a gang, with the record as written. */
  onChange(listener: (g: Gang) => void): void {
    this.listeners.push(listener);
  }

  // ── agents ─────────────────────────────────────────────────────────────

  /**
   * A status report of one shard from the agent of `nodeId`. A report that
   * changes the gang's state resolves once that is durable and rejects if it
   * could not be written. One that only moves a rank's phase is written by
   * the next commit without being waited for: the agent's stream (its
   * heartbeats too) must not queue behind the store for every phase.
   */
  async shardStatus(nodeId: string, s: ShardStatusReport): Promise<void> {
    await this.reloading;
    if (this.report(nodeId, s)) await this.flush();
  }

  /** What an agent runs, sent when it registers: reconcile both ways, in one write. */
  async shardInventory(nodeId: string, shards: ShardStatusReport[]): Promise<void> {
    await this.reloading;
    let changed = false;
    for (const s of shards) changed = this.report(nodeId, s) || changed;
    const running = new Set(shards.map((s) => `${s.gangId}/${s.attempt}/${s.rank}`));
    for (const e of [...this.gangs.values()]) changed = this.apply(e, { type: 'inventory', nodeId, running }) || changed;
    if (changed) await this.flush();
  }

  // ── executor ───────────────────────────────────────────────────────────

  private report(nodeId: string, s: ShardStatusReport): boolean {
    const e = this.gangs.get(s.gangId);
    if (e && !e.collecting) stageWarmedUp({ stage: (kind, ev) => this.sink.commits.stage(this.sink.events.stage(kind, ev)) }, e.gang, e.spec.name, s);
    if (e) return this.apply(e, { type: 'report', nodeId, report: s });
    // No such gang, in memory or in the store: nothing to write, nothing to wait for.
    if (s.phase !== 'exited') this.send(nodeId, { msg: { $case: 'stopShards', value: { gangId: s.gangId, attempt: s.attempt, reason: 'unknown gang or old attempt' } } });
    return false;
  }

  /** Decides `ev` for `e` and hands the plan to the commit; true if the gang's state changed. */
  private apply(e: Entry, ev: GangEvent): boolean {
    if (e.collecting) return false;
    return this.execute(e, planGang(e, ev, this.context(e)));
  }

  /** The plan goes through the commit (gang-executor.ts); the entry hears of it once durable. */
  private execute(e: Entry, plan: GangPlan): boolean {
    e.gang = plan.gang;
    e.moving = plan.moving;
    const live = () => this.gangs.get(plan.gang.id) === e; // not replaced by a reload meanwhile
    return stagePlan(this.sink, GANGS_PREFIX + plan.gang.id, () => e.gang, e.spec.name, plan, {
      trace: e.trace,
      clearTimer: () => clearTimeout(e.timer),
      arm: (ev, atMs) => this.arm(e, ev, atMs),
      settled: (g, stateChanged) => {
        if (!live()) return;
        if (plan.write) e.shown = g;
        this.waiters.wake(g.id);
        if (stateChanged) for (const l of this.listeners) l(g);
        if (stateChanged && isFinished(g)) this.gc.soon();
      },
    });
  }

  /** The next commit, durable; on failure the error once memory holds what the store does. */
  private async flush(): Promise<void> {
    try {
      await this.commits.flush();
    } catch (err) {
      await this.reloading;
      throw err;
    }
  }

  private async durable(e: Entry): Promise<Gang> {
    await this.flush();
    return e.shown ?? this.entry(e.gang.id).shown;
  }

  /** An event nobody awaits (a node's death, a group's change, a timer): decided for every gang `each` picks, then `after`. */
  private background(each: (e: Entry) => unknown, after?: () => void): void {
    const run = () => {
      try {
        for (const e of [...this.gangs.values()]) each(e);
        after?.();
      } catch (err) {
        this.log.error({ err: (err as Error).message }, 'gang decision failed');
      }
    };
    if (this.reloading) this.reloading.then(run, (err: unknown) => this.log.error({ err: (err as Error).message }, 'gang reload failed; the decision waits for the next event'));
    else run();
  }

  private arm(e: Entry, ev: GangEvent, atMs: number): void {
    clearTimeout(e.timer);
    e.timer = setTimeout(() => this.background((x) => x === e && this.apply(e, ev)), Math.max(0, atMs - Date.now()));
  }

  /**
   * A commit failed: memory ran ahead of the store, so read the truth back
   * (group-commit.ts). What the lost events meant is decided again after a
   * pause, not at once: a store that keeps failing is retried at 1 Hz, not
   * in a loop.
   */
  private recover(): Promise<void> {
    this.reloading ??= this.reload()
      .then(() => void (this.retry = setTimeout(() => this.background(() => undefined, () => this.rederive()), REDERIVE_AFTER_MS)))
      .catch((err: unknown) => this.writer.abandon(`gangs could not be read back after a failed commit: ${(err as Error).message}`))
      .finally(() => (this.reloading = undefined));
    return this.reloading;
  }

  private context(e: Entry): GangContext {
    let pg;
    try {
      pg = this.pgs.get(e.gang.placementGroupId);
    } catch {
      pg = undefined;
    }
    // Nodes and ports are read only if the planner lays out an attempt (most events do not).
    const nodes = () => this.nodeMap();
    const ports = () => this.usedPorts(e.gang.id);
    return {
      nowMs: Date.now(),
      pg,
      portRange: this.portRange,
      get nodes() {
        return nodes();
      },
      get usedPorts() {
        return ports();
      },
    };
  }

  private entry(idOrName: string): { e: Entry; shown: Gang } {
    const e = this.gangs.get(idOrName) ?? [...this.gangs.values()].filter((x) => x.spec.name === idOrName && x.shown).sort((a, b) => b.gang.createdAtMs - a.gang.createdAtMs)[0];
    if (!e?.shown) throw new MusterError(ErrorCode.NOT_FOUND, `no gang "${idOrName}"`);
    return { e, shown: e.shown };
  }

  /** The registry, read by id: no copy (nor sort) of every node per launch. */
  private nodeMap(): NodeLookup {
    return { get: (id) => this.registry.get(id) };
  }

  /** Ports held by the live gangs other than `except`, by port space. */
  private usedPorts(except: string): Map<string, Set<number>> {
    return portsInUse([...this.gangs.values()].map((e) => e.gang).filter((g) => g.id !== except && LIVE.has(g.state)), this.nodeMap());
  }

  private send(nodeId: string, msg: HeadMessage): void {
    this.registry.connection(nodeId)?.send(msg);
  }
}

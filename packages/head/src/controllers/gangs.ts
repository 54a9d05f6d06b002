/**
 * The gang controller: launches the ranks of a TP×PP replica on its
 * placement group, watches them as one, restarts them as one.
 *
 * Lifecycle (persisted at /muster/gangs/<id> on every state change):
 *
 *   1. launch, spec valid                       → PENDING     (waits for its placement group)
 *   2. placement group CREATED                  → STARTING    attempt + 1, ranks planned, agents told
 *   3. every rank ready                         → READY
 *   4. a rank exits, fails a probe, misses its startup deadline, or its node dies
 *      (STARTING or READY)                      → RESTARTING  every rank of the attempt stopped;
 *                                                             first/last failure recorded
 *   5. RESTARTING, all ranks gone, backoff over → STARTING    (2 again; same reservation unless
 *                                                             the group was re-placed: then PENDING)
 *   6. 4 with the restart budget spent          → FAILED      (ranks stopped; first failure kept)
 *   7. stop                                     → STOPPING → STOPPED once every rank is gone
 *   8. STARTING or READY, and a rank runs on a node its placement group no
 *      longer holds (the group was moved off a draining node: placement-groups.ts
 *      step 7)                                  → RESTARTING  every rank stopped, no backoff, not
 *                                                             counted against maxRestarts (a move is
 *                                                             not a failure); then 5: it waits for
 *                                                             the group's new placement and starts there
 *      (a head that restarts during a move counts that one restart: the
 *      "moving" mark is not persisted)
 *
 * Rank phases come from the agents (prestart, started, ready, stopping,
 * exited). An agent that registers sends the shards it runs; ranks the head
 * expects there but that are missing count as failed, and shards of unknown
 * gangs or old attempts are stopped — never orphaned, never doubled.
 */
import { ErrorCode, MusterError, type Logger, randomId } from '@muster/common';
import {
  Gang,
  gangStateToJSON,
  GangState as G,
  PlacementGroupState as P,
  type GangFailure,
  type GangSpec as WireGangSpec,
  type HeadMessage,
  type ShardStatusReport,
} from '@muster/proto';
import type { NodeRegistry } from '../cluster/registry.js';
import type { EventLog } from '../events/event-log.js';
import type { StateWriter } from '../state/fence.js';
import type { PlacementGroupController } from './placement-groups.js';
import { ChangeWaiters } from './waiters.js';
import { checkBundles, DEFAULT_PORT_RANGE, parseGangSpec, planLayout, portSpace, rankEnv, wireGangSpec, type GangSpec, type PortRange } from './gang-spec.js';

export const GANGS_PREFIX = '/muster/gangs/';
const LIVE = new Set([G.GANG_STATE_PENDING, G.GANG_STATE_STARTING, G.GANG_STATE_READY, G.GANG_STATE_RESTARTING, G.GANG_STATE_STOPPING]);

interface Entry {
  gang: Gang;
  spec: GangSpec;
  timer?: NodeJS.Timeout | undefined;
  restartDue?: boolean;
  /** Restarting because its group moved (step 8): the restart is not counted. */
  moving?: boolean;
}

export class GangController {
  private readonly gangs = new Map<string, Entry>();
  private readonly waiters = new ChangeWaiters();
  private readonly listeners: Array<(g: Gang) => void> = [];

  constructor(
    private readonly writer: StateWriter,
    private readonly registry: NodeRegistry,
    private readonly pgs: PlacementGroupController,
    private readonly events: EventLog,
    private readonly log: Logger,
    private readonly portRange: PortRange = DEFAULT_PORT_RANGE,
  ) {
    registry.onTransition((kind, node) => {
      if (kind === 'node.dead') this.nodeLost(node.nodeId);
    });
    pgs.onChange((pgId) => {
      for (const e of this.gangs.values()) if (e.gang.placementGroupId === pgId) void this.pgChanged(e);
    });
  }

  async load(): Promise<void> {
    const { kvs } = await this.writer.store.range(GANGS_PREFIX);
    for (const kv of kvs) {
      const gang = Gang.decode(kv.value);
      try {
        this.gangs.set(gang.id, { gang, spec: parseGangSpec(gang.spec) });
      } catch (e) {
        this.log.error({ gang: gang.id, err: (e as Error).message }, 'stored gang has an invalid spec; left out');
      }
    }
    for (const e of this.gangs.values()) {
      if (e.gang.state === G.GANG_STATE_RESTARTING) e.restartDue = true;
      if (e.gang.state === G.GANG_STATE_PENDING || e.gang.state === G.GANG_STATE_RESTARTING) void this.pgChanged(e);
    }
  }

  /** Stops restart timers (the term ended; the next leader loads the gangs as stored). */
  close(): void {
    for (const e of this.gangs.values()) clearTimeout(e.timer);
  }

  // ── API ────────────────────────────────────────────────────────────────

  /** A launch repeating the `requestId` of a live gang of that name returns it (idempotent retry). */
  async launch(wire: WireGangSpec | undefined, requestId = ''): Promise<Gang> {
    const spec = parseGangSpec(wire);
    if (requestId !== '') {
      for (const e of this.gangs.values()) if (e.spec.name === spec.name && e.gang.requestId === requestId && LIVE.has(e.gang.state)) return e.gang;
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
    const now = Date.now();
    const gang: Gang = {
      id: randomId('gang', 10),
      spec: wireGangSpec(spec),
      state: G.GANG_STATE_PENDING,
      placementGroupId: pg.id,
      attempt: 0,
      restarts: 0,
      ranks: [],
      firstFailure: undefined,
      lastFailure: undefined,
      message: `waiting for placement group ${pg.spec?.name}`,
      createdAtMs: now,
      stateChangedAtMs: now,
      nextRestartAtMs: 0,
      masterAddr: '',
      masterPort: 0,
      requestId,
    };
    const e: Entry = { gang, spec };
    this.gangs.set(gang.id, e);
    await this.persist(e, 'gang.pending', `gang ${spec.name} waits for placement group ${pg.spec?.name}`);
    await this.pgChanged(e);
    return e.gang;
  }

  get(idOrName: string): Gang {
    return this.entry(idOrName).gang;
  }

  list(): Gang[] {
    return [...this.gangs.values()].map((e) => e.gang).sort((a, b) => a.createdAtMs - b.createdAtMs);
  }

  async stop(idOrName: string): Promise<Gang> {
    const e = this.entry(idOrName);
    if (!LIVE.has(e.gang.state) || e.gang.state === G.GANG_STATE_STOPPING) return e.gang;
    clearTimeout(e.timer);
    e.restartDue = false;
    e.moving = false;
    this.stopRanks(e, 'gang stopped');
    await this.setState(e, G.GANG_STATE_STOPPING, 'stopping every rank', 'gang.stopping');
    await this.maybeStopped(e);
    return e.gang;
  }

  /** Resolves when READY, FAILED or STOPPED, or at the deadline. */
  wait(idOrName: string, timeoutMs: number): Promise<Gang> {
    const id = this.get(idOrName).id;
    return this.waiters.until(id, timeoutMs, () => this.get(id), (g) => g.state === G.GANG_STATE_READY || g.state === G.GANG_STATE_FAILED || g.state === G.GANG_STATE_STOPPED);
  }

  /** Where a rank of a gang runs now: for log requests. */
  locate(idOrName: string, rank: number): { gangId: string; attempt: number; nodeId: string } {
    const e = this.entry(idOrName);
    const r = e.gang.ranks.find((x) => x.rank === rank);
    if (!r) throw new MusterError(ErrorCode.NOT_FOUND, `gang ${e.spec.name} has no rank ${rank} (it has ${e.gang.ranks.length})`);
    return { gangId: e.gang.id, attempt: e.gang.attempt, nodeId: r.nodeId };
  }

  /** Called after every persisted state change of a gang. */
  onChange(listener: (g: Gang) => void): void {
    this.listeners.push(listener);
  }

  // ── agents ─────────────────────────────────────────────────────────────

  /** A status report of one shard from the agent of `nodeId`. */
  async shardStatus(nodeId: string, s: ShardStatusReport): Promise<void> {
    const e = this.gangs.get(s.gangId);
    if (!e || s.attempt !== e.gang.attempt || !LIVE.has(e.gang.state)) {
      if (s.phase !== 'exited') this.send(nodeId, { msg: { $case: 'stopShards', value: { gangId: s.gangId, attempt: s.attempt, reason: 'unknown gang or old attempt' } } });
      return;
    }
    const r = e.gang.ranks.find((x) => x.rank === s.rank && x.nodeId === nodeId);
    if (!r) return;
    const state = e.gang.state;
    // A rank still running while its gang winds down was out of reach when the
    // stop went out (its node was declared dead, then came back): stop it now,
    // or the restart would wait for it forever.
    if (s.phase !== 'exited' && state !== G.GANG_STATE_STARTING && state !== G.GANG_STATE_READY) {
      this.send(nodeId, { msg: { $case: 'stopShards', value: { gangId: s.gangId, attempt: s.attempt, reason: `gang ${e.spec.name} is ${gangStateToJSON(state).replace("GANG_STATE_", "").toLowerCase()}; rank ${s.rank} missed the stop while node ${nodeId} was unreachable` } } });
    }
    r.phase = s.phase;
    r.pid = s.pid;
    r.exitCode = s.exitCode;
    r.signal = s.signal;
    r.reason = s.reason;
    this.notify(e);
    if (s.phase === 'exited' && !s.stopped && (state === G.GANG_STATE_STARTING || state === G.GANG_STATE_READY)) {
      await this.fail(e, { attempt: s.attempt, rank: s.rank, nodeId, reason: s.reason || 'exited', exitCode: s.exitCode, signal: s.signal, logTail: s.logTail, timeMs: Date.now() });
    } else if (state === G.GANG_STATE_STARTING && e.gang.ranks.every((x) => x.phase === 'ready')) {
      clearTimeout(e.timer);
      await this.setState(e, G.GANG_STATE_READY, `all ${e.gang.ranks.length} ranks ready`, 'gang.ready');
    } else if (state === G.GANG_STATE_STARTING) {
      e.gang.message = progress(e.gang);
    }
    if (state === G.GANG_STATE_STOPPING) await this.maybeStopped(e);
    if (state === G.GANG_STATE_RESTARTING || state === G.GANG_STATE_FAILED) await this.maybeRestart(e);
  }

  /** What an agent runs, sent when it registers: reconcile both ways. */
  async shardInventory(nodeId: string, shards: ShardStatusReport[]): Promise<void> {
    const seen = new Set(shards.map((s) => `${s.gangId}/${s.attempt}/${s.rank}`));
    for (const s of shards) await this.shardStatus(nodeId, s);
    for (const e of [...this.gangs.values()]) {
      if (e.gang.state !== G.GANG_STATE_STARTING && e.gang.state !== G.GANG_STATE_READY) continue;
      for (const r of e.gang.ranks) {
        if (r.nodeId !== nodeId || seen.has(`${e.gang.id}/${e.gang.attempt}/${r.rank}`)) continue;
        if (r.phase === 'pending') continue; // launch still on its way
        r.phase = 'exited';
        await this.fail(e, { attempt: e.gang.attempt, rank: r.rank, nodeId, reason: `rank ${r.rank} is gone from node ${nodeId} (its agent restarted without it)`, exitCode: undefined, signal: '', logTail: '', timeMs: Date.now() });
        break;
      }
    }
  }

  // ── internals ──────────────────────────────────────────────────────────

  private entry(idOrName: string): Entry {
    const e = this.gangs.get(idOrName) ?? [...this.gangs.values()].filter((x) => x.spec.name === idOrName).sort((a, b) => b.gang.createdAtMs - a.gang.createdAtMs)[0];
    if (!e) throw new MusterError(ErrorCode.NOT_FOUND, `no gang "${idOrName}"`);
    return e;
  }

  /**
   * PENDING or RESTARTING-and-due gangs start once their group is CREATED;
   * running ones follow their group when it moved (step 8).
   */
  private async pgChanged(e: Entry): Promise<void> {
    const s = e.gang.state;
    if (s === G.GANG_STATE_PENDING) await this.start(e);
    else if (s === G.GANG_STATE_RESTARTING) await this.maybeRestart(e);
    else if (s === G.GANG_STATE_STARTING || s === G.GANG_STATE_READY) await this.followMove(e);
  }

  /** Step 8: ranks on nodes the group left are stopped, and the gang starts again where the group is now. */
  private async followMove(e: Entry): Promise<void> {
    let pg;
    try {
      pg = this.pgs.get(e.gang.placementGroupId);
    } catch {
      return;
    }
    const held = new Set(pg.placements.map((p) => p.nodeId));
    const left = [...new Set(e.gang.ranks.filter((r) => !held.has(r.nodeId)).map((r) => r.nodeId))];
    if (left.length === 0 || pg.state === P.PLACEMENT_GROUP_STATE_REMOVED) return;
    clearTimeout(e.timer);
    e.moving = true;
    e.restartDue = true;
    const why = `placement group ${pg.spec?.name} moved off ${left.join(', ')}; restarting every rank where it is placed now`;
    this.stopRanks(e, why);
    await this.setState(e, G.GANG_STATE_RESTARTING, why, 'gang.restarting');
    await this.maybeRestart(e);
  }

  private async start(e: Entry): Promise<void> {
    let pg;
    try {
      pg = this.pgs.get(e.gang.placementGroupId);
    } catch {
      return this.failFinal(e, `placement group ${e.spec.placementGroup} was removed`);
    }
    if (pg.state !== P.PLACEMENT_GROUP_STATE_CREATED) {
      if (pg.state === P.PLACEMENT_GROUP_STATE_REMOVED) return this.failFinal(e, `placement group ${pg.spec?.name} was removed`);
      e.gang.message = `waiting for placement group ${pg.spec?.name} (${P[pg.state].replace('PLACEMENT_GROUP_STATE_', '').toLowerCase()}${pg.reason ? `: ${pg.reason.message}` : ''})`;
      if (e.gang.state !== G.GANG_STATE_PENDING) await this.setState(e, G.GANG_STATE_PENDING, e.gang.message, 'gang.pending');
      return;
    }
    let plan;
    try {
      plan = planLayout(e.spec, pg, this.nodeMap(), this.usedPorts(e.gang.id), this.portRange);
    } catch (err) {
      return this.failFinal(e, (err as Error).message);
    }
    const g = e.gang;
    g.attempt++;
    g.masterAddr = plan.masterAddr;
    g.masterPort = plan.masterPort;
    g.ranks = plan.ranks.map((r) => ({
      rank: r.rank, nodeId: r.nodeId, tpRank: r.tpRank, ppRank: r.ppRank, localRank: r.localRank,
      cudaVisibleDevices: r.cudaVisibleDevices, ports: r.ports, phase: 'pending', pid: 0, exitCode: undefined, signal: '', reason: '',
    }));
    await this.setState(e, G.GANG_STATE_STARTING, `launching ${g.ranks.length} ranks on ${[...new Set(g.ranks.map((r) => r.nodeId))].join(', ')}`, 'gang.starting');
    const t = e.spec.template;
    const resolve = (p: GangSpec['template']['readiness'], ports: Record<string, number>) =>
      p ? { ...p, port: p.port in ports ? String(ports[p.port]) : p.port } : undefined;
    for (const nodeId of new Set(plan.ranks.map((r) => r.nodeId))) {
      const shards = plan.ranks.filter((r) => r.nodeId === nodeId).map((r) => ({
        rank: r.rank,
        command: t.command,
        args: t.args,
        env: rankEnv(e.spec, g.id, g.attempt, plan, r),
        cwd: t.cwd,
        readiness: resolve(t.readiness, r.ports),
        liveness: resolve(t.liveness, r.ports),
        startupDeadlineMs: e.spec.startup.deadlineMs,
        gracePeriodMs: e.spec.startup.gracePeriodMs,
        logMaxBytes: e.spec.logMaxBytes,
      }));
      this.send(nodeId, { msg: { $case: 'launchShards', value: { gangId: g.id, attempt: g.attempt, shards } } });
    }
    // Backstop for ranks whose agent never answers (the agents enforce the deadline themselves).
    clearTimeout(e.timer);
    const attempt = g.attempt;
    e.timer = setTimeout(() => {
      if (g.attempt !== attempt || g.state !== G.GANG_STATE_STARTING) return;
      const late = g.ranks.find((r) => r.phase !== 'ready')!;
      void this.fail(e, { attempt, rank: late.rank, nodeId: late.nodeId, reason: `startup deadline ${e.spec.startup.deadlineMs} ms passed (rank ${late.rank} on ${late.nodeId}: ${late.phase})`, exitCode: undefined, signal: '', logTail: '', timeMs: Date.now() });
    }, e.spec.startup.deadlineMs + 2_000);
  }

  private async fail(e: Entry, f: GangFailure): Promise<void> {
    const g = e.gang;
    g.firstFailure ??= f;
    g.lastFailure = f;
    clearTimeout(e.timer);
    this.stopRanks(e, `rank ${f.rank} failed: ${f.reason}`);
    if (g.restarts >= e.spec.startup.maxRestarts) {
      await this.setState(e, G.GANG_STATE_FAILED, `restart budget (${e.spec.startup.maxRestarts}) spent; first failure: rank ${g.firstFailure.rank} on ${g.firstFailure.nodeId}: ${g.firstFailure.reason}`, 'gang.failed');
      return;
    }
    const backoff = Math.min(e.spec.startup.backoffMaxMs, e.spec.startup.backoffInitialMs * 2 ** g.restarts);
    g.nextRestartAtMs = Date.now() + backoff;
    await this.setState(e, G.GANG_STATE_RESTARTING, `rank ${f.rank} on ${f.nodeId} failed (${f.reason}); restarting all ranks in ${backoff} ms`, 'gang.restarting');
    e.timer = setTimeout(() => {
      e.restartDue = true;
      void this.maybeRestart(e);
    }, backoff);
  }

  private async failFinal(e: Entry, reason: string): Promise<void> {
    e.gang.firstFailure ??= { attempt: e.gang.attempt, rank: 0, nodeId: '', reason, exitCode: undefined, signal: '', logTail: '', timeMs: Date.now() };
    await this.setState(e, G.GANG_STATE_FAILED, reason, 'gang.failed');
  }

  /** Restart once the backoff is over and every rank of the attempt is gone. */
  private async maybeRestart(e: Entry): Promise<void> {
    if (e.gang.state !== G.GANG_STATE_RESTARTING || !e.restartDue) return;
    if (!e.gang.ranks.every((r) => r.phase === 'exited' || r.phase === 'pending')) return;
    e.restartDue = false;
    if (e.moving) e.moving = false;
    else e.gang.restarts++;
    await this.start(e);
  }

  private async maybeStopped(e: Entry): Promise<void> {
    if (e.gang.state === G.GANG_STATE_STOPPING && e.gang.ranks.every((r) => r.phase === 'exited' || r.phase === 'pending')) {
      await this.setState(e, G.GANG_STATE_STOPPED, 'every rank stopped', 'gang.stopped');
    }
  }

  private nodeLost(nodeId: string): void {
    for (const e of this.gangs.values()) {
      const lost = e.gang.ranks.filter((r) => r.nodeId === nodeId && r.phase !== 'exited');
      if (lost.length === 0) continue;
      for (const r of lost) {
        r.phase = 'exited';
        r.reason = `node ${nodeId} died`;
      }
      const s = e.gang.state;
      if (s === G.GANG_STATE_STARTING || s === G.GANG_STATE_READY) {
        void this.fail(e, { attempt: e.gang.attempt, rank: lost[0]!.rank, nodeId, reason: `node ${nodeId} died`, exitCode: undefined, signal: '', logTail: '', timeMs: Date.now() });
      } else void this.maybeStopped(e).then(() => this.maybeRestart(e));
    }
  }

  private stopRanks(e: Entry, reason: string): void {
    for (const nodeId of new Set(e.gang.ranks.map((r) => r.nodeId))) {
      this.send(nodeId, { msg: { $case: 'stopShards', value: { gangId: e.gang.id, attempt: e.gang.attempt, reason } } });
    }
  }

  private nodeMap() {
    return new Map(this.registry.list().map((n) => [n.nodeId, n]));
  }

  /** Ports held by the other live gangs, by port space (host address). */
  private usedPorts(except: string): Map<string, Set<number>> {
    const nodes = this.nodeMap();
    const used = new Map<string, Set<number>>();
    const add = (nodeId: string, p: number) => {
      const space = portSpace(nodes, nodeId);
      if (!used.has(space)) used.set(space, new Set());
      used.get(space)!.add(p);
    };
    for (const e of this.gangs.values()) {
      if (e.gang.id === except || !LIVE.has(e.gang.state)) continue;
      for (const r of e.gang.ranks) for (const p of Object.values(r.ports)) add(r.nodeId, p);
      if (e.gang.masterPort && e.gang.ranks[0]) add(e.gang.ranks[0].nodeId, e.gang.masterPort);
    }
    return used;
  }

  private send(nodeId: string, msg: HeadMessage): void {
    this.registry.connection(nodeId)?.send(msg);
  }

  private async setState(e: Entry, state: G, message: string, event: string): Promise<void> {
    e.gang.state = state;
    e.gang.message = message;
    e.gang.stateChangedAtMs = Date.now();
    await this.persist(e, event, `gang ${e.spec.name}: ${message}`);
  }

  private async persist(e: Entry, event: string, message: string): Promise<void> {
    const staged = this.events.stage(event, { message, attributes: { gang: e.gang.id, name: e.spec.name, attempt: String(e.gang.attempt) } });
    try {
      await this.writer.txn([{ type: 'put', key: GANGS_PREFIX + e.gang.id, value: Gang.encode(e.gang).finish() }, staged.op]);
      staged.settle(true);
    } catch (err) {
      staged.settle(false);
      this.log.error({ gang: e.gang.id, err: (err as Error).message }, 'could not persist gang state');
    }
    this.notify(e);
    for (const l of this.listeners) l(e.gang);
  }

  private notify(e: Entry): void {
    this.waiters.wake(e.gang.id);
  }
}

/** "3/8 ranks ready, 8 launched, 0 failed" */
export function progress(g: Gang): string {
  const n = g.ranks.length;
  const launched = g.ranks.filter((r) => r.phase !== 'pending').length;
  const ready = g.ranks.filter((r) => r.phase === 'ready').length;
  const failed = g.ranks.filter((r) => r.phase === 'exited').length;
  return `${ready}/${n} ranks ready, ${launched} launched, ${failed} failed`;
}

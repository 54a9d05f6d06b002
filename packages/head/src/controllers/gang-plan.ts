/**
 * The gang controller's decisions, pure: a gang's record, its spec, one event
 * (an agent's report, a node's death, a placement change, a timer, a stop)
 * and the clock in; the next record and the actions that follow out, each
 * with the step of the lifecycle table (gangs.ts, the one numbered table) and
 * a reason. No I/O, no Date.now(): gangs.ts (the executor) writes the record
 * through its GroupCommit and, once that write is durable, stages the events,
 * tells the agents and arms the timers.
 *
 * Decisions chain inside one event as the table does (a stop whose ranks are
 * all gone already is STOPPING then STOPPED; a restart whose group moved is
 * RESTARTING then PENDING): one record is written, every step's event with it.
 *
 * The input record is never changed: the plan holds a copy, so the executor
 * can keep the last durable record for answers while the next is in flight.
 *
 * A port in use (issue 15, point 8): the head's port ledger knows only
 * Muster's gangs, so an agent checks a rank's ports before spawning it and
 * reports one held by another process (`portInUse`). That is the host's
 * doing, not the gang's: the port joins the gang's `portsInUse` (bounded,
 * oldest dropped), every rank stops, and the next attempt starts at once on a
 * layout allocated around it, without backoff and not counted against
 * maxRestarts (like a move). It cannot loop: each report takes one more port
 * of the range out, and an exhausted range fails the gang (step 9). A port
 * fixed in the spec cannot be moved: that is an ordinary, counted failure.
 */
import {
  GangState as G,
  PlacementGroupState as P,
  type Gang,
  type GangFailure,
  type PlacementGroup,
  type ShardLaunch,
  type ShardStatusReport,
} from '@muster/proto';
import { cutUtf8, SPEC_LIMITS } from '@muster/contracts';
import { boundFailure } from './gang-gc.js';
import { launchShards, planLayout, type ValidGangSpec, type LayoutPlan } from './gang-spec.js';
import { LayoutPorts, type NodeLookup, type PortRange, type PortsTaken } from './port-ledger.js';
import { startupBudgetMs } from './gang-warmup.js';

/** The numbered transitions of the lifecycle table at the top of gangs.ts. */
export type Step = 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9;

export const LIVE = new Set([G.GANG_STATE_PENDING, G.GANG_STATE_STARTING, G.GANG_STATE_READY, G.GANG_STATE_RESTARTING, G.GANG_STATE_STOPPING]);
const RUNNING = new Set([G.GANG_STATE_STARTING, G.GANG_STATE_READY]);
/** The head's own backstop after the agents' startup deadline (they enforce it themselves). */
export const DEADLINE_SLACK_MS = 2_000;

/** Ports found taken on hosts that a gang's record remembers (Gang.portsInUse); older ones are dropped. */
export const MAX_PORTS_IN_USE = 64;

export type GangEvent =
  /** The placement group changed, the gang was just launched, or it was loaded. */
  | { type: 'placement' }
  | { type: 'report'; nodeId: string; report: ShardStatusReport }
  /** An agent registered without these ranks (keys `gangId/attempt/rank` it does run). */
  | { type: 'inventory'; nodeId: string; running: ReadonlySet<string> }
  | { type: 'nodeLost'; nodeId: string }
  | { type: 'deadline'; attempt: number }
  | { type: 'backoffOver' }
  | { type: 'stop' };

export type GangAction =
  /** A state change: its event is written with the record. */
  | { type: 'transition'; step: Step; state: G; event: string; reason: string }
  | { type: 'launch'; nodeId: string; attempt: number; shards: ShardLaunch[]; reason: string }
  | { type: 'stop'; nodeId: string; attempt: number; reason: string }
  /** Fire `deadline` (attempt) or `backoffOver` at `atMs`; every transition cancels the one armed before. */
  | { type: 'timer'; fire: 'deadline' | 'backoffOver'; attempt: number; atMs: number; reason: string };

export interface GangContext {
  nowMs: number;
  /** The gang's placement group; undefined if there is none (removed and forgotten). */
  pg: PlacementGroup | undefined;
  nodes: NodeLookup;
  /** Ports the other live gangs hold, by port space (the controller's index, port-index.ts; read, never copied). */
  takenPorts: PortsTaken;
  portRange: PortRange;
}

export interface GangInput {
  gang: Gang;
  spec: ValidGangSpec;
  /** Restarting because the group moved (step 8): that restart is not counted. In memory only. */
  moving: boolean;
}

export interface GangPlan {
  gang: Gang;
  moving: boolean;
  /** The record changed: write it. */
  write: boolean;
  actions: GangAction[];
}

/** A new gang's first record (step 1). */
export function planLaunch(spec: ValidGangSpec, wire: Gang['spec'], pg: PlacementGroup, id: string, requestId: string, nowMs: number): GangPlan {
  const gang: Gang = {
    id, spec: wire, state: G.GANG_STATE_PENDING, placementGroupId: pg.id, attempt: 0, restarts: 0, ranks: [],
    firstFailure: undefined, lastFailure: undefined, message: `waiting for placement group ${pg.spec?.name}`,
    createdAtMs: nowMs, stateChangedAtMs: nowMs, nextRestartAtMs: 0, masterAddr: '', masterPort: 0, requestId, portsInUse: [],
  };
  const reason = `gang ${spec.name} waits for placement group ${pg.spec?.name}`;
  return { gang, moving: false, write: true, actions: [{ type: 'transition', step: 1, state: G.GANG_STATE_PENDING, event: 'gang.pending', reason }] };
}

export function planGang(input: GangInput, ev: GangEvent, ctx: GangContext): GangPlan {
  const p = new Planner(input, ctx);
  p.on(ev);
  return { gang: p.g, moving: p.moving, write: p.write, actions: p.actions };
}

class Planner {
  readonly g: Gang;
  moving: boolean;
  write = false;
  readonly actions: GangAction[] = [];
  private readonly spec: ValidGangSpec;

  constructor(input: GangInput, private readonly ctx: GangContext) {
    this.g = structuredClone(input.gang);
    this.spec = input.spec;
    this.moving = input.moving;
  }

  on(ev: GangEvent): void {
    const g = this.g;
    switch (ev.type) {
      case 'placement':
        if (g.state === G.GANG_STATE_PENDING) this.start(2);
        else if (g.state === G.GANG_STATE_RESTARTING) this.maybeRestart(false);
        else if (RUNNING.has(g.state)) this.followMove();
        return;
      case 'report':
        return this.report(ev.nodeId, ev.report);
      case 'inventory':
        return this.inventory(ev.nodeId, ev.running);
      case 'nodeLost':
        return this.nodeLost(ev.nodeId);
      case 'deadline': {
        if (g.attempt !== ev.attempt || g.state !== G.GANG_STATE_STARTING) return;
        const late = g.ranks.find((r) => r.phase !== 'ready');
        if (!late) return;
        return this.fail({ rank: late.rank, nodeId: late.nodeId, reason: `startup deadline ${this.spec.startup.deadlineMs} ms passed (rank ${late.rank} on ${late.nodeId}: ${late.phase})` });
      }
      case 'backoffOver':
        return this.maybeRestart(true);
      case 'stop':
        if (!LIVE.has(g.state) || g.state === G.GANG_STATE_STOPPING) return;
        this.moving = false;
        this.stopRanks('gang stopped');
        this.transition(7, G.GANG_STATE_STOPPING, 'gang.stopping', 'stopping every rank');
        return this.maybeStopped();
    }
  }

  private report(nodeId: string, s: ShardStatusReport): void {
    const g = this.g;
    if (s.attempt !== g.attempt || !LIVE.has(g.state)) {
      if (s.phase !== 'exited') this.actions.push({ type: 'stop', nodeId, attempt: s.attempt, reason: 'unknown gang or old attempt' });
      return;
    }
    const r = g.ranks.find((x) => x.rank === s.rank && x.nodeId === nodeId);
    if (!r) return;
    const state = g.state;
    // A rank still running while its gang winds down was out of reach when the
    // stop went out (its node was declared dead, then came back): stop it now,
    // or the restart would wait for it forever.
    if (s.phase !== 'exited' && !RUNNING.has(state)) {
      this.actions.push({ type: 'stop', nodeId, attempt: s.attempt, reason: `gang ${this.spec.name} is ${stateName(state)}; rank ${s.rank} missed the stop while node ${nodeId} was unreachable` });
    }
    if (r.phase !== s.phase || r.pid !== s.pid || r.exitCode !== s.exitCode || r.signal !== s.signal || r.reason !== s.reason) {
      // Bytes, not characters, bound what 1,024 ranks add to the record (docs/limits.md#records); the failure keeps the whole reason.
      Object.assign(r, { phase: cutUtf8(s.phase, 32), pid: s.pid, exitCode: s.exitCode, signal: cutUtf8(s.signal, 32), reason: cutUtf8(s.reason, SPEC_LIMITS.rankReasonBytes) });
      this.write = true;
    }
    if (s.phase === 'exited' && !s.stopped && RUNNING.has(state) && s.portInUse > 0 && !this.fixedPort(s.portInUse)) {
      this.reallocate(r.rank, nodeId, s.portInUse);
    } else if (s.phase === 'exited' && !s.stopped && RUNNING.has(state)) {
      this.fail({ rank: s.rank, nodeId, reason: s.reason || 'exited', exitCode: s.exitCode, signal: s.signal, logTail: s.logTail });
    } else if (state === G.GANG_STATE_STARTING && g.ranks.every((x) => x.phase === 'ready')) {
      this.transition(3, G.GANG_STATE_READY, 'gang.ready', `all ${g.ranks.length} ranks ready`);
    } else if (state === G.GANG_STATE_STARTING) {
      this.setMessage(progress(g));
    }
    if (state === G.GANG_STATE_STOPPING) this.maybeStopped();
    if (state === G.GANG_STATE_RESTARTING) this.maybeRestart(false);
  }

  private fixedPort(port: number): boolean {
    return [this.spec.template, ...this.spec.roles.map((r) => r.template)].some((t) => t.ports.some((p) => p.port === port));
  }

  /** Step 4 without its cost: a rank's allocated port was taken on its host; the next attempt allocates around it (see the top). */
  private reallocate(rank: number, nodeId: string, port: number): void {
    const g = this.g;
    const reason = `port ${port} is in use on node ${nodeId}'s host (another process holds it)`;
    g.portsInUse = [...g.portsInUse.filter((p) => !(p.nodeId === nodeId && p.port === port)), { nodeId, port }].slice(-MAX_PORTS_IN_USE);
    const failure: GangFailure = { attempt: g.attempt, rank, nodeId, reason, exitCode: undefined, signal: '', logTail: '', timeMs: this.ctx.nowMs };
    g.firstFailure ??= failure;
    g.lastFailure = failure;
    this.moving = true; // not counted against maxRestarts
    g.nextRestartAtMs = this.ctx.nowMs; // no backoff: nothing of the gang's failed
    this.stopRanks(`rank ${rank}: ${reason}`);
    this.transition(4, G.GANG_STATE_RESTARTING, 'gang.restarting', `rank ${rank} on ${nodeId} not started: ${reason}; restarting every rank on newly allocated ports (not counted as a restart)`);
    this.maybeRestart(false);
  }

  /** Ranks the head expects on `nodeId` that its agent does not run count as failed (the first one found). */
  private inventory(nodeId: string, running: ReadonlySet<string>): void {
    const g = this.g;
    if (!RUNNING.has(g.state)) return;
    const gone = g.ranks.find((r) => r.nodeId === nodeId && r.phase !== 'pending' && !running.has(`${g.id}/${g.attempt}/${r.rank}`));
    if (!gone) return; // a pending rank's launch is still on its way
    gone.phase = 'exited';
    this.fail({ rank: gone.rank, nodeId, reason: `rank ${gone.rank} is gone from node ${nodeId} (its agent restarted without it)` });
  }

  private nodeLost(nodeId: string): void {
    const g = this.g;
    const lost = g.ranks.filter((r) => r.nodeId === nodeId && r.phase !== 'exited');
    if (lost.length === 0) return;
    for (const r of lost) Object.assign(r, { phase: 'exited', reason: `node ${nodeId} died` });
    this.write = true;
    if (RUNNING.has(g.state)) return this.fail({ rank: lost[0]!.rank, nodeId, reason: `node ${nodeId} died` });
    this.maybeStopped();
    this.maybeRestart(false);
  }

  /** Steps 2 and 5: a CREATED group gets the next attempt; otherwise the gang waits (PENDING) or fails (9). */
  private start(step: 2 | 5): void {
    const { g, spec, ctx } = this;
    const pg = ctx.pg;
    if (!pg || pg.state === P.PLACEMENT_GROUP_STATE_REMOVED) return this.failFinal(`placement group ${pg?.spec?.name ?? spec.placementGroup} was removed`);
    if (pg.state !== P.PLACEMENT_GROUP_STATE_CREATED) {
      const message = `waiting for placement group ${pg.spec?.name} (${P[pg.state].replace('PLACEMENT_GROUP_STATE_', '').toLowerCase()}${pg.reason ? `: ${pg.reason.message}` : ''})`;
      if (g.state !== G.GANG_STATE_PENDING) this.transition(5, G.GANG_STATE_PENDING, 'gang.pending', message);
      else this.setMessage(message);
      return;
    }
    let plan: LayoutPlan;
    try {
      const ports = new LayoutPorts(ctx.nodes, ctx.takenPorts, ctx.portRange);
      for (const p of g.portsInUse) ports.claim(p.nodeId, p.port); // found taken on its host: allocated around
      plan = planLayout(spec, pg, ctx.nodes, ports);
    } catch (err) {
      return this.failFinal((err as Error).message);
    }
    g.attempt++;
    g.masterAddr = plan.masterAddr;
    g.masterPort = plan.masterPort;
    g.ranks = plan.ranks.map((r) => ({
      rank: r.rank, nodeId: r.nodeId, tpRank: r.tpRank, ppRank: r.ppRank, localRank: r.localRank,
      cudaVisibleDevices: r.cudaVisibleDevices, ports: r.ports, phase: 'pending', pid: 0, exitCode: undefined, signal: '', reason: '',
      role: r.role?.name ?? '', roleIndex: r.role?.index ?? 0, masterPort: r.role?.rank === 0 ? r.role.masterPort : 0,
    }));
    const nodes = [...new Set(plan.ranks.map((r) => r.nodeId))];
    const why = `launching ${g.ranks.length} ranks on ${nodes.join(', ')}`;
    this.transition(step, G.GANG_STATE_STARTING, 'gang.starting', why);
    for (const nodeId of nodes) {
      this.actions.push({ type: 'launch', nodeId, attempt: g.attempt, shards: launchShards(spec, g.id, g.attempt, plan, nodeId), reason: why });
    }
    const atMs = ctx.nowMs + startupBudgetMs(spec) + DEADLINE_SLACK_MS; // readiness, then rank 0's warm-up (gang-warmup.ts)
    this.actions.push({ type: 'timer', fire: 'deadline', attempt: g.attempt, atMs, reason: 'backstop for ranks whose agent never answers' });
  }

  /** Step 8: ranks on nodes the group left are stopped, and the gang starts again where the group is now. */
  private followMove(): void {
    const pg = this.ctx.pg;
    if (!pg || pg.state === P.PLACEMENT_GROUP_STATE_REMOVED) return;
    const held = new Set(pg.placements.map((p) => p.nodeId));
    const left = [...new Set(this.g.ranks.filter((r) => !held.has(r.nodeId)).map((r) => r.nodeId))];
    if (left.length === 0) return;
    this.moving = true;
    this.g.nextRestartAtMs = this.ctx.nowMs; // no backoff: a move is not a failure
    const why = `placement group ${pg.spec?.name} moved off ${left.join(', ')}; restarting every rank where it is placed now`;
    this.stopRanks(why);
    this.transition(8, G.GANG_STATE_RESTARTING, 'gang.restarting', why);
    this.maybeRestart(false);
  }

  /** Step 4, or 6 with the restart budget spent. */
  private fail(f: Pick<GangFailure, 'rank' | 'nodeId' | 'reason'> & Partial<GangFailure>): void {
    const { g, spec } = this;
    // An agent's report is input: its log tail and reason are bounded before a record keeps them (gang-gc.ts).
    const failure: GangFailure = boundFailure({ attempt: g.attempt, exitCode: undefined, signal: '', logTail: '', timeMs: this.ctx.nowMs, ...f });
    g.firstFailure ??= failure;
    g.lastFailure = failure;
    this.stopRanks(`rank ${f.rank} failed: ${f.reason}`);
    if (g.restarts >= spec.startup.maxRestarts) {
      const first = g.firstFailure;
      return this.transition(6, G.GANG_STATE_FAILED, 'gang.failed', `restart budget (${spec.startup.maxRestarts}) spent; first failure: rank ${first.rank} on ${first.nodeId}: ${first.reason}`);
    }
    const backoff = Math.min(spec.startup.backoffMaxMs, spec.startup.backoffInitialMs * 2 ** g.restarts);
    g.nextRestartAtMs = this.ctx.nowMs + backoff;
    this.transition(4, G.GANG_STATE_RESTARTING, 'gang.restarting', `rank ${f.rank} on ${f.nodeId} failed (${f.reason}); restarting all ranks in ${backoff} ms`);
    this.actions.push({ type: 'timer', fire: 'backoffOver', attempt: g.attempt, atMs: g.nextRestartAtMs, reason: `backoff ${backoff} ms` });
  }

  /** Step 9: the gang cannot start at all (its group is gone, or its layout cannot be made). */
  private failFinal(reason: string): void {
    this.g.firstFailure ??= { attempt: this.g.attempt, rank: 0, nodeId: '', reason, exitCode: undefined, signal: '', logTail: '', timeMs: this.ctx.nowMs };
    this.transition(9, G.GANG_STATE_FAILED, 'gang.failed', reason);
  }

  /** Step 5: once the backoff is over (the clock, or its timer) and every rank of the attempt is gone. */
  private maybeRestart(timerFired: boolean): void {
    const g = this.g;
    if (g.state !== G.GANG_STATE_RESTARTING) return;
    if (!timerFired && this.ctx.nowMs < g.nextRestartAtMs) return;
    if (!g.ranks.every((r) => r.phase === 'exited' || r.phase === 'pending')) return;
    if (this.moving) this.moving = false;
    else g.restarts++;
    this.write = true;
    this.start(5);
  }

  private maybeStopped(): void {
    if (this.g.state === G.GANG_STATE_STOPPING && this.g.ranks.every((r) => r.phase === 'exited' || r.phase === 'pending')) {
      this.transition(7, G.GANG_STATE_STOPPED, 'gang.stopped', 'every rank stopped');
    }
  }

  private stopRanks(reason: string): void {
    for (const nodeId of new Set(this.g.ranks.map((r) => r.nodeId))) this.actions.push({ type: 'stop', nodeId, attempt: this.g.attempt, reason });
  }

  private setMessage(message: string): void {
    if (this.g.message === message) return;
    this.g.message = message;
    this.write = true;
  }

  private transition(step: Step, state: G, event: string, reason: string): void {
    this.g.state = state;
    this.g.message = reason;
    this.g.stateChangedAtMs = this.ctx.nowMs;
    this.write = true;
    this.actions.push({ type: 'transition', step, state, event, reason });
  }
}

function stateName(s: G): string {
  return G[s].replace('GANG_STATE_', '').toLowerCase();
}

/** "3/8 ranks ready, 8 launched, 0 failed" */
export function progress(g: Gang): string {
  const n = g.ranks.length;
  const launched = g.ranks.filter((r) => r.phase !== 'pending').length;
  const ready = g.ranks.filter((r) => r.phase === 'ready').length;
  const failed = g.ranks.filter((r) => r.phase === 'exited').length;
  return `${ready}/${n} ranks ready, ${launched} launched, ${failed} failed`;
}

/**
 * The gang planner, one row per decision: a record, an event and the clock in;
 * the next state, the lifecycle steps taken (gangs.ts numbers them), and the
 * agent orders and timers out. Every numbered step has at least one row.
 */
import { describe, expect, it } from 'vitest';
import {
  GangState as G,
  PlacementGroupState as P,
  type Gang,
  type GangSpec,
  type Node,
  type PlacementGroup,
  type RankStatus,
  type ShardStatusReport,
} from '@muster/proto';
import { SPEC_LIMITS } from '@muster/contracts';
import { MAX_PORTS_IN_USE, planGang, planLaunch, progress, type GangContext, type GangEvent, type GangInput, type GangPlan } from './gang-plan.js';
import { parseGangSpec, wireGangSpec } from './gang-spec.js';
import { NO_PORTS_TAKEN, portsTakenIn } from './port-ledger.js';

const T0 = 1_000_000;
const wire: GangSpec = {
  name: 'llm', placementGroup: 'pg-llm', tp: 2, pp: 2, logMaxBytes: 0, replicaGroup: '', replicaId: '',
  template: { command: 'serve', args: [], env: {}, cwd: '', ports: [{ name: 'http', port: 0 }], readiness: undefined, liveness: undefined, warmup: undefined },
  startup: { deadlineMs: 10_000, maxRestarts: 2, backoffInitialMs: 1_000, backoffMaxMs: 3_000, gracePeriodMs: 0 }, roles: [],
};
const spec = parseGangSpec(wire);

const placement = (bundleIndex: number, nodeId: string) => ({ bundleIndex, nodeId, gpuIndices: [0, 1], migUuids: [], cpuMillis: 0, memoryBytes: 0, custom: {}, gpuUuids: [] });
const bundle = { cpuMillis: 0, memoryBytes: 0, gpus: 2, gpuMemoryMib: 0, migProfile: '', custom: {} };
function group(state: P, nodes = ['n1', 'n2']): PlacementGroup {
  return {
    id: 'pg1', state, placements: nodes.map((n, i) => placement(i, n)), reason: undefined, createdAtMs: 0, stateChangedAtMs: 0, reschedules: 0, requestId: '',
    spec: { name: 'pg-llm', strategy: 'SPREAD', bundles: [bundle, bundle], topology: [], matchLabels: {}, tolerations: [], priority: 0 },
  };
}
const node = (nodeId: string) => ({ nodeId, address: `10.0.0.${nodeId.slice(1)}` }) as Node;

function rank(r: number, phase: string): RankStatus {
  return { rank: r, nodeId: r < 2 ? 'n1' : 'n2', tpRank: r % 2, ppRank: r >> 1, localRank: r % 2, cudaVisibleDevices: String(r % 2), ports: { http: 30_000 + r }, phase, pid: phase === 'pending' || phase === 'exited' ? 0 : 100 + r, exitCode: undefined, signal: '', reason: '', role: '', roleIndex: 0, masterPort: 0 };
}

/** A gang of 4 ranks (2 per node) in `state`, every rank in `phase` (or per rank). */
function gang(state: G, phase: string | string[], over: Partial<Gang> = {}): Gang {
  const phases = typeof phase === 'string' ? [phase, phase, phase, phase] : phase;
  return {
    id: 'gang1', spec: wireGangSpec(spec), state, placementGroupId: 'pg1', attempt: 1, restarts: 0,
    ranks: state === G.GANG_STATE_PENDING ? [] : phases.map((ph, i) => rank(i, ph)),
    firstFailure: undefined, lastFailure: undefined, message: '', createdAtMs: 0, stateChangedAtMs: 0, nextRestartAtMs: 0,
    masterAddr: '10.0.0.1', masterPort: 30_010, requestId: '', portsInUse: [], ...over,
  };
}

function ctx(over: Partial<GangContext> = {}): GangContext {
  return { nowMs: T0, pg: group(P.PLACEMENT_GROUP_STATE_CREATED), nodes: new Map([['n1', node('n1')], ['n2', node('n2')]]), takenPorts: NO_PORTS_TAKEN, portRange: { first: 30_000, last: 30_100 }, ...over };
}

function report(r: number, phase: string, over: Partial<ShardStatusReport> = {}): GangEvent {
  return { type: 'report', nodeId: r < 2 ? 'n1' : 'n2', report: { gangId: 'gang1', attempt: 1, rank: r, phase, pid: 100 + r, exitCode: undefined, signal: '', reason: '', stopped: false, logTail: '', portInUse: 0, warmupMs: 0, ...over } };
}

/** What a plan did, in a form a row can state. */
function summary(p: GangPlan) {
  const of = (type: string) => p.actions.filter((a) => a.type === type);
  return {
    state: G[p.gang.state].replace('GANG_STATE_', ''),
    steps: of('transition').map((a) => (a.type === 'transition' ? a.step : 0)),
    launch: of('launch').map((a) => (a.type === 'launch' ? a.nodeId : '')),
    stop: of('stop').map((a) => (a.type === 'stop' ? a.nodeId : '')),
    timer: of('timer').map((a) => (a.type === 'timer' ? `${a.fire}@+${a.atMs - T0}` : '')),
    attempt: p.gang.attempt,
    restarts: p.gang.restarts,
    write: p.write,
    moving: p.moving,
  };
}

type Row = [string, GangInput, GangEvent, Partial<GangContext>, Partial<ReturnType<typeof summary>>];
const running = (g: Gang, moving = false): GangInput => ({ gang: g, spec, moving });

describe('gang planner: one row per decision', () => {
  it.each<Row>([
    // 2: the group is placed: the first attempt starts, every agent gets its ranks, the backstop deadline is armed.
    ['2 PENDING, group CREATED → STARTING, launch on both nodes', running(gang(G.GANG_STATE_PENDING, [], { attempt: 0 })), { type: 'placement' }, {},
      { state: 'STARTING', steps: [2], launch: ['n1', 'n2'], stop: [], timer: ['deadline@+12000'], attempt: 1 }],
    ['1 PENDING, group not placed yet → stays PENDING, no order', running(gang(G.GANG_STATE_PENDING, [], { attempt: 0 })), { type: 'placement' }, { pg: group(P.PLACEMENT_GROUP_STATE_PENDING, []) },
      { state: 'PENDING', steps: [], launch: [], attempt: 0, write: true }],
    ['3 STARTING, the last rank ready → READY', running(gang(G.GANG_STATE_STARTING, ['ready', 'ready', 'ready', 'started'])), report(3, 'ready'), {},
      { state: 'READY', steps: [3], stop: [], launch: [] }],
    ['3 STARTING, one more rank started → STARTING, progress only', running(gang(G.GANG_STATE_STARTING, ['ready', 'pending', 'pending', 'pending'])), report(1, 'started'), {},
      { state: 'STARTING', steps: [], stop: [], write: true }],
    ['4 READY, a rank exits → RESTARTING, all ranks stopped, backoff 1 s', running(gang(G.GANG_STATE_READY, 'ready')), report(2, 'exited', { exitCode: 1 }), {},
      { state: 'RESTARTING', steps: [4], stop: ['n1', 'n2'], timer: ['backoffOver@+1000'], restarts: 0 }],
    ['4 backoff doubles with each restart', running(gang(G.GANG_STATE_READY, 'ready', { restarts: 1 })), report(0, 'exited'), {},
      { state: 'RESTARTING', steps: [4], timer: ['backoffOver@+2000'] }],
    ['4 backoff is capped at backoffMaxMs', { gang: gang(G.GANG_STATE_READY, 'ready', { restarts: 1 }), spec: parseGangSpec({ ...wire, startup: { ...wire.startup!, backoffMaxMs: 1_500 } }), moving: false }, report(0, 'exited'), {},
      { state: 'RESTARTING', steps: [4], timer: ['backoffOver@+1500'] }],
    ['4 a node dies under a READY gang → RESTARTING', running(gang(G.GANG_STATE_READY, 'ready')), { type: 'nodeLost', nodeId: 'n2' }, {},
      { state: 'RESTARTING', steps: [4], stop: ['n1', 'n2'] }],
    ['4 STARTING past the deadline → RESTARTING', running(gang(G.GANG_STATE_STARTING, ['ready', 'ready', 'started', 'ready'])), { type: 'deadline', attempt: 1 }, {},
      { state: 'RESTARTING', steps: [4] }],
    ['4 an agent registers without a rank it ran → RESTARTING', running(gang(G.GANG_STATE_READY, 'ready')), { type: 'inventory', nodeId: 'n1', running: new Set(['gang1/1/1']) }, {},
      { state: 'RESTARTING', steps: [4] }],
    ['4 an exit the agent was told to make is no failure', running(gang(G.GANG_STATE_READY, 'ready')), report(1, 'exited', { stopped: true }), {},
      { state: 'READY', steps: [], stop: [] }],
    ['5 RESTARTING, backoff over, every rank gone → STARTING, attempt 2, counted', running(gang(G.GANG_STATE_RESTARTING, 'exited', { nextRestartAtMs: T0 - 1 })), { type: 'backoffOver' }, {},
      { state: 'STARTING', steps: [5], launch: ['n1', 'n2'], attempt: 2, restarts: 1 }],
    ['5 RESTARTING, the last rank exits after the backoff → STARTING', running(gang(G.GANG_STATE_RESTARTING, ['exited', 'exited', 'exited', 'stopping'], { nextRestartAtMs: T0 - 1 })), report(3, 'exited', { stopped: true }), {},
      { state: 'STARTING', steps: [5], attempt: 2 }],
    ['5 RESTARTING, ranks gone but backoff not over → waits', running(gang(G.GANG_STATE_RESTARTING, ['exited', 'exited', 'exited', 'stopping'], { nextRestartAtMs: T0 + 500 })), report(3, 'exited', { stopped: true }), {},
      { state: 'RESTARTING', steps: [], launch: [] }],
    ['5 RESTARTING, backoff over but a rank still runs → waits', running(gang(G.GANG_STATE_RESTARTING, ['exited', 'stopping', 'exited', 'exited'])), { type: 'backoffOver' }, {},
      { state: 'RESTARTING', steps: [], launch: [], restarts: 0 }],
    ['5 RESTARTING, the group is being placed again → PENDING', running(gang(G.GANG_STATE_RESTARTING, 'exited')), { type: 'backoffOver' }, { pg: group(P.PLACEMENT_GROUP_STATE_RESCHEDULING, []) },
      { state: 'PENDING', steps: [5], launch: [], restarts: 1 }],
    ['6 a failure with the budget spent → FAILED, ranks stopped', running(gang(G.GANG_STATE_READY, 'ready', { restarts: 2 })), report(0, 'exited', { exitCode: 7 }), {},
      { state: 'FAILED', steps: [6], stop: ['n1', 'n2'], timer: [] }],
    ['7 stop a READY gang → STOPPING, every node told', running(gang(G.GANG_STATE_READY, 'ready')), { type: 'stop' }, {},
      { state: 'STOPPING', steps: [7], stop: ['n1', 'n2'] }],
    ['7 stop a gang whose ranks are gone → STOPPING, STOPPED at once', running(gang(G.GANG_STATE_RESTARTING, 'exited', { nextRestartAtMs: T0 + 5_000 })), { type: 'stop' }, {},
      { state: 'STOPPED', steps: [7, 7] }],
    ['7 STOPPING, the last rank exits → STOPPED', running(gang(G.GANG_STATE_STOPPING, ['exited', 'exited', 'exited', 'stopping'])), report(3, 'exited', { stopped: true }), {},
      { state: 'STOPPED', steps: [7] }],
    ['7 STOPPING, the node of the last running ranks dies → STOPPED', running(gang(G.GANG_STATE_STOPPING, ['exited', 'exited', 'stopping', 'stopping'])), { type: 'nodeLost', nodeId: 'n2' }, {},
      { state: 'STOPPED', steps: [7], stop: [] }],
    ['5 RESTARTING, the node of the last running ranks dies, group being re-placed → PENDING', running(gang(G.GANG_STATE_RESTARTING, ['exited', 'exited', 'stopping', 'stopping'], { nextRestartAtMs: T0 - 1 })), { type: 'nodeLost', nodeId: 'n2' }, { pg: group(P.PLACEMENT_GROUP_STATE_RESCHEDULING, []) },
      { state: 'PENDING', steps: [5], launch: [], restarts: 1 }],
    ['7 stop a STOPPED gang → nothing', running(gang(G.GANG_STATE_STOPPED, 'exited')), { type: 'stop' }, {},
      { state: 'STOPPED', steps: [], stop: [], write: false }],
    ['8 the group moved off n2 → RESTARTING, not counted, no backoff', running(gang(G.GANG_STATE_READY, 'ready')), { type: 'placement' }, { pg: group(P.PLACEMENT_GROUP_STATE_RESERVED, ['n1', 'n3']) },
      { state: 'RESTARTING', steps: [8], stop: ['n1', 'n2'], timer: [], restarts: 0, moving: true }],
    ['8 then 5: the moved gang starts on the new placement, restart not counted', running(gang(G.GANG_STATE_RESTARTING, ['exited', 'exited', 'exited', 'stopping'], { nextRestartAtMs: T0 }), true), report(3, 'exited', { stopped: true }), { pg: group(P.PLACEMENT_GROUP_STATE_CREATED, ['n1', 'n3']), nodes: new Map([['n1', node('n1')], ['n3', node('n3')]]) },
      { state: 'STARTING', steps: [5], launch: ['n1', 'n3'], restarts: 0, attempt: 2, moving: false }],
    ['8 the group still holds every rank\'s node → nothing', running(gang(G.GANG_STATE_READY, 'ready')), { type: 'placement' }, {},
      { state: 'READY', steps: [], stop: [], write: false }],
    ['9 PENDING, the group was removed → FAILED', running(gang(G.GANG_STATE_PENDING, [], { attempt: 0 })), { type: 'placement' }, { pg: undefined },
      { state: 'FAILED', steps: [9], launch: [] }],
    ['9 PENDING, a fixed port is taken on the node → FAILED', { gang: gang(G.GANG_STATE_PENDING, [], { attempt: 0 }), spec: parseGangSpec({ ...wire, template: { ...wire.template!, ports: [{ name: 'http', port: 8000 }] } }), moving: false }, { type: 'placement' }, { takenPorts: portsTakenIn(new Map([['10.0.0.1', new Set([8000])]])) },
      { state: 'FAILED', steps: [9], launch: [] }],
    ['a report of an old attempt → that node is told to stop it, nothing written', running(gang(G.GANG_STATE_READY, 'ready', { attempt: 2 })), report(1, 'started'), {},
      { state: 'READY', steps: [], stop: ['n1'], write: false }],
    ['a rank that missed the stop (RESTARTING) is stopped again', running(gang(G.GANG_STATE_RESTARTING, ['exited', 'exited', 'exited', 'stopping'])), report(3, 'started'), {},
      { state: 'RESTARTING', steps: [], stop: ['n2'] }],
  ])('%s', (_name, input, ev, over, want) => {
    expect(summary(planGang(input, ev, ctx(over)))).toMatchObject(want);
  });

  it('1: a launch is PENDING on its placement group, with its event', () => {
    const p = planLaunch(spec, wireGangSpec(spec), group(P.PLACEMENT_GROUP_STATE_PENDING), 'gang9', 'req-1', T0);
    expect(p.gang).toMatchObject({ id: 'gang9', state: G.GANG_STATE_PENDING, placementGroupId: 'pg1', attempt: 0, requestId: 'req-1', createdAtMs: T0 });
    expect(p.actions).toEqual([expect.objectContaining({ type: 'transition', step: 1, event: 'gang.pending' })]);
  });

  it('never changes the record it is given', () => {
    const g = gang(G.GANG_STATE_READY, 'ready');
    const before = structuredClone(g);
    const p = planGang(running(g), report(2, 'exited'), ctx());
    expect(g).toEqual(before);
    expect(p.gang.state).toBe(G.GANG_STATE_RESTARTING);
  });

  it('launches each rank with the environment contract of its place in the layout', () => {
    const p = planGang(running(gang(G.GANG_STATE_PENDING, [], { attempt: 0 })), { type: 'placement' }, ctx());
    const n2 = p.actions.find((a) => a.type === 'launch' && a.nodeId === 'n2');
    expect(n2?.type === 'launch' && n2.shards.map((s) => [s.rank, s.env.RANK, s.env.MUSTER_PP_RANK, s.env.LOCAL_RANK, s.env.MASTER_ADDR, s.env.MUSTER_ATTEMPT])).toEqual([
      [2, '2', '1', '0', '10.0.0.1', '1'],
      [3, '3', '1', '1', '10.0.0.1', '1'],
    ]);
  });

  it('keeps the first failure and records the last, with the clock', () => {
    const first = { attempt: 1, rank: 3, nodeId: 'n2', reason: 'oom', exitCode: 137, signal: '', logTail: '', timeMs: T0 - 60_000 };
    const p = planGang(running(gang(G.GANG_STATE_READY, 'ready', { restarts: 2, firstFailure: first })), report(0, 'exited', { reason: 'giving up', exitCode: 7, logTail: 'bye' }), ctx());
    expect(p.gang.firstFailure).toEqual(first);
    expect(p.gang.lastFailure).toMatchObject({ rank: 0, nodeId: 'n1', reason: 'giving up', exitCode: 7, logTail: 'bye', timeMs: T0 });
    expect(p.gang.message).toMatch(/restart budget \(2\) spent; first failure: rank 3 on n2: oom/);
  });

  it('a rank keeps the start of its reason, phase and signal by UTF-8 bytes; the failure keeps the whole reason', () => {
    const reason = '€'.repeat(SPEC_LIMITS.reasonLength);
    const p = planGang(running(gang(G.GANG_STATE_READY, 'ready')), report(2, 'exited', { reason, signal: 'S'.repeat(100), exitCode: 1 }), ctx());
    const r2 = p.gang.ranks[2]!;
    expect(r2.reason).toBe('€'.repeat(Math.floor(SPEC_LIMITS.rankReasonBytes / 3))); // whole characters only
    expect(r2.signal).toHaveLength(32);
    expect(p.gang.lastFailure?.reason).toBe(reason);
  });

  it('writes progress while STARTING', () => {
    const p = planGang(running(gang(G.GANG_STATE_STARTING, ['ready', 'pending', 'started', 'pending'])), report(1, 'ready'), ctx());
    expect(p.gang.message).toBe(progress(p.gang));
    expect(p.gang.message).toBe('2/4 ranks ready, 3 launched, 0 failed');
  });
});

describe('gang planner: a port in use on the host (issue 15, point 8)', () => {
  const inUse = (r: number, port: number) => report(r, 'exited', { pid: 0, reason: `port-in-use: port ${port} is held by another process on this host; rank not started`, portInUse: port });

  it('the port is remembered, every rank stops, and the restart is immediate and not counted', () => {
    const p = planGang(running(gang(G.GANG_STATE_STARTING, ['started', 'started', 'pending', 'pending'])), inUse(0, 30_000), ctx());
    expect(summary(p)).toMatchObject({ state: 'RESTARTING', steps: [4], stop: ['n1', 'n2'], timer: [], restarts: 0, moving: true });
    expect(p.gang.portsInUse).toEqual([{ nodeId: 'n1', port: 30_000 }]);
    expect(p.gang.message).toMatch(/^rank 0 on n1 not started: port 30000 is in use on node n1's host .*not counted as a restart/);
    expect(p.gang.lastFailure).toMatchObject({ rank: 0, nodeId: 'n1', reason: expect.stringContaining('port 30000 is in use') });
  });

  it('the next attempt allocates around it on that host only, and tells the agent which ports to check', () => {
    const waiting = gang(G.GANG_STATE_RESTARTING, 'exited', { portsInUse: [{ nodeId: 'n1', port: 30_000 }] });
    const p = planGang({ gang: waiting, spec, moving: true }, { type: 'backoffOver' }, ctx());
    expect(summary(p)).toMatchObject({ state: 'STARTING', attempt: 2, restarts: 0, moving: false });
    const ports = (nodeId: string) => p.gang.ranks.filter((r) => r.nodeId === nodeId).map((r) => r.ports.http);
    expect(ports('n1')).toEqual([30_001, 30_002]);
    expect(ports('n2')).toEqual([30_000, 30_001]); // another host: 30000 is free there
    expect(p.gang.masterPort).toBe(30_003);
    const launch = p.actions.find((a) => a.type === 'launch' && a.nodeId === 'n1');
    expect(launch?.type === 'launch' && launch.shards.map((s) => s.ports)).toEqual([[30_001, 30_003], [30_002]]);
  });

  it('a port fixed in the spec cannot move: an ordinary, counted failure with backoff', () => {
    const fixed = parseGangSpec({ ...wire, template: { ...wire.template!, ports: [{ name: 'http', port: 31_000 }] } });
    const p = planGang({ gang: gang(G.GANG_STATE_STARTING, 'started'), spec: fixed, moving: false }, inUse(0, 31_000), ctx());
    expect(summary(p)).toMatchObject({ state: 'RESTARTING', steps: [4], timer: ['backoffOver@+1000'], moving: false });
    expect(p.gang.portsInUse).toEqual([]);
  });

  it('an exhausted range fails the gang (step 9) instead of looping', () => {
    const taken = Array.from({ length: 3 }, (_, i) => ({ nodeId: 'n1', port: 30_000 + i }));
    const waiting = gang(G.GANG_STATE_RESTARTING, 'exited', { portsInUse: taken });
    const p = planGang({ gang: waiting, spec, moving: true }, { type: 'backoffOver' }, ctx({ portRange: { first: 30_000, last: 30_003 } }));
    expect(summary(p)).toMatchObject({ state: 'FAILED', steps: [9] });
    expect(p.gang.message).toMatch(/no free port left in 30000-30003 on node n1/);
  });

  it('the record keeps at most MAX_PORTS_IN_USE ports, the newest', () => {
    const many = Array.from({ length: MAX_PORTS_IN_USE }, (_, i) => ({ nodeId: 'n2', port: 31_000 + i }));
    const p = planGang(running(gang(G.GANG_STATE_STARTING, 'started', { portsInUse: many })), inUse(0, 30_000), ctx());
    expect(p.gang.portsInUse).toHaveLength(MAX_PORTS_IN_USE);
    expect(p.gang.portsInUse.at(-1)).toEqual({ nodeId: 'n1', port: 30_000 });
    expect(p.gang.portsInUse[0]).toEqual({ nodeId: 'n2', port: 31_001 });
  });
});

/**
 * The replica group planner, one rule per row: a group's record, what the
 * head sees of its replicas and the clock in; the actions (as
 * "kind:replica", new replicas are n1, n2, …) and the stored next record out.
 */
import { describe, expect, it } from 'vitest';
import { GangState as G, type ReplicaGroup, type Replica } from '@muster/proto';
import { planReplicaGroup, type RgPlanInput, type ReplicaView } from './rg-plan.js';
import { parseRgSpec, revisionOf, type ValidRgSpec } from './rg-spec.js';

const T0 = 10_000_000;
const spec = (over: Partial<Parameters<typeof parseRgSpec>[0] & object> = {}): ValidRgSpec =>
  parseRgSpec({ name: 'g', template: { command: 'x', args: [], env: {}, ports: [], readiness: undefined, workingDir: '' } as never, replicas: { min: 0, max: 10, initial: 1 }, ...over } as never);
const V1 = spec();
const V2 = spec({ template: { command: 'y', args: [], env: {}, ports: [], readiness: undefined, workingDir: '' } as never });
const CANARY = spec({ template: V2.template, rollout: { strategy: 'canary', canaryWeight: 0.25, maxSurge: 1 } });
const R1 = revisionOf(V1);
const R2 = revisionOf(V2);

/** A replica `id` of revision R1 (by default), READY, created at T0 + its number. */
function rep(id: string, over: Partial<Replica> = {}): Replica {
  return { id, revision: R1, state: 'ready', placementGroupId: `pg-${id}`, gangId: `gang-${id}`, subject: `muster.rg.g.${id}`, message: '', createdAtMs: T0 + Number(id.replace(/\D/g, '') || 0), replaces: '', ...over };
}

function group(desired: number, replicas: Replica[], over: Partial<ReplicaGroup> = {}): ReplicaGroup {
  return { name: 'g', spec: V1, desired, revision: R1, stableRevision: '', replicas, membershipVersion: 0, message: '', createdAtMs: T0, deleting: false, stableSpec: undefined, autoscaler: undefined, ...over };
}

/** Views: every replica's gang in the state its record says, unless `over` says otherwise. */
function input(rg: ReplicaGroup, over: Partial<RgPlanInput> & { see?: Record<string, ReplicaView> } = {}): RgPlanInput {
  const gangState = { ready: G.GANG_STATE_READY, starting: G.GANG_STATE_STARTING, draining: G.GANG_STATE_READY, stopping: G.GANG_STATE_STOPPING, failed: G.GANG_STATE_FAILED } as Record<string, G>;
  const views = new Map<string, ReplicaView>(rg.replicas.map((r) => [r.id, { gang: r.gangId ? { state: gangState[r.state]!, message: 'as recorded' } : undefined, ...over.see?.[r.id] }]));
  let n = 0;
  return { rg, spec: V1, stableSpec: undefined, views, drainingSince: new Map(), failures: [], listening: true, subjectPrefix: 'muster', nowMs: T0, newId: () => `n${++n}`, ...over };
}

const gang = (state: G, message = '') => ({ gang: { state, message } });
const ago = (ms: number) => T0 - ms;

describe('planReplicaGroup: one rule per row', () => {
  it.each<[string, RgPlanInput, string[], RegExp?]>([
    // 1-4: replica states follow their gangs.
    ['2. gang READY → ready', input(group(1, [rep('r1', { state: 'starting' })]), { see: { r1: gang(G.GANG_STATE_READY) } }), ['follow:r1']],
    ['3. gang restarting → starting (leaves the membership)', input(group(1, [rep('r1')]), { see: { r1: gang(G.GANG_STATE_RESTARTING, 'rank 1 died') } }), ['follow:r1']],
    ['4. gang FAILED → failed, its placement group freed, a replacement started', input(group(1, [rep('r1')]), { see: { r1: gang(G.GANG_STATE_FAILED, 'out of restarts') } }), ['fail:r1', 'free:r1', 'materialize:n1']],
    ['4. gang gone → failed', input(group(1, [rep('r1')]), { see: { r1: { gang: undefined } } }), ['fail:r1', 'free:r1', 'materialize:n1']],
    ['1. recorded without a gang (failover) → made again', input(group(1, [rep('r1', { state: 'starting', gangId: '', placementGroupId: '' })])), ['materialize:r1']],
    ['1. recorded without a gang, revision no longer wanted → failed', input(group(1, [rep('r1', { state: 'starting', gangId: '', placementGroupId: '', revision: 'gone' })])), ['fail:r1', 'materialize:n1']],
    // Replacement budget.
    ['budget: more than maxReplacements (3) failed in 10 min → nothing started', input(group(1, [rep('r1')]), { see: { r1: gang(G.GANG_STATE_FAILED, 'boom') }, failures: [ago(1000), ago(2000), ago(3000)] }), ['fail:r1', 'free:r1'], /4 replica\(s\) failed in the last 10 min, more than maxReplacements 3: not replacing \(last: boom\)/],
    ['budget: failures older than 10 min do not count', input(group(1, [rep('r1')]), { see: { r1: gang(G.GANG_STATE_FAILED) }, failures: [ago(600_001), ago(700_000), ago(800_000)] }), ['fail:r1', 'free:r1', 'materialize:n1']],
    ['budget: maxReplacements 0 → never replaced', input(group(1, [rep('r1')]), { spec: spec({ maxReplacements: 0 }), see: { r1: gang(G.GANG_STATE_FAILED) } }), ['fail:r1', 'free:r1'], /more than maxReplacements 0/],
    // 5-6: drains.
    ['5→6. draining, idle report 1 s after the drain began → stopping', input(group(0, [rep('r1', { state: 'draining' })]), { drainingSince: new Map([['r1', ago(2000)]]), see: { r1: { load: { inFlight: 0, queued: 0, timeMs: ago(500) } } } }), ['stop:r1']],
    ['5. draining, calls in flight, before the deadline → waits', input(group(0, [rep('r1', { state: 'draining' })]), { drainingSince: new Map([['r1', ago(2000)]]), see: { r1: { load: { inFlight: 2, queued: 0, timeMs: ago(100) } } } }), []],
    ['5. draining, idle report from before the drain → waits', input(group(0, [rep('r1', { state: 'draining' })]), { drainingSince: new Map([['r1', ago(2000)]]), see: { r1: { load: { inFlight: 0, queued: 0, timeMs: ago(1500) } } } }), []],
    ['5. draining with no recorded start (a new leader) → counts from now, waits', input(group(0, [rep('r1', { state: 'draining' })])), []],
    ['5→6. draining past drainDeadlineMs → stopping', input(group(0, [rep('r1', { state: 'draining' })]), { drainingSince: new Map([['r1', ago(30_000)]]) }), ['stop:r1']],
    ['5→6. no load reports heard (no NATS) → stopping at once', input(group(0, [rep('r1', { state: 'draining' })]), { listening: false }), ['stop:r1']],
    ['6. stopping, gang STOPPED → retired', input(group(0, [rep('r1', { state: 'stopping' })]), { see: { r1: gang(G.GANG_STATE_STOPPED) } }), ['retire:r1']],
    ['6. stopping, gang still READY (a head stopped before stopping it) → stopped again', input(group(0, [rep('r1', { state: 'stopping' })]), { see: { r1: gang(G.GANG_STATE_READY) } }), ['stop:r1']],
    ['6. stopping, gang STOPPING → waits', input(group(0, [rep('r1', { state: 'stopping' })])), []],
    // Scaling.
    ['scale up: missing replicas of the revision are started', input(group(3, [rep('r1')])), ['materialize:n1', 'materialize:n2']],
    ['scale down: not READY first, then newest', input(group(1, [rep('r1'), rep('r2', { state: 'starting' }), rep('r3')])), ['drain:r2', 'drain:r3']],
    ['scale down: a replica on a draining node first', input(group(2, [rep('r1'), rep('r2'), rep('r3')]), { see: { r1: { drainingNodes: ['gpu-1'] } } }), ['drain:r1']],
    // Rolling update.
    ['rolling: new revision, at most maxSurge (1) above desired', input(group(2, [rep('r1'), rep('r2')], { revision: R2 }), { spec: V2 }), ['materialize:n1']],
    ['rolling: an old replica drained per new one READY (not READY first, then newest)', input(group(2, [rep('r1'), rep('r2'), rep('r3', { revision: R2 })], { revision: R2 }), { spec: V2 }), ['drain:r2']],
    ['rolling: surge spent, none READY yet → waits', input(group(2, [rep('r1'), rep('r2'), rep('r3', { revision: R2, state: 'starting' })], { revision: R2 }), { spec: V2 }), []],
    // Canary.
    ['canary: stable keeps desired, canary gets round(desired × weight)', input(group(4, [rep('r1'), rep('r2'), rep('r3'), rep('r4')], { revision: R2, stableRevision: R1 }), { spec: CANARY, stableSpec: V1 }), ['materialize:n1']],
    ['canary: at least one canary replica', input(group(1, [rep('r1')], { revision: R2, stableRevision: R1 }), { spec: CANARY, stableSpec: V1 }), ['materialize:n1']],
    // 7-8: make-before-break off draining nodes.
    ['7. a replica on a draining node gets a replacement (one move at a time)', input(group(2, [rep('r1'), rep('r2')]), { see: { r1: { drainingNodes: ['gpu-1'] }, r2: { drainingNodes: ['gpu-1'] } } }), ['materialize:n1'], /moving r1 off draining node gpu-1: replacement n1 starting \(placing\); 1 replica\(s\) on draining nodes wait their turn/],
    ['7. the replacement counts with its evacuee: no scale-down of either', input(group(1, [rep('r1'), rep('r2', { state: 'starting', replaces: 'r1' })]), { see: { r1: { drainingNodes: ['gpu-1'] }, r2: { progress: 'waiting for capacity: no node fits' } } }), [], /replacement r2 waiting for capacity: no node fits/],
    ['8. replacement READY → the evacuee drains', input(group(1, [rep('r1'), rep('r2', { replaces: 'r1' })]), { see: { r1: { drainingNodes: ['gpu-1'] } } }), ['drain:r1']],
    ['7. uncordoned before READY: the replacement is plain surplus', input(group(1, [rep('r1'), rep('r2', { state: 'starting', replaces: 'r1' })])), ['drain:r2']],
    // Delete.
    ['delete: nothing left → the record goes', input(group(0, [], { deleting: true })), ['delete:']],
    ['delete: a failed replica still holding its placement group is freed first', input(group(0, [rep('r1', { state: 'failed' })], { deleting: true })), ['free:r1']],
    ['delete: every live replica drains, nothing is started', input(group(0, [rep('r1'), rep('r2', { state: 'starting' })], { deleting: true })), ['drain:r2', 'drain:r1']],
    ['delete: no replacement for a replica on a draining node', input(group(0, [rep('r1')], { deleting: true }), { see: { r1: { drainingNodes: ['gpu-1'] } } }), ['drain:r1']],
  ])('%s', (_name, inp, want, message) => {
    const plan = planReplicaGroup(inp);
    expect(plan.actions.map((a) => `${a.kind}:${'replicaId' in a ? a.replicaId : ''}`)).toEqual(want);
    for (const a of plan.actions) expect(a.reason).not.toBe('');
    if (message) expect(plan.next.message).toMatch(message);
  });
});

describe('planReplicaGroup: the record it stores', () => {
  it('records a started replica before anything is made for it, and a replacement names what it replaces', () => {
    const plan = planReplicaGroup(input(group(1, [rep('r1')]), { see: { r1: { drainingNodes: ['gpu-1'] } } }));
    expect(plan.next.replicas.find((r) => r.id === 'n1')).toMatchObject({ state: 'starting', gangId: '', placementGroupId: '', replaces: 'r1', subject: 'muster.rg.g.n1' });
  });

  it('keeps the last three failed replicas, and forgets none that still holds its placement group', () => {
    const failed = ['f1', 'f2', 'f3', 'f4'].map((id) => rep(id, { state: 'failed', placementGroupId: '' }));
    const holding = rep('f0', { state: 'failed' });
    const plan = planReplicaGroup(input(group(0, [holding, ...failed])));
    expect(plan.next.replicas.map((r) => r.id)).toEqual(['f0', 'f2', 'f3', 'f4']);
  });

  it('changes nothing in the input (the stored record is not touched)', () => {
    const rg = group(1, [rep('r1', { state: 'starting' })]);
    const before = structuredClone(rg);
    const plan = planReplicaGroup(input(rg, { see: { r1: gang(G.GANG_STATE_READY) } }));
    expect(rg).toEqual(before);
    expect(plan.next.replicas[0]!.state).toBe('ready');
  });

  it('leaves a settled group as it is (no write)', () => {
    const rg = group(2, [rep('r1'), rep('r2')], { message: '2/2 ready' });
    const plan = planReplicaGroup(input(rg));
    expect(plan.actions).toEqual([]);
    expect(plan.next).toEqual(rg);
  });
});

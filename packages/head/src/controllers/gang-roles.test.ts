/**
 * The gang planner on a gang with roles (1 prefill of tp 2 + 2 decode): the
 * launch carries each rank's role into its record and each agent's orders,
 * the barrier waits for every role, and a decode rank's exit stops and
 * restarts every rank of every role. gang-plan.ts knows nothing of roles:
 * these rows show it need not.
 */
import { describe, expect, it } from 'vitest';
import { GangState as G, PlacementGroupState as P, type Gang, type GangSpec, type Node, type PlacementGroup, type ShardTemplate } from '@muster/proto';
import { planGang, type GangContext } from './gang-plan.js';
import { parseGangSpec, wireGangSpec } from './gang-spec.js';
import { NO_PORTS_TAKEN } from './port-ledger.js';
import { portsInUse } from './port-scan.test-support.js';
import { startupBudgetMs } from './gang-warmup.js';

const T0 = 1_000_000;
const template = (command: string): ShardTemplate => ({ command, args: [], env: {}, cwd: '', ports: [{ name: 'http', port: 0 }], readiness: undefined, liveness: undefined, warmup: undefined });
const wire: GangSpec = {
  name: 'pd-r1', placementGroup: 'pg1', tp: 0, pp: 0, template: undefined, logMaxBytes: 0, replicaGroup: 'pd', replicaId: 'r1',
  startup: { deadlineMs: 10_000, maxRestarts: 2, backoffInitialMs: 1_000, backoffMaxMs: 3_000, gracePeriodMs: 0 },
  roles: [{ name: 'prefill', count: 1, tp: 2, pp: 1, template: template('prefill') }, { name: 'decode', count: 2, tp: 1, pp: 1, template: template('decode') }],
};
const spec = parseGangSpec(wire);
const placement = (bundleIndex: number, nodeId: string, gpus: number[]) => ({ bundleIndex, nodeId, gpuIndices: gpus, migUuids: [], cpuMillis: 0, memoryBytes: 0, custom: {}, gpuUuids: [] });
const bundle = (gpus: number) => ({ cpuMillis: 0, memoryBytes: 0, gpus, gpuMemoryMib: 0, migProfile: '', custom: {} });
const pg: PlacementGroup = {
  id: 'pg1', state: P.PLACEMENT_GROUP_STATE_CREATED, placements: [placement(0, 'n1', [0, 1]), placement(1, 'n1', [2]), placement(2, 'n2', [0])], reason: undefined,
  createdAtMs: 0, stateChangedAtMs: 0, reschedules: 0, requestId: '',
  spec: { name: 'pd-r1', strategy: 'PACK', bundles: [bundle(2), bundle(1), bundle(1)], topology: [], matchLabels: {}, tolerations: [], priority: 0 },
};
const ctx: GangContext = { nowMs: T0, pg, nodes: new Map([['n1', { nodeId: 'n1', address: '10.0.0.1' } as Node], ['n2', { nodeId: 'n2', address: '10.0.0.2' } as Node]]), takenPorts: NO_PORTS_TAKEN, portRange: { first: 30_000, last: 30_100 } };
const pending: Gang = {
  id: 'g1', spec: wireGangSpec(spec), state: G.GANG_STATE_PENDING, placementGroupId: 'pg1', attempt: 0, restarts: 0, ranks: [], firstFailure: undefined, lastFailure: undefined,
  message: '', createdAtMs: 0, stateChangedAtMs: 0, nextRestartAtMs: 0, masterAddr: '', masterPort: 0, requestId: '', portsInUse: [],
};
const report = (g: Gang, rank: number, phase: string, over = {}) => ({
  type: 'report' as const, nodeId: g.ranks[rank]!.nodeId,
  report: { gangId: 'g1', attempt: g.attempt, rank, phase, pid: 100 + rank, exitCode: undefined, signal: '', reason: '', stopped: false, logTail: '', portInUse: 0, warmupMs: 0, ...over },
});

describe('gang planner with roles', () => {
  const started = planGang({ gang: pending, spec, moving: false }, { type: 'placement' }, ctx);

  it('launches every role\'s ranks with their role in the record and their role\'s command in the orders', () => {
    expect(G[started.gang.state]).toBe('GANG_STATE_STARTING');
    expect(started.gang.ranks.map((r) => [r.rank, r.role, r.roleIndex, r.tpRank, r.nodeId])).toEqual([[0, 'prefill', 0, 0, 'n1'], [1, 'prefill', 0, 1, 'n1'], [2, 'decode', 0, 0, 'n1'], [3, 'decode', 1, 0, 'n2']]);
    // Each instance's first rank holds its rendezvous port, and the ledger counts it.
    const firsts = started.gang.ranks.filter((r) => r.masterPort > 0).map((r) => r.rank);
    expect(firsts).toEqual([0, 2, 3]);
    const used = portsInUse([started.gang], ctx.nodes);
    for (const r of started.gang.ranks) if (r.masterPort) expect(used.get(ctx.nodes.get(r.nodeId)!.address)!.has(r.masterPort)).toBe(true);
    const launches = started.actions.flatMap((a) => (a.type === 'launch' ? a.shards.map((s) => [a.nodeId, s.rank, s.command]) : []));
    expect(launches).toEqual([['n1', 0, 'prefill'], ['n1', 1, 'prefill'], ['n1', 2, 'decode'], ['n2', 3, 'decode']]);
  });

  it('is READY only when every rank of every role is', () => {
    let g = started.gang;
    for (const rank of [0, 1, 2]) g = planGang({ gang: g, spec, moving: false }, report(g, rank, 'ready'), ctx).gang;
    expect(G[g.state]).toBe('GANG_STATE_STARTING');
    g = planGang({ gang: g, spec, moving: false }, report(g, 3, 'ready'), ctx).gang;
    expect(G[g.state]).toBe('GANG_STATE_READY');
  });

  it('a decode rank\'s exit stops every rank of every role, on both nodes', () => {
    let g = started.gang;
    for (const rank of [0, 1, 2, 3]) g = planGang({ gang: g, spec, moving: false }, report(g, rank, 'ready'), ctx).gang;
    const failed = planGang({ gang: g, spec, moving: false }, report(g, 3, 'exited', { exitCode: 1 }), ctx);
    expect(G[failed.gang.state]).toBe('GANG_STATE_RESTARTING');
    expect(failed.actions.filter((a) => a.type === 'stop').map((a) => (a.type === 'stop' ? a.nodeId : '')).sort()).toEqual(['n1', 'n2']);
  });
});

describe('gang with roles: one template per role', () => {
  const refusal = (w: GangSpec) => {
    try {
      parseGangSpec(w);
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error('accepted');
  };

  it('derives the gang\'s template, tp and pp from its first role, and stores them only there', () => {
    expect([spec.template.command, spec.tp, spec.pp]).toEqual(['prefill', 2, 1]);
    const stored = wireGangSpec(spec);
    expect([stored.template, stored.tp, stored.pp]).toEqual([undefined, 0, 0]);
    expect(parseGangSpec(stored)).toEqual(spec);
  });

  it('reads a zero count, tp or pp of a role as the default, 1 (proto3 cannot send unset)', () => {
    const s = parseGangSpec({ ...wire, roles: wire.roles.map((r) => ({ ...r, count: 0, tp: 0, pp: 0 })) });
    expect(s.roles.map((r) => [r.count, r.tp, r.pp])).toEqual([[1, 1, 1], [1, 1, 1]]);
  });

  it('refuses a gang-level template or tp next to roles', () => {
    expect(refusal({ ...wire, template: template('prefill') })).toContain('template: a gang with roles');
    expect(refusal({ ...wire, tp: 2 })).toContain('tp: a gang with roles');
  });

  it('the startup budget counts the first role\'s warm-up timeout', () => {
    const warmup = { requests: [{ kind: 'http', json: '', payload: Buffer.alloc(0), stream: false, port: 'http', method: 'GET', path: '/', headers: {}, body: '', expectStatus: 0, command: [] }], timeoutMs: 60_000 };
    const first = wire.roles[0]!;
    const s = parseGangSpec({ ...wire, roles: [{ ...first, template: { ...first.template!, warmup } }, ...wire.roles.slice(1)] });
    expect(startupBudgetMs(s)).toBe(10_000 + 60_000);
  });
});

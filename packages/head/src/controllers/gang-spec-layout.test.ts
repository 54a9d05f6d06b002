/**
 * The rank layout, pinned field by field: a gang without roles (one world,
 * stages node by node) and a gang with roles (one world per instance, stages
 * in bundle index order) are laid out by the same step (gang-layout.ts), so a
 * gang of one role of one instance gets, rank for rank, what the same gang
 * without roles gets — where its bundles are already in node order.
 */
import { describe, expect, it } from 'vitest';
import { isMusterError } from '@muster/common';
import type { GangSpec, Node, PlacementGroup, ShardTemplate } from '@muster/proto';
import { parseGangSpec, planLayout, type LayoutPlan, type ValidGangSpec } from './gang-spec.js';
import { LayoutPorts, NO_PORTS_TAKEN } from './port-ledger.js';

type Ports = { name: string; port: number }[];
const HTTP: Ports = [{ name: 'http', port: 0 }];
const template = (command: string, ports: Ports): ShardTemplate => ({ command, args: [], env: {}, cwd: '', ports, readiness: undefined, liveness: undefined, warmup: undefined });
const base: GangSpec = { name: 'g', placementGroup: 'pg', tp: 0, pp: 0, template: undefined, startup: undefined, logMaxBytes: 0, replicaGroup: '', replicaId: '', roles: [] };
const plain = (tp: number, pp: number, ports = HTTP) => parseGangSpec({ ...base, tp, pp, template: template('serve', ports) });
const withRoles = (...roles: { name: string; count: number; tp: number; pp: number; ports?: Ports }[]) =>
  parseGangSpec({ ...base, roles: roles.map((r) => ({ name: r.name, count: r.count, tp: r.tp, pp: r.pp, template: template(r.name, r.ports ?? HTTP) })) });

/** A placed group: bundle i on `on[i]` = [node, GPU indices] (or MIG UUIDs). */
function group(on: [string, (number | string)[]][]): PlacementGroup {
  const placements = on.map(([nodeId, gpus], bundleIndex) => ({
    bundleIndex, nodeId, cpuMillis: 0, memoryBytes: 0, custom: {}, gpuUuids: [],
    gpuIndices: gpus.filter((g) => typeof g === 'number'), migUuids: gpus.filter((g) => typeof g === 'string'),
  }));
  return { id: 'pg1', placements, spec: { name: 'pg', bundles: on.map(([, gpus]) => ({ gpus: gpus.length })) } } as unknown as PlacementGroup;
}
const nodes = new Map([['n1', { nodeId: 'n1', address: '10.0.0.1' } as Node], ['n2', { nodeId: 'n2', address: '10.0.0.2' } as Node]]);
const layout = (spec: ValidGangSpec, pg: PlacementGroup) => planLayout(spec, pg, nodes, new LayoutPorts(nodes, NO_PORTS_TAKEN, { first: 30_000, last: 30_100 }));

/** rank, node, tp, pp, local rank, local world size, CUDA_VISIBLE_DEVICES, ports. */
const table = (plan: LayoutPlan) => plan.ranks.map((r) => [r.rank, r.nodeId, r.tpRank, r.ppRank, r.localRank, r.localWorldSize, r.cudaVisibleDevices, r.ports]);
/** name, instance, count, rank in the instance, tp, pp, rendezvous. */
const roles = (plan: LayoutPlan) => plan.ranks.map((r) => r.role && [r.role.name, r.role.index, r.role.count, r.role.rank, r.role.tp, r.role.pp, `${r.role.masterAddr}:${r.role.masterPort}`]);
const refusal = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return isMusterError(e) ? [e.message, e.details.field] : e;
  }
  throw new Error('accepted');
};

describe('gang layout without roles', () => {
  it('maps stages to bundles node by node, splits each bundle\'s GPUs over its TP ranks, and allocates ports rank by rank', () => {
    const plan = layout(plain(2, 3, [{ name: 'http', port: 0 }, { name: 'nccl', port: 0 }]), group([['n1', [0, 1]], ['n2', [0, 1]], ['n1', [2, 3]]]));
    expect(table(plan)).toEqual([
      [0, 'n1', 0, 0, 0, 4, '0', { http: 30_000, nccl: 30_001 }],
      [1, 'n1', 1, 0, 1, 4, '1', { http: 30_002, nccl: 30_003 }],
      [2, 'n1', 0, 1, 2, 4, '2', { http: 30_004, nccl: 30_005 }], // bundle 2: n1's second
      [3, 'n1', 1, 1, 3, 4, '3', { http: 30_006, nccl: 30_007 }],
      [4, 'n2', 0, 2, 0, 2, '0', { http: 30_000, nccl: 30_001 }], // another host: its own ports
      [5, 'n2', 1, 2, 1, 2, '1', { http: 30_002, nccl: 30_003 }],
    ]);
    expect([plan.masterAddr, plan.masterPort, plan.endpoints, plan.roleEnv]).toEqual(['10.0.0.1', 30_008, undefined, undefined]);
    expect(roles(plan)).toEqual([undefined, undefined, undefined, undefined, undefined, undefined]);
  });

  it('gives MIG UUIDs over GPU indices, and a fixed port as it is (once a host)', () => {
    const plan = layout(plain(1, 2, [{ name: 'http', port: 8000 }, { name: 'nccl', port: 0 }]), group([['n2', ['MIG-a', 'MIG-b']], ['n1', [0, 1]]]));
    expect(table(plan)).toEqual([
      [0, 'n2', 0, 0, 0, 1, 'MIG-a,MIG-b', { http: 8000, nccl: 30_000 }],
      [1, 'n1', 0, 1, 0, 1, '0,1', { http: 8000, nccl: 30_000 }],
    ]);
    expect([plan.masterAddr, plan.masterPort]).toEqual(['10.0.0.2', 30_001]);
  });
});

describe('gang layout with roles', () => {
  it('lays out each instance as its own world on its bundles in index order, with its own rendezvous', () => {
    const spec = withRoles({ name: 'prefill', count: 1, tp: 2, pp: 1 }, { name: 'decode', count: 2, tp: 1, pp: 2 });
    const plan = layout(spec, group([['n1', [0, 1]], ['n1', [2]], ['n2', [0]], ['n2', [1]], ['n2', [2]]]));
    expect(table(plan)).toEqual([
      [0, 'n1', 0, 0, 0, 2, '0', { http: 30_000 }],
      [1, 'n1', 1, 0, 1, 2, '1', { http: 30_001 }],
      [2, 'n1', 0, 0, 0, 1, '2', { http: 30_003 }], // after prefill's rendezvous, 30002
      [3, 'n2', 0, 1, 0, 1, '0', { http: 30_000 }],
      [4, 'n2', 0, 0, 0, 2, '1', { http: 30_001 }], // local ranks count the instance's ranks only
      [5, 'n2', 0, 1, 1, 2, '2', { http: 30_002 }],
    ]);
    expect(roles(plan)).toEqual([
      ['prefill', 0, 1, 0, 2, 1, '10.0.0.1:30002'],
      ['prefill', 0, 1, 1, 2, 1, '10.0.0.1:30002'],
      ['decode', 0, 2, 0, 1, 2, '10.0.0.1:30004'],
      ['decode', 0, 2, 1, 1, 2, '10.0.0.1:30004'],
      ['decode', 1, 2, 0, 1, 2, '10.0.0.2:30003'],
      ['decode', 1, 2, 1, 1, 2, '10.0.0.2:30003'],
    ]);
    expect([plan.masterAddr, plan.masterPort]).toEqual(['10.0.0.1', 30_002]);
    expect(plan.endpoints).toEqual([
      { role: 'prefill', index: 0, host: '10.0.0.1', ports: { http: 30_000 } },
      { role: 'decode', index: 0, host: '10.0.0.1', ports: { http: 30_003 } },
      { role: 'decode', index: 1, host: '10.0.0.2', ports: { http: 30_001 } },
    ]);
  });

  it('refuses a bundle that is not placed', () => {
    const pg = group([['n1', [0]], ['n1', [1]]]);
    expect(refusal(() => layout(withRoles({ name: 'a', count: 1, tp: 1, pp: 2 }), { ...pg, placements: pg.placements.slice(0, 1) }))).toEqual(['invalid gang spec: roles: bundle 1 of placement group pg is not placed', 'roles']);
  });
});

describe('one role of one instance is the gang without roles', () => {
  const shapes: [string, number, number, Ports, [string, (number | string)[]][]][] = [
    ['tp 1 × pp 1', 1, 1, HTTP, [['n1', [3]]]],
    ['tp 2 × pp 2 over two nodes', 2, 2, HTTP, [['n1', [0, 1]], ['n2', [4, 5]]]],
    ['tp 4 × pp 1, 2 GPUs a rank, no ports', 4, 1, [], [['n1', [0, 1, 2, 3, 4, 5, 6, 7]]]],
    ['tp 2 × pp 3, MIG', 2, 3, [{ name: 'http', port: 0 }, { name: 'nccl', port: 0 }], [['n1', [0, 1]], ['n1', ['MIG-a', 'MIG-b']], ['n2', [0, 1]]]],
    ['tp 1 × pp 2, a fixed port once a host', 1, 2, [{ name: 'http', port: 8000 }, { name: 'nccl', port: 0 }], [['n2', [7]], ['n1', [0]]]],
  ];
  it.each(shapes)('%s', (_name, tp, pp, ports, on) => {
    const pg = group(on);
    const alone = layout(plain(tp, pp, ports), pg);
    const role = layout(withRoles({ name: 'solo', count: 1, tp, pp, ports }), pg);
    expect(role.ranks.map(({ role: _, ...r }) => r)).toEqual(alone.ranks);
    expect([role.masterAddr, role.masterPort]).toEqual([alone.masterAddr, alone.masterPort]);
    for (const r of role.ranks) expect(r.role).toMatchObject({ rank: r.rank, masterAddr: alone.masterAddr, masterPort: alone.masterPort });
  });

  it('but not where a node\'s bundles are apart: a plain gang keeps a node\'s stages together, a role instance takes bundle order', () => {
    const pg = group([['n1', [0]], ['n2', [0]], ['n1', [1]]]);
    expect(table(layout(plain(1, 3), pg)).map((r) => r.slice(1, 7))).toEqual([['n1', 0, 0, 0, 2, '0'], ['n1', 0, 1, 1, 2, '1'], ['n2', 0, 2, 0, 1, '0']]);
    expect(table(layout(withRoles({ name: 'solo', count: 1, tp: 1, pp: 3 }), pg)).map((r) => r.slice(1, 7))).toEqual([['n1', 0, 0, 0, 2, '0'], ['n2', 0, 1, 0, 1, '0'], ['n1', 0, 2, 1, 2, '1']]);
  });

  it('a fixed port that clashes is refused, named as each spec spells the field', () => {
    const pg = group([['n1', [0]], ['n1', [1]]]);
    const fixed = [{ name: 'http', port: 8000 }];
    const why = 'template.ports: port 8000 ("http") clashes on node n1 (another rank or gang there uses it); use port 0 to have one allocated';
    expect(refusal(() => layout(plain(1, 2, fixed), pg))).toEqual([`invalid gang spec: ${why}`, 'template.ports']);
    expect(refusal(() => layout(withRoles({ name: 'solo', count: 1, tp: 1, pp: 2, ports: fixed }), pg))).toEqual([`invalid gang spec: roles: ${why}`, 'roles']);
  });
});

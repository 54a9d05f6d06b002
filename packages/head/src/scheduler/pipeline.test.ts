import { describe, expect, it } from 'vitest';
import { placeGroup, schedule } from './pipeline.js';
import { A100_MIG, DGX1_V100, HGX_H100, PCIE_4090, TWO_TRAY_16, makeNode, type NodeOptions, type NodeProfile } from './profiles.js';
import { ReasonCode } from './reasons.js';
import { parsePlacementGroupSpec, type PgSpecInput } from './spec.js';
import { ClusterState } from './state.js';
import type { ValidPgSpec, Reservation, ScheduleResult, SchedulerNode } from './types.js';

function spec(input: Omit<PgSpecInput, 'name'> & { name?: string }): ValidPgSpec {
  const r = parsePlacementGroupSpec({ name: 'pg', ...input });
  if (!r.ok) throw new Error(r.message);
  return r.spec;
}

function gpuBundles(...sizes: number[]) {
  return sizes.map((gpus) => ({ gpus, cpuMillis: 1000, memoryBytes: 2 ** 30 }));
}

function node(profile: NodeProfile, id: string, opts?: NodeOptions): SchedulerNode {
  return makeNode(profile, id, opts);
}

function busy(nodeId: string, gpuIndices: number[], groupId = `busy-${nodeId}`): Reservation {
  return { groupId, bundleIndex: 0, nodeId, gpuIndices, migUuids: [], cpuMillis: 0, memoryBytes: 0, custom: {} };
}

function placed(r: ScheduleResult) {
  if (r.status !== 'PLACED') throw new Error(`expected PLACED, got ${r.status}: ${r.reason.message}`);
  return r.placements;
}

describe('placement', () => {
  it('puts a TP8 bundle on the NVLink node, not the PCIe node with 8 free GPUs (island fit is the top tier)', () => {
    const r = schedule({ nodes: [node(PCIE_4090, 'pcie'), node(HGX_H100, 'h100')], reservations: [] }, spec({ bundles: gpuBundles(8) }));
    expect(placed(r)).toMatchObject([{ nodeId: 'h100', gpuIndices: [0, 1, 2, 3, 4, 5, 6, 7] }]);
  });

  it('best fit: a 2-GPU bundle fills the half-used node and keeps the idle one whole', () => {
    const r = schedule({ nodes: [node(HGX_H100, 'a'), node(HGX_H100, 'b')], reservations: [busy('b', [0, 1, 2, 3])] }, spec({ bundles: gpuBundles(2) }));
    expect(placed(r)).toMatchObject([{ nodeId: 'b', gpuIndices: [4, 5] }]);
  });

  it('honours reservations in the snapshot: busy GPUs are never handed out again', () => {
    const r = schedule({ nodes: [node(HGX_H100, 'a')], reservations: [busy('a', [0, 2, 4, 6])] }, spec({ bundles: gpuBundles(4) }));
    expect(placed(r)[0]!.gpuIndices).toEqual([1, 3, 5, 7]);
  });

  it('is pure: placeGroup leaves the state as it found it', () => {
    const state = ClusterState.from({ nodes: [node(HGX_H100, 'a'), node(DGX1_V100, 'b')], reservations: [busy('a', [0])] });
    const before = state.usage();
    placed(placeGroup(state, spec({ bundles: gpuBundles(4, 4, 2) })));
    placeGroup(state, spec({ bundles: gpuBundles(8, 8, 8) }));
    expect(state.usage()).toEqual(before);
  });

  it('all or nothing: a gang whose last bundle does not fit places nothing', () => {
    const state = ClusterState.from({ nodes: [node(HGX_H100, 'a'), node(HGX_H100, 'b')], reservations: [busy('b', [0])] });
    const r = placeGroup(state, spec({ bundles: gpuBundles(8, 8) }));
    expect(r.status).toBe('PENDING');
    expect(state.usage().freeGpus).toBe(15);
  });
});

describe('strategies', () => {
  const four = () => [node(HGX_H100, 'a'), node(HGX_H100, 'b'), node(HGX_H100, 'c')];

  it('PACK puts pipeline stages on one node when they fit', () => {
    const ps = placed(schedule({ nodes: four(), reservations: [] }, spec({ strategy: 'PACK', bundles: gpuBundles(4, 4) })));
    expect(new Set(ps.map((p) => p.nodeId)).size).toBe(1);
  });

  it('SPREAD puts bundles on different nodes when it can', () => {
    const ps = placed(schedule({ nodes: four(), reservations: [] }, spec({ strategy: 'SPREAD', bundles: gpuBundles(2, 2, 2) })));
    expect(new Set(ps.map((p) => p.nodeId)).size).toBe(3);
  });

  it('STRICT_PACK finds the one node with room, even when best fit would start elsewhere', () => {
    const r = schedule(
      { nodes: [node(HGX_H100, 'a'), node(TWO_TRAY_16, 'big')], reservations: [busy('a', [0, 1, 2, 3])] },
      spec({ strategy: 'STRICT_PACK', bundles: gpuBundles(4, 4, 4) }),
    );
    expect(placed(r).map((p) => p.nodeId)).toEqual(['big', 'big', 'big']);
  });

  it('STRICT_PACK pends (not infeasible) when an idle node could hold it but none has room now', () => {
    const r = schedule({ nodes: [node(HGX_H100, 'a'), node(HGX_H100, 'b')], reservations: [busy('a', [0]), busy('b', [0])] }, spec({ strategy: 'STRICT_PACK', bundles: gpuBundles(4, 4) }));
    expect(r.status).toBe('PENDING');
    if (r.status === 'PENDING') expect(r.reason.code).toBe(ReasonCode.NO_DOMAIN);
  });

  it('STRICT_SPREAD puts each bundle on its own node', () => {
    const ps = placed(schedule({ nodes: four(), reservations: [] }, spec({ strategy: 'STRICT_SPREAD', bundles: gpuBundles(1, 1, 1) })));
    expect(new Set(ps.map((p) => p.nodeId)).size).toBe(3);
  });
});

describe('topology levels', () => {
  const racked = () => [
    node(HGX_H100, 'r1a', { labels: { 'muster.io/rack': 'r1', 'muster.io/zone': 'z1' } }),
    node(HGX_H100, 'r2a', { labels: { 'muster.io/rack': 'r2', 'muster.io/zone': 'z1' } }),
    node(HGX_H100, 'r2b', { labels: { 'muster.io/rack': 'r2', 'muster.io/zone': 'z1' } }),
    node(HGX_H100, 'nolabel'),
  ];

  it('rack required: the whole gang in the one rack that can hold it', () => {
    const ps = placed(schedule({ nodes: racked(), reservations: [] }, spec({ bundles: gpuBundles(8, 8), topology: [{ level: 'rack' }] })));
    expect(ps.map((p) => p.nodeId).sort()).toEqual(['r2a', 'r2b']);
  });

  it('rack required: pending with a domain summary when no rack has room', () => {
    const r = schedule({ nodes: racked(), reservations: [busy('r2b', [0])] }, spec({ bundles: gpuBundles(8, 8), topology: [{ level: 'rack' }] }));
    expect(r.status).toBe('PENDING');
    if (r.status !== 'PENDING') return;
    expect(r.reason.code).toBe(ReasonCode.NO_DOMAIN);
    expect(r.reason.message).toContain('needs all 2 bundles in one rack');
    expect(r.reason.message).toContain('1 missing topology label rack');
  });

  it('rack preferred: falls back to any nodes when no rack has room', () => {
    const r = schedule({ nodes: racked(), reservations: [busy('r2b', [0])] }, spec({ bundles: gpuBundles(8, 8), topology: [{ level: 'rack', mode: 'preferred' }] }));
    expect(placed(r)).toHaveLength(2);
  });

  it('nvlink-domain required keeps a multi-node gang inside one domain', () => {
    const nodes = [node(HGX_H100, 'a', { nvlinkDomain: 'd1' }), node(HGX_H100, 'b', { nvlinkDomain: 'd2' }), node(HGX_H100, 'c', { nvlinkDomain: 'd2' })];
    const ps = placed(schedule({ nodes, reservations: [] }, spec({ bundles: gpuBundles(8, 8), topology: [{ level: 'nvlink-domain' }] })));
    expect(ps.map((p) => p.nodeId).sort()).toEqual(['b', 'c']);
  });

  it('gpu-island required refuses a split; preferred accepts one when nothing better exists', () => {
    const nodes = [node(TWO_TRAY_16, 'n')];
    const reservations = [busy('n', [0, 8])];
    expect(schedule({ nodes, reservations }, spec({ bundles: gpuBundles(8), topology: [{ level: 'gpu-island' }] })).status).toBe('PENDING');
    expect(placed(schedule({ nodes, reservations }, spec({ bundles: gpuBundles(8), topology: [{ level: 'gpu-island', mode: 'preferred' }] })))[0]!.gpuIndices).toHaveLength(8);
  });
});

describe('filters', () => {
  it('keeps off untolerated NoSchedule (spot) nodes, and uses them when tolerated', () => {
    const nodes = [node(HGX_H100, 'spot', { taints: [{ key: 'spot', value: 'true', effect: 'NoSchedule' }] })];
    const r = schedule({ nodes, reservations: [] }, spec({ bundles: gpuBundles(1) }));
    expect(r.status).toBe('INFEASIBLE');
    if (r.status === 'INFEASIBLE') expect(r.reason.message).toContain('1 untolerated taint spot');
    expect(placed(schedule({ nodes, reservations: [] }, spec({ bundles: gpuBundles(1), tolerations: [{ key: 'spot', operator: 'Exists' }] })))).toHaveLength(1);
  });

  it('PreferNoSchedule: avoided while another node fits, used when none does', () => {
    const nodes = [node(HGX_H100, 'spot', { taints: [{ key: 'spot', value: 'true', effect: 'PreferNoSchedule' }] }), node(HGX_H100, 'ondemand')];
    expect(placed(schedule({ nodes, reservations: [] }, spec({ bundles: gpuBundles(4) })))[0]!.nodeId).toBe('ondemand');
    expect(placed(schedule({ nodes, reservations: [busy('ondemand', [0])] }, spec({ bundles: gpuBundles(8) })))[0]!.nodeId).toBe('spot');
  });

  it('label selector', () => {
    const nodes = [node(HGX_H100, 'a', { labels: { pool: 'train' } }), node(HGX_H100, 'b', { labels: { pool: 'serve' } })];
    expect(placed(schedule({ nodes, reservations: [] }, spec({ bundles: gpuBundles(1), selector: { matchLabels: { pool: 'serve' } } })))[0]!.nodeId).toBe('b');
  });

  it('a dead node takes nothing, and a group that only it could hold is PENDING, not INFEASIBLE', () => {
    const nodes = [node(HGX_H100, 'dead', { alive: false }), node(PCIE_4090, 'pcie')];
    const r = schedule({ nodes, reservations: [] }, spec({ bundles: gpuBundles(8), topology: [{ level: 'gpu-island' }] }));
    expect(r.status).toBe('PENDING');
    if (r.status === 'PENDING') expect(r.reason.rejections).toContainEqual({ code: ReasonCode.NODE_DEAD, detail: '', count: 1 });
  });

  it('GPU memory: small GPUs are rejected with their own reason', () => {
    const r = schedule({ nodes: [node(PCIE_4090, 'pcie')], reservations: [] }, spec({ bundles: [{ gpus: 1, gpuMemoryMiB: 40_000 }] }));
    expect(r.status).toBe('INFEASIBLE');
    if (r.status === 'INFEASIBLE') expect(r.reason.code).toBe(ReasonCode.GPU_MEMORY);
  });

  it('custom resources and CPU are counted per node', () => {
    const nodes = [node(HGX_H100, 'a', { custom: { 'rdma/ib': 1 } }), node(HGX_H100, 'b', { custom: { 'rdma/ib': 2 } })];
    const ps = placed(schedule({ nodes, reservations: [] }, spec({ strategy: 'PACK', bundles: [{ gpus: 1, custom: { 'rdma/ib': 1 } }, { gpus: 1, custom: { 'rdma/ib': 1 } }] })));
    expect(ps.map((p) => p.nodeId)).toEqual(['b', 'b']);
    const r = schedule({ nodes, reservations: [] }, spec({ bundles: [{ cpuMillis: 10_000_000 }] }));
    expect(r.status === 'INFEASIBLE' && r.reason.code).toBe(ReasonCode.CPU);
  });

  it('MIG bundles get slices of their profile, never whole GPUs', () => {
    const ps = placed(schedule({ nodes: [node(A100_MIG, 'm')], reservations: [] }, spec({ bundles: [{ gpus: 2, migProfile: '1g.10gb' }] })));
    expect(ps[0]).toMatchObject({ gpuIndices: [], migUuids: ['MIG-m-0-0', 'MIG-m-0-1'] });
    const r = schedule({ nodes: [node(A100_MIG, 'm')], reservations: [] }, spec({ bundles: [{ gpus: 1, migProfile: '3g.40gb' }] }));
    expect(r.status === 'INFEASIBLE' && r.reason.message).toContain('no free MIG slice 3g.40gb');
  });
});

describe('infeasible and invalid', () => {
  const cluster = () => ({ nodes: [node(HGX_H100, 'a'), node(HGX_H100, 'b'), node(HGX_H100, 'c')], reservations: [busy('a', [0, 1, 2, 3, 4, 5, 6, 7])] });

  it('a bundle larger than any node is INFEASIBLE at once', () => {
    const r = schedule(cluster(), spec({ bundles: gpuBundles(16) }));
    expect(r.status).toBe('INFEASIBLE');
    if (r.status === 'INFEASIBLE') expect(r.reason.message).toMatch(/^fits no node shape even on an empty cluster: bundle 0 needs 16 GPUs/);
  });

  it('STRICT_SPREAD with more bundles than nodes is INFEASIBLE, saying so', () => {
    const r = schedule(cluster(), spec({ strategy: 'STRICT_SPREAD', bundles: gpuBundles(1, 1, 1, 1) }));
    expect(r.status).toBe('INFEASIBLE');
    if (r.status === 'INFEASIBLE') {
      expect(r.reason.code).toBe(ReasonCode.TOO_FEW_NODES);
      expect(r.reason.message).toContain('STRICT_SPREAD needs 4 distinct nodes; 3 of 3 nodes are eligible');
    }
  });

  it('TP8 with gpu-island required on a PCIe-only cluster is INFEASIBLE', () => {
    const r = schedule({ nodes: [node(PCIE_4090, 'p1'), node(PCIE_4090, 'p2')], reservations: [] }, spec({ bundles: gpuBundles(8), topology: [{ level: 'gpu-island' }] }));
    expect(r.status === 'INFEASIBLE' && r.reason.code).toBe(ReasonCode.GPU_ISLAND);
  });

  it('a spec that skipped validation cannot crash the core', () => {
    const good = spec({ bundles: gpuBundles(1) });
    const bad: ValidPgSpec[] = [
      { ...good, bundles: [] },
      { ...good, bundles: [{ ...good.bundles[0]!, gpus: -1 }] },
      { ...good, bundles: [{ ...good.bundles[0]!, gpus: Number.NaN }] },
      { ...good, strategy: 'BOGUS' as ValidPgSpec['strategy'] },
      { ...good, topology: undefined } as unknown as ValidPgSpec,
      { ...good, bundles: [{ gpus: 1 }] } as unknown as ValidPgSpec,
    ];
    for (const s of bad) {
      const r = schedule(cluster(), s);
      expect(r.status === 'INFEASIBLE' && r.reason.code).toBe(ReasonCode.INVALID_SPEC);
    }
  });

  it('an empty cluster is INFEASIBLE with a plain reason', () => {
    const r = schedule({ nodes: [], reservations: [] }, spec({ bundles: gpuBundles(1) }));
    expect(r.status === 'INFEASIBLE' && r.reason.code).toBe(ReasonCode.NO_NODES);
  });
});

describe('shape classes (untouched nodes of one shape judged once)', () => {
  it('a taint or a reservation puts a node in a class of its own', () => {
    const spot = makeNode(HGX_H100, 'a-spot', { taints: [{ key: 'spot', value: 'true', effect: 'PreferNoSchedule' }] });
    const plain = [makeNode(HGX_H100, 'b'), makeNode(HGX_H100, 'c')];
    const state = ClusterState.from({ nodes: [spot, ...plain], reservations: [] });
    const one = spec({ bundles: [{ cpuMillis: 10 }] });
    const first = placeGroup(state, one);
    expect(first.status === 'PLACED' && first.placements[0]!.nodeId).toBe('b'); // not the spot node judged first
    if (first.status !== 'PLACED') return;
    state.commit('g1', first.placements);
    // PACK with best fit: the node now holding something is no longer like `c`, and wins.
    const second = placeGroup(state, one);
    expect(second.status === 'PLACED' && second.placements[0]!.nodeId).toBe('b');
  });
});

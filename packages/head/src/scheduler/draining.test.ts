/** The `draining` filter (a cordoned node takes nothing new, and says so in the reasons) and moves off draining nodes. */
import { describe, expect, it } from 'vitest';
import { schedule } from './pipeline.js';
import { HGX_H100, makeNode } from './profiles.js';
import { planMoves } from './moves.js';
import { runCycle } from './queue.js';
import { ReasonCode } from './reasons.js';
import { parsePlacementGroupSpec } from './spec.js';
import { ClusterState } from './state.js';
import type { ValidPgSpec, Reservation, SchedulerNode } from './types.js';

function spec(input: object): ValidPgSpec {
  const r = parsePlacementGroupSpec({ name: 'pg', ...input });
  if (!r.ok) throw new Error(r.message);
  return r.spec;
}

function busy(nodeId: string, gpuIndices: number[], groupId = `busy-${nodeId}`): Reservation {
  return { groupId, bundleIndex: 0, nodeId, gpuIndices, migUuids: [], cpuMillis: 0, memoryBytes: 0, custom: {} };
}

const h100 = (id: string, draining = false): SchedulerNode => makeNode(HGX_H100, id, { draining });

describe('draining nodes', () => {
  const cases: Array<{ name: string; nodes: SchedulerNode[]; reservations?: Reservation[]; spec: object; status: string; nodeIds?: string[]; code?: string; message?: string; rejections?: object[] }> = [
    {
      name: 'a group goes to the node that is not draining, even when best fit would pick the draining one',
      nodes: [h100('a'), h100('b', true)],
      reservations: [busy('b', [0, 1, 2, 3])],
      spec: { bundles: [{ gpus: 4 }] },
      status: 'PLACED',
      nodeIds: ['a'],
    },
    {
      name: 'a STRICT_SPREAD gang uses only the nodes that are not draining',
      nodes: [h100('a'), h100('b', true), h100('c')],
      spec: { strategy: 'STRICT_SPREAD', bundles: [{ gpus: 2 }, { gpus: 2 }] },
      status: 'PLACED',
      nodeIds: ['a', 'c'],
    },
    {
      name: 'only draining nodes could take it: PENDING (a drain can be undone), never INFEASIBLE, counted as node-draining',
      nodes: [h100('a', true)],
      spec: { bundles: [{ gpus: 8 }] },
      status: 'PENDING',
      code: ReasonCode.NODE_DRAINING,
      message: 'bundle 0 needs 8 GPUs; no node passes the group filters; 1 node rejected: 1 node draining',
      rejections: [{ code: ReasonCode.NODE_DRAINING, detail: '', count: 1 }],
    },
    {
      name: 'draining and full nodes are counted side by side',
      nodes: [h100('a', true), h100('b'), h100('c')],
      reservations: [busy('b', [0, 1, 2, 3, 4, 5, 6, 7]), busy('c', [0, 1, 2, 3])],
      spec: { bundles: [{ gpus: 8 }] },
      status: 'PENDING',
      code: ReasonCode.GPU,
      message: 'bundle 0 needs 8 GPUs; most free GPUs on one node is 4 (c); 3 nodes rejected: 2 insufficient GPU, 1 node draining',
    },
    {
      name: 'a shape no node has is still INFEASIBLE when a node drains',
      nodes: [h100('a', true), h100('b')],
      spec: { bundles: [{ gpus: 9 }] },
      status: 'INFEASIBLE',
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const r = schedule({ nodes: c.nodes, reservations: c.reservations ?? [] }, spec(c.spec));
      expect(r.status).toBe(c.status);
      if (r.status === 'PLACED') expect(r.placements.map((p) => p.nodeId)).toEqual(c.nodeIds);
      else {
        if (c.code) expect(r.reason.code).toBe(c.code);
        if (c.message) expect(r.reason.message).toBe(c.message);
        if (c.rejections) expect(r.reason.rejections).toEqual(c.rejections);
      }
    });
  }

  it('keeps what already runs on a draining node booked: its GPUs are never handed out twice', () => {
    const state = ClusterState.from({ nodes: [h100('a', true)], reservations: [busy('a', [0, 1, 2, 3])] });
    expect(state.usage().freeGpus).toBe(4);
    // The empty twin ignores the drain and the reservations: 8 GPUs would fit there.
    expect(state.emptyTwin().nodes[0]!.draining).toBe(false);
  });

  it('the queue places nothing on a draining node and reports every group pending', () => {
    const state = ClusterState.from({ nodes: [h100('a', true), h100('b')], reservations: [busy('b', [0, 1, 2, 3, 4, 5])] });
    const queue = [0, 1].map((i) => ({ id: `g${i}`, spec: spec({ bundles: [{ gpus: 2 }] }), enqueuedAtMs: i }));
    const r = runCycle(state, queue, 10, undefined);
    expect(r.placed.map((p) => [p.id, p.placements[0]!.nodeId])).toEqual([['g0', 'b']]);
    expect(r.pending.map((p) => [p.id, p.reason.rejections.map((x) => x.code)])).toEqual([['g1', [ReasonCode.GPU, ReasonCode.NODE_DRAINING]]]);
  });
});

describe('moves off draining nodes (planMoves)', () => {
  it('moves a group whole when it fits elsewhere now, and frees the draining node', () => {
    const state = ClusterState.from({ nodes: [h100('a', true), h100('b')], reservations: [busy('a', [0, 1, 2, 3], 'g')] });
    const plan = planMoves(state, [{ id: 'g', spec: spec({ bundles: [{ gpus: 4 }] }), enqueuedAtMs: 0 }]);
    expect(plan.blocked).toEqual([]);
    expect(plan.moved.map((m) => m.placements.map((p) => p.nodeId))).toEqual([['b']]);
    expect(state.placementsOf('g').map((p) => p.nodeId)).toEqual(['b']);
    expect(state.node('a')!.freeGpuCount()).toBe(8);
  });

  it('leaves a group that does not fit elsewhere exactly where it was, with the reason', () => {
    const state = ClusterState.from({ nodes: [h100('a', true), h100('b')], reservations: [busy('a', [0, 1, 2, 3, 4, 5], 'g'), busy('b', [0, 1, 2, 3])] });
    const before = state.placementsOf('g').map((p) => ({ ...p }));
    const plan = planMoves(state, [{ id: 'g', spec: spec({ bundles: [{ gpus: 6 }] }), enqueuedAtMs: 0 }]);
    expect(plan.moved).toEqual([]);
    expect(plan.blocked[0]!.reason.message).toBe('bundle 0 needs 6 GPUs; most free GPUs on one node is 4 (b); 2 nodes rejected: 1 insufficient GPU, 1 node draining');
    expect(state.placementsOf('g')).toEqual(before);
    expect(state.usage().freeGpus).toBe(6);
  });

  it('a gang with one bundle on a draining node may keep its other node: it is placed again whole', () => {
    const state = ClusterState.from({
      nodes: [h100('a', true), h100('b'), h100('c')],
      reservations: [{ ...busy('a', [0, 1, 2, 3], 'g'), bundleIndex: 0 }, { ...busy('b', [0, 1, 2, 3], 'g'), bundleIndex: 1 }, busy('c', [0, 1, 2, 3, 4, 5, 6, 7])],
    });
    const plan = planMoves(state, [{ id: 'g', spec: spec({ strategy: 'STRICT_SPREAD', bundles: [{ gpus: 4 }, { gpus: 4 }] }), enqueuedAtMs: 0 }]);
    // Only b has room and STRICT_SPREAD needs two nodes: it stays.
    expect(plan.blocked.map((b) => b.id)).toEqual(['g']);
    const packed = planMoves(state, [{ id: 'g', spec: spec({ bundles: [{ gpus: 4 }, { gpus: 4 }] }), enqueuedAtMs: 0 }]);
    expect(packed.moved[0]!.placements.map((p) => p.nodeId)).toEqual(['b', 'b']);
  });

  it('takes higher priority first when room is short, and never a held node', () => {
    const state = ClusterState.from({ nodes: [h100('a', true), h100('b'), h100('c')], reservations: [busy('a', [0, 1, 2, 3], 'low'), busy('a', [4, 5, 6, 7], 'high'), busy('b', [0, 1, 2, 3])] });
    const plan = planMoves(
      state,
      [
        { id: 'low', spec: spec({ bundles: [{ gpus: 4 }] }), enqueuedAtMs: 0 },
        { id: 'high', spec: spec({ bundles: [{ gpus: 4 }], priority: 5 }), enqueuedAtMs: 1 },
      ],
      new Map([['c', 'starving']]),
    );
    expect(plan.moved.map((m) => [m.id, m.placements[0]!.nodeId])).toEqual([['high', 'b']]);
    expect(plan.blocked.map((b) => [b.id, b.reason.rejections.map((x) => x.code).sort()])).toEqual([['low', [ReasonCode.GPU, ReasonCode.NODE_HELD, ReasonCode.NODE_DRAINING].sort()]]);
  });
});

/**
 * The index of nodes by free capacity (node-index.ts): which bucket a node is
 * filed in after reserve, release, a death, a re-registration and a join, and
 * that a pass reading it decides as a pass over every node would.
 */
import { describe, expect, it } from 'vitest';
import { CPU_STEPS, cpuStep } from './cpu-index.js';
import { NodeSet } from './node-set.js';
import { placeGroup } from './pipeline.js';
import { A100_MIG, DGX1_V100, HGX_H100, PCIE_4090, makeNode } from './profiles.js';
import { parsePlacementGroupSpec } from './spec.js';
import { ClusterState } from './state.js';
import type { BundlePlacement, SchedulerNode, ValidPgSpec } from './types.js';

function spec(input: object): ValidPgSpec {
  const r = parsePlacementGroupSpec({ name: 'pg', ...input });
  if (!r.ok) throw new Error(r.message);
  return r.spec;
}

function gpus(nodeId: string, gpuIndices: number[], migUuids: string[] = []): BundlePlacement {
  return { bundleIndex: 0, nodeId, gpuIndices, migUuids, cpuMillis: 1000, memoryBytes: 0, custom: {} };
}

/** Where the index has node `id`: its bucket, untouched or not, its largest free island, its free-slice profiles. */
function filed(state: ClusterState, id: string) {
  const ns = state.node(id)!;
  const ix = state.index;
  let island = 0;
  for (let t = 1; t < ix.islandAtLeast.length; t++) if (ix.islandAtLeast[t]!.has(ns.idx)) island = t;
  const buckets = ix.byFree.flatMap((set, k) => (set.has(ns.idx) ? [k] : []));
  const mig = [...ix.migWith].filter(([, byCount]) => byCount.some((set, n) => n > 0 && set.has(ns.idx))).map(([p]) => p);
  return { buckets, bucketOf: ix.bucketOf(ns.idx), untouched: ix.untouched.has(ns.idx), island, mig };
}

describe('index of nodes by free capacity', () => {
  const h100 = (id: string, opts = {}): SchedulerNode => makeNode(HGX_H100, id, opts);
  const cases: Array<{ name: string; act: (s: ClusterState) => void; node: string; want: ReturnType<typeof filed> }> = [
    {
      name: 'an untouched 8-GPU node sits in bucket 8 with an island of 8',
      act: () => undefined,
      node: 'a',
      want: { buckets: [8], bucketOf: 8, untouched: true, island: 8, mig: [] },
    },
    {
      name: 'a reservation moves it down by the GPUs it takes and marks it touched',
      act: (s) => s.commit('g', [gpus('a', [0, 1, 2])]),
      node: 'a',
      want: { buckets: [5], bucketOf: 5, untouched: false, island: 5, mig: [] },
    },
    {
      name: 'a CPU-only reservation keeps the bucket but the node is no longer untouched',
      act: (s) => s.commit('g', [gpus('a', [])]),
      node: 'a',
      want: { buckets: [8], bucketOf: 8, untouched: false, island: 8, mig: [] },
    },
    {
      name: 'releasing the group files it back where it started',
      act: (s) => {
        s.commit('g', [gpus('a', [0, 1, 2])]);
        s.commit('h', [gpus('a', [3])]);
        s.releaseGroup('g');
        s.releaseGroup('h');
      },
      node: 'a',
      want: { buckets: [8], bucketOf: 8, untouched: true, island: 8, mig: [] },
    },
    {
      name: 'a death (the record replaced, alive false) keeps the placements on it and its bucket',
      act: (s) => {
        s.commit('g', [gpus('a', [0, 1])]);
        s.replaceNode(h100('a', { alive: false }));
      },
      node: 'a',
      want: { buckets: [6], bucketOf: 6, untouched: false, island: 6, mig: [] },
    },
    {
      name: 'a re-registration with another inventory is filed by the new one, placements applied again',
      act: (s) => {
        s.commit('g', [gpus('a', [0])]);
        s.replaceNode(makeNode(PCIE_4090, 'a'));
      },
      node: 'a',
      want: { buckets: [7], bucketOf: 7, untouched: false, island: 1, mig: [] },
    },
    {
      name: 'a joining node is filed at the end, untouched',
      act: (s) => s.addNode(makeNode(DGX1_V100, 'c')),
      node: 'c',
      want: { buckets: [8], bucketOf: 8, untouched: true, island: 8, mig: [] },
    },
    {
      name: 'a node that joins after placements on it were recorded takes them: filed by what is left free',
      act: (s) => {
        s.commit('g', [gpus('c', [0, 1, 2])]);
        s.addNode(makeNode(DGX1_V100, 'c'));
      },
      node: 'c',
      want: { buckets: [5], bucketOf: 5, untouched: false, island: 5, mig: [] },
    },
    {
      name: 'a MIG node is in its profile set while a slice is free, and out once none is',
      act: (s) => {
        const ns = s.node('m')!;
        const all = ns.mig.filter((x) => x.profile === '1g.10gb').map((x) => x.uuid);
        s.commit('g', [gpus('m', [], all)]);
      },
      node: 'm',
      want: { ...filedMig(), untouched: false, mig: filedMig().mig.filter((p) => p !== '1g.10gb') },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const state = ClusterState.from({ nodes: [h100('a'), h100('b'), makeNode(A100_MIG, 'm')], reservations: [] });
      c.act(state);
      expect(filed(state, c.node)).toEqual(c.want);
      // Whatever happened, each node is in exactly one bucket, the one its headroom says.
      for (const ns of state.nodes) expect(filed(state, ns.node.id).buckets).toEqual([ns.freeGpuCount()]);
      // And in exactly one set of the CPU index: its capacity's, at its free GPUs and step of free CPU share.
      for (const ns of state.nodes) {
        const where = [...state.index.cpu.classes.values()].flatMap((cls) => cls.sets.flatMap((set, slot) => (set?.has(ns.idx) === true ? [[cls.capacity, slot]] : [])));
        expect(where).toEqual([[ns.node.capacity.cpuMillis, ns.freeGpuCount() * CPU_STEPS + cpuStep(ns.freeCpu, ns.node.capacity.cpuMillis)]]);
      }
    });
  }

  it('a replaced node is judged by its new record: a dead node takes nothing, back alive it takes again', () => {
    const state = ClusterState.from({ nodes: [h100('a'), h100('b')], reservations: [] });
    state.replaceNode(h100('a', { alive: false }));
    const r = placeGroup(state, spec({ strategy: 'STRICT_SPREAD', bundles: [{ gpus: 1 }, { gpus: 1 }] }));
    expect(r.status).toBe('PENDING');
    state.replaceNode(h100('a'));
    const again = placeGroup(state, spec({ strategy: 'STRICT_SPREAD', bundles: [{ gpus: 1 }, { gpus: 1 }] }));
    expect(again.status).toBe('PLACED');
  });

  it('the pass skips nodes without room but counts each node once, as a pass over all of them would', () => {
    const nodes = Array.from({ length: 40 }, (_, i) => h100(`n${String(i).padStart(2, '0')}`));
    const state = ClusterState.from({ nodes, reservations: [] });
    for (let i = 0; i < 39; i++) state.commit(`g${i}`, [gpus(`n${String(i).padStart(2, '0')}`, [0, 1, 2, 3, 4, 5])]);
    const placed = placeGroup(state, spec({ bundles: [{ gpus: 4 }] }));
    expect(placed.status === 'PLACED' && placed.placements[0]!.nodeId).toBe('n39');
    const refused = placeGroup(state, spec({ bundles: [{ gpus: 4 }, { gpus: 4 }, { gpus: 4 }] }));
    expect(refused.status).toBe('PENDING');
    if (refused.status !== 'PENDING') return;
    // The third bundle finds no node: 39 were never visited (6 GPUs taken), n39 was (its 8 went to the first two).
    expect(refused.reason.rejections).toEqual([{ code: 'insufficient-gpu', detail: 'gpu', count: 40 }]);
    expect(refused.reason.bundlesPlaced).toBe(2);
  });

  it('a node set lists its members in index order and grows past its first size', () => {
    const s = NodeSet.of([70, 3, 31, 32], 8);
    expect([...s]).toEqual([3, 31, 32, 70]);
    s.delete(31);
    expect(s.has(31)).toBe(false);
    expect([...s]).toEqual([3, 32, 70]);
  });
});

/** How an untouched A100 MIG node is filed (its whole GPUs and every profile it has). */
function filedMig(): ReturnType<typeof filed> {
  const state = ClusterState.from({ nodes: [makeNode(A100_MIG, 'm')], reservations: [] });
  return filed(state, 'm');
}

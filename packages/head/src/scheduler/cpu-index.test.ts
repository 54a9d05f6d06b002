/**
 * The index of nodes for bundles without GPUs (cpu-index.ts): where nodes
 * are filed as their CPU is taken and given back, that a class goes when its
 * last node does, and that a CPU-only bundle's pass on a large, busy cluster
 * visits a bounded number of nodes while choosing what a pass over every node
 * chooses (scan.test.ts checks the choice on random small clusters).
 */
import { describe, expect, it } from 'vitest';
import { CPU_STEPS, CpuIndex, SHARE_STEPS, cpuStep, firstCpuStep } from './cpu-index.js';
import { placeGroup } from './pipeline.js';
import { SCORERS } from './scan.js';
import { BundleContext, bundleFilters, type GangContext } from './plugins/index.js';
import { ReasonCode } from './reasons.js';
import { ClusterState } from './state.js';
import type { SchedulerNode, ValidPgSpec } from './types.js';

function node(id: string, cpuMillis: number, gpus = 0): SchedulerNode {
  const all = Array.from({ length: gpus }, (_, i) => i);
  return {
    id,
    alive: true,
    labels: {},
    taints: [],
    capacity: { cpuMillis, memoryBytes: 2 ** 40, custom: {} },
    gpus: all.map((i) => ({ index: i, memoryMiB: 80_000, mig: [] })),
    links: all.map((i) => all.map((j) => (i === j ? 'X' : 'NV12'))),
    islands: gpus > 0 ? [all] : [],
  };
}

function spec(cpuMillis: number, memoryBytes = 0): ValidPgSpec {
  return { name: 'pg', strategy: 'PACK', bundles: [{ gpus: 0, cpuMillis, memoryBytes, gpuMemoryMiB: 0, custom: {} }], topology: [], selector: { matchLabels: {} }, tolerations: [], priority: 0 };
}

/** Seeded, so that the cluster is the same in every run. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (Math.imul(a, 1_103_515_245) + 12_345) >>> 0;
    return a / 2 ** 32;
  };
}

/** The node a pass over every node chooses: highest score, ties to the lower index. */
function fullPass(st: ClusterState, s: ValidPgSpec): string | undefined {
  const b = new BundleContext(0, s.bundles[0]!);
  const ctx: GangContext = { spec: s, strategy: s.strategy, islandRequired: false, requiredLevels: [], preferredLevels: [], held: undefined, bundlesOnNode: new Map(), placedDomains: new Map(), remaining: { gpus: 0, migSlices: 0, cpuMillis: s.bundles[0]!.cpuMillis, memoryBytes: s.bundles[0]!.memoryBytes, custom: new Map() } };
  let best: string | undefined;
  let bestScore = -Infinity;
  for (const ns of st.nodes) {
    if (bundleFilters.some((f) => !f.filterBundle(ns, b, ctx).ok)) continue;
    const score = SCORERS.reduce((sum, sc) => sum + sc.weight * sc.plugin.score(ns, b, ctx), 0);
    if (score > bestScore) [best, bestScore] = [ns.node.id, score];
  }
  return best;
}

describe('the CPU index', () => {
  it('files a node by free GPUs and step of free CPU share, and moves it on reserve and release', () => {
    const st = ClusterState.from({ nodes: [node('a', 64_000, 8)], reservations: [] });
    const cls = st.index.cpu.classes.get(64_000)!;
    const at = (k: number, q: number) => cls.sets[k * CPU_STEPS + q]?.has(0) === true;
    expect(at(8, CPU_STEPS - 1)).toBe(true);
    const p = { bundleIndex: 0, nodeId: 'a', gpuIndices: [0, 1], migUuids: [], cpuMillis: 48_000, memoryBytes: 0, custom: {} };
    st.reserve(p);
    expect(at(8, CPU_STEPS - 1)).toBe(false);
    expect(at(6, cpuStep(16_000, 64_000))).toBe(true);
    expect(cpuStep(16_000, 64_000)).toBe(SHARE_STEPS / 4);
    st.release(p);
    expect(at(8, CPU_STEPS - 1)).toBe(true);
    expect(cls.counts.reduce((s, n) => s + n, 0)).toBe(1);
  });

  it('drops a capacity class with its last node, so classes never outnumber nodes', () => {
    const idx = new CpuIndex(4);
    idx.file(0, 0, 1000, 16_000);
    idx.file(1, 0, 1000, 32_000);
    expect([...idx.classes.keys()].sort()).toEqual([16_000, 32_000]);
    idx.file(0, 0, 8000, 32_000); // node 0 replaced by a bigger one
    expect([...idx.classes.keys()]).toEqual([32_000]);
    idx.unfile(1);
    idx.unfile(0);
    expect(idx.classes.size).toBe(0);
  });

  it('bounds a step from below: the first step that may hold a bundle, the least share left', () => {
    // A node at step q has at least q/SHARE_STEPS of its CPU free; below the first step none has `want`.
    expect(firstCpuStep(16_000, 64_000)).toBe(SHARE_STEPS / 4);
    expect(firstCpuStep(64_000, 64_000)).toBe(SHARE_STEPS); // only a node with all its CPU free has it
    expect(cpuStep(63_999, 64_000)).toBe(SHARE_STEPS - 1);
    expect(firstCpuStep(0, 0)).toBe(0);
    expect(firstCpuStep(1000, 0)).toBe(CPU_STEPS); // no node of the class has it
    expect(firstCpuStep(64_001, 64_000)).toBe(CPU_STEPS);
    // The bound of a set is its least free CPU's share left, found again when that node leaves.
    const idx = new CpuIndex(4);
    idx.file(0, 0, 40_000, 64_000);
    idx.file(1, 0, 40_500, 64_000);
    const cls = idx.classes.get(64_000)!;
    const slot = cpuStep(40_000, 64_000);
    expect(cpuStep(40_500, 64_000)).toBe(slot);
    expect(idx.leastCpuLeft(cls, slot, 16_000)).toBe((40_000 - 16_000) / 64_000);
    idx.file(0, 0, 8000, 64_000); // node 0 takes more CPU and leaves the set
    expect(idx.leastCpuLeft(cls, slot, 16_000)).toBe((40_500 - 16_000) / 64_000);
    expect(idx.leastCpuLeft(cls, cpuStep(8000, 64_000), 16_000)).toBe(0); // less than wanted: 0
    idx.file(1, 0, 40_200, 64_000); // same set, less free
    expect(idx.leastCpuLeft(cls, slot, 16_000)).toBe((40_200 - 16_000) / 64_000);
  });

  it('a CPU-only bundle on 3,000 busy nodes visits a bounded number of them and chooses as a full pass does', () => {
    const r = rng(7);
    const nodes = [
      ...Array.from({ length: 2000 }, (_, i) => node(`c${i}`, 64_000)),
      ...Array.from({ length: 500 }, (_, i) => node(`g${i}`, 96_000, 8)),
      ...Array.from({ length: 500 }, (_, i) => node(`s${i}`, 16_000)),
    ];
    const st = ClusterState.from({ nodes, reservations: [] });
    st.nodes.forEach((ns, i) => {
      const gpus = ns.node.gpus.length > 0 ? [0, 1, 2, 3, 4, 5, 6, 7].filter(() => r() < 0.9) : [];
      st.commit(`t${i}`, [{ bundleIndex: 0, nodeId: ns.node.id, gpuIndices: gpus, migUuids: [], cpuMillis: Math.floor(r() * ns.node.capacity.cpuMillis), memoryBytes: 0, custom: {} }]);
    });
    for (const want of [10, 1000, 16_000, 40_000]) {
      const s = spec(want);
      const before = { ...st.passes.other };
      const got = placeGroup(st, s);
      const visits = st.passes.other.visits - before.visits;
      expect(st.passes.other.passes - before.passes).toBe(1);
      expect(got.status === 'PLACED' ? got.placements[0]!.nodeId : undefined).toBe(fullPass(st, s));
      // Without the index this pass visits every node that has the CPU (up to 3,000).
      expect(visits).toBeLessThan(300);
    }
    // More than any node has free: none is visited, all are counted under insufficient CPU.
    const before = st.passes.other.visits;
    const none = placeGroup(st, spec(100_000), { checkFeasibility: false });
    expect(none.status === 'PENDING' && none.reason.rejections).toEqual([{ code: ReasonCode.CPU, detail: 'cpu', count: 3000 }]);
    expect(st.passes.other.visits - before).toBe(0);
  });

  it('on an idle cluster of nodes that all differ (labels), the first idle node judged ends the walk', () => {
    const nodes = Array.from({ length: 2000 }, (_, i) => ({ ...node(`n${i}`, 64_000), labels: { 'muster.io/rack': `r${i}` } }));
    const st = ClusterState.from({ nodes, reservations: [] });
    const got = placeGroup(st, spec(10));
    expect(got.status === 'PLACED' && got.placements[0]!.nodeId).toBe('n0');
    expect(st.passes.other.visits).toBe(1);
  });

  it('with no node that can take it, every node is still counted once under its reason', () => {
    const st = ClusterState.from({ nodes: [node('a', 16_000), node('b', 64_000), node('c', 64_000, 8)], reservations: [] });
    st.commit('t', [{ bundleIndex: 0, nodeId: 'b', gpuIndices: [], migUuids: [], cpuMillis: 60_000, memoryBytes: 0, custom: {} }]);
    const got = placeGroup(st, spec(32_000, 2 ** 41), { checkFeasibility: false });
    expect(got.status).toBe('PENDING');
    if (got.status !== 'PENDING') return;
    const counts = Object.fromEntries(got.reason.rejections.map((x) => [x.code, x.count]));
    expect(counts).toEqual({ [ReasonCode.CPU]: 2, [ReasonCode.MEMORY]: 1 });
  });
});

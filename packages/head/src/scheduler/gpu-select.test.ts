/**
 * GPU choice inside one node, on real topologies: the sets an expert would
 * pick, with the reason in each test name. Link matrices are transcribed in
 * profiles.ts from packages/worker/test-fixtures/nvidia-smi (source on each profile).
 */
import { describe, expect, it } from 'vitest';
import { indicesOf, maskOf } from './bits.js';
import { selectGpus, selectMig } from './gpu-select.js';
import { A100_MIG, DGX1_V100, HGX_H100, PCIE_4090, PCIE_SWITCHED, TWO_TRAY_16, makeNode, type NodeProfile } from './profiles.js';
import { ClusterState } from './state.js';
import { buildTopology, linkScore, topologyOf } from './topology.js';

function pick(profile: NodeProfile, taken: number[], k: number, requireIsland = false, noNuma = false): number[] | null {
  const node = makeNode(profile, 'n', { noNuma });
  const all = maskOf(node.gpus.map((g) => g.index));
  const m = selectGpus(topologyOf(node), (all & ~maskOf(taken)) >>> 0, k, requireIsland);
  return m === null ? null : indicesOf(m);
}

describe('link ranking', () => {
  it('orders NVLink by bond count above every PCIe path, then PIX > PXB > PHB > NODE > SYS', () => {
    const order = ['NV18', 'NV12', 'NV2', 'NV1', 'PIX', 'PXB', 'PHB', 'NODE', 'SYS'].map(linkScore);
    expect([...order].sort((a, b) => b - a)).toEqual(order);
    expect(new Set(order).size).toBe(order.length);
  });
});

type Row = [name: string, profile: NodeProfile, taken: number[], k: number, expected: number[] | null, requireIsland?: boolean];

describe('DGX-1 hybrid cube-mesh (8x V100)', () => {
  const rows: Row[] = [
    ['2 GPUs, idle: an NV2 pair inside quad 0-3 whose leftover {1,2} is also NV2', DGX1_V100, [], 2, [0, 3]],
    ['4 GPUs, idle: the fully NVLinked quad {0,1,2,3}, not the NV2 ring 0-3-7-4', DGX1_V100, [], 4, [0, 1, 2, 3]],
    ['4 GPUs with GPU 0 busy: the intact quad {4..7}, not {1,2,3}+a SYS-linked GPU', DGX1_V100, [0], 4, [4, 5, 6, 7]],
    ['2 GPUs with 0,3 busy: finish quad 0-3 with NV2 pair {1,2} rather than break quad 4-7', DGX1_V100, [0, 3], 2, [1, 2]],
    ['1 GPU with GPU 4 busy: its pair-mate 7, so no intact pair or quad is broken', DGX1_V100, [4], 1, [7]],
    ['3 GPUs, idle: stay in one quad, two NV2 links and one NV1 ({0,2,3})', DGX1_V100, [], 3, [0, 2, 3]],
    ['8 GPUs, idle: the whole node', DGX1_V100, [], 8, [0, 1, 2, 3, 4, 5, 6, 7]],
    ['2 GPUs with 0,1,2 and 4,5,6 busy: 3-7 share NV1, better than nothing', DGX1_V100, [0, 1, 2, 4, 5, 6], 2, [3, 7]],
  ];
  it.each(rows)('%s', (_n, profile, taken, k, expected, req) => expect(pick(profile, taken, k, req)).toEqual(expected));

  it('without NUMA data, the link matrix alone still finds the quads', () => {
    expect(pick(DGX1_V100, [], 4, false, true)).toEqual([0, 1, 2, 3]);
    expect(pick(DGX1_V100, [0], 4, false, true)).toEqual([4, 5, 6, 7]);
  });

  it('the whole node is one NVLink island (connected), so gpu-island required allows 8', () => {
    expect(topologyOf(makeNode(DGX1_V100, 'n')).islands).toHaveLength(1);
    expect(pick(DGX1_V100, [], 8, true)).toHaveLength(8);
  });
});

describe('PCIe over two sockets (8x RTX 4090, every pair SYS)', () => {
  const rows: Row[] = [
    ['2 GPUs: same socket (NUMA 0), since the matrix says SYS everywhere', PCIE_4090, [], 2, [0, 1]],
    ['4 GPUs: one whole socket', PCIE_4090, [], 4, [0, 1, 2, 3]],
    ['4 GPUs with GPU 1 busy: the intact socket {4..7}', PCIE_4090, [1], 4, [4, 5, 6, 7]],
    ['1 GPU with GPU 4 busy: 5, filling the broken socket', PCIE_4090, [4], 1, [5]],
    ['2 GPUs, gpu-island required: impossible, there is no NVLink', PCIE_4090, [], 2, null, true],
    ['1 GPU, gpu-island required: a single GPU is always its own island', PCIE_4090, [], 1, [0], true],
  ];
  it.each(rows)('%s', (_n, profile, taken, k, expected, req) => expect(pick(profile, taken, k, req)).toEqual(expected));
});

describe('PCIe switches over two sockets (synthetic)', () => {
  const rows: Row[] = [
    ['2 GPUs: a PIX pair behind one switch', PCIE_SWITCHED, [], 2, [0, 1]],
    ['2 GPUs with 0 and 4 busy: both sockets still have an intact PIX pair; equal, so the lowest ({2,3})', PCIE_SWITCHED, [0, 4], 2, [2, 3]],
    ['2 GPUs with 0,2 busy: PXB {1,3} in socket 0 loses to a PIX pair in socket 1', PCIE_SWITCHED, [0, 2], 2, [4, 5]],
    ['4 GPUs: the PXB socket 0 beats the NODE socket 1', PCIE_SWITCHED, [], 4, [0, 1, 2, 3]],
    ['4 GPUs with GPU 0 busy: socket 1 (NODE) beats 3 GPUs of socket 0 plus one across SYS', PCIE_SWITCHED, [0], 4, [4, 5, 6, 7]],
  ];
  it.each(rows)('%s', (_n, profile, taken, k, expected, req) => expect(pick(profile, taken, k, req)).toEqual(expected));
});

describe('HGX H100 (NV18 all-to-all)', () => {
  const rows: Row[] = [
    ['8 GPUs: the whole NVSwitch island', HGX_H100, [], 8, [0, 1, 2, 3, 4, 5, 6, 7], true],
    ['4 GPUs: links all equal, so one NUMA half, leaving the other half whole', HGX_H100, [], 4, [0, 1, 2, 3]],
    ['2 GPUs with 0..3 busy: 4,5 (one NUMA node)', HGX_H100, [0, 1, 2, 3], 2, [4, 5]],
    ['4 GPUs with 0 and 4 busy: any 4 are NV18, so pick the set that breaks fewest intact blocks', HGX_H100, [0, 4], 4, [1, 2, 3, 5]],
  ];
  it.each(rows)('%s', (_n, profile, taken, k, expected, req) => expect(pick(profile, taken, k, req)).toEqual(expected));
});

describe('16 GPUs in two NVSwitch trays (synthetic)', () => {
  const rows: Row[] = [
    ['8 GPUs: one whole tray, never 4+4 across SYS', TWO_TRAY_16, [], 8, [0, 1, 2, 3, 4, 5, 6, 7], true],
    ['8 GPUs with GPU 0 busy: the other tray', TWO_TRAY_16, [0], 8, [8, 9, 10, 11, 12, 13, 14, 15], true],
    ['4 GPUs with 0 busy: fill the broken tray, keep tray 2 whole for an 8-GPU bundle', TWO_TRAY_16, [0], 4, [4, 5, 6, 7]],
    ['8 GPUs with one GPU busy in each tray, island required: impossible', TWO_TRAY_16, [0, 8], 8, null, true],
    ['8 GPUs with one GPU busy in each tray, island preferred: 7+1 rather than 4+4', TWO_TRAY_16, [0, 8], 8, [1, 2, 3, 4, 5, 6, 7, 9]],
  ];
  it.each(rows)('%s', (_n, profile, taken, k, expected, req) => expect(pick(profile, taken, k, req)).toEqual(expected));
});

describe('islands and hierarchy', () => {
  it('derives islands from NVLink when the snapshot gives none, and trusts given ones', () => {
    const links = [
      ['X', 'NV4', 'SYS'],
      ['NV4', 'X', 'SYS'],
      ['SYS', 'SYS', 'X'],
    ];
    expect(buildTopology(3, links, [], [-1, -1, -1]).islands.map(indicesOf)).toEqual([[0, 1], [2]]);
    expect(buildTopology(3, links, [[0], [1], [2]], [-1, -1, -1]).islands.map(indicesOf)).toEqual([[0], [1], [2]]);
    // Islands that do not cover every GPU exactly once are ignored.
    expect(buildTopology(3, links, [[0, 1]], [-1, -1, -1]).islands.map(indicesOf)).toEqual([[0, 1], [2]]);
  });
});

describe('MIG slices', () => {
  it('takes slices from the busiest MIG GPU first, leaving idle ones whole', () => {
    const state = ClusterState.from({ nodes: [makeNode(A100_MIG, 'm')], reservations: [] });
    const ns = state.nodes[0]!;
    const first = selectMig(ns, '1g.10gb', 1)!;
    expect(first).toEqual(['MIG-m-0-0']);
    state.reserve({ bundleIndex: 0, nodeId: 'm', gpuIndices: [], migUuids: first, cpuMillis: 0, memoryBytes: 0, custom: {} });
    expect(selectMig(ns, '1g.10gb', 2)).toEqual(['MIG-m-0-1', 'MIG-m-0-2']);
    expect(selectMig(ns, '3g.40gb', 1)).toBeNull();
    expect(selectMig(ns, '1g.10gb', 28)).toBeNull();
  });
  it('never hands out a MIG-mode GPU whole', () => {
    const ns = ClusterState.from({ nodes: [makeNode(A100_MIG, 'm')], reservations: [] }).nodes[0]!;
    expect(indicesOf(ns.freeMask)).toEqual([4, 5, 6, 7]);
  });
});

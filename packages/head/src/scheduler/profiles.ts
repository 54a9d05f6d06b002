/**
 * Node shapes for simulated clusters (tests, the scheduler benchmark, demos).
 *
 * The link matrices of real machines are transcribed from the published
 * `nvidia-smi topo -m` outputs in packages/worker/test-fixtures/nvidia-smi (source noted on
 * each); NUMA nodes come from the same outputs' CPU affinity column. Shapes
 * marked synthetic are made up to cover layouts those fixtures don't.
 */
import { deriveIslands } from './topology.js';
import type { SchedulerNode, Taint } from './types.js';

export interface NodeProfile {
  name: string;
  links: string[][];
  numa: number[];
  gpuMemoryMiB: number;
  cpuMillis: number;
  memoryBytes: number;
  /** MIG layout: GPU index → profiles of its slices. */
  mig?: Record<number, string[]>;
}

const GiB = 2 ** 30;

function matrix(rows: string[]): string[][] {
  return rows.map((r) => r.trim().split(/\s+/));
}

function uniform(n: number, cell: (i: number, j: number) => string): string[][] {
  return Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 'X' : cell(i, j))));
}

/** dgx1-v100-8gpu-hybrid-cube-mesh.txt (Oneflow-Inc/DLPerf README; 8x V100-SXM2-16GB). */
export const DGX1_V100: NodeProfile = {
  name: 'dgx1-v100',
  links: matrix([
    'X   NV1 NV1 NV2 NV2 SYS SYS SYS',
    'NV1 X   NV2 NV1 SYS NV2 SYS SYS',
    'NV1 NV2 X   NV2 SYS SYS NV1 SYS',
    'NV2 NV1 NV2 X   SYS SYS SYS NV1',
    'NV2 SYS SYS SYS X   NV1 NV1 NV2',
    'SYS NV2 SYS SYS NV1 X   NV2 NV1',
    'SYS SYS NV1 SYS NV1 NV2 X   NV2',
    'SYS SYS SYS NV1 NV2 NV1 NV2 X  ',
  ]),
  numa: [0, 0, 0, 0, 1, 1, 1, 1], // CPU affinity 0-11,24-35 vs 12-23,36-47
  gpuMemoryMiB: 16160,
  cpuMillis: 48_000,
  memoryBytes: 512 * GiB,
};

/** hgx-h100-8gpu-nv18-8nic.txt (sgl-project/sglang#25887; 8x H100 80GB HBM3, NVSwitch). */
export const HGX_H100: NodeProfile = {
  name: 'hgx-h100',
  links: uniform(8, () => 'NV18'),
  numa: [0, 0, 0, 0, 1, 1, 1, 1], // NUMA affinity column
  gpuMemoryMiB: 81559,
  cpuMillis: 192_000,
  memoryBytes: 2048 * GiB,
};

/** pcie-8x-rtx4090-all-sys-2nic-tabs.txt (NVIDIA/go-gpuallocator#17; 8x RTX 4090, every pair SYS). */
export const PCIE_4090: NodeProfile = {
  name: 'pcie-4090',
  links: uniform(8, () => 'SYS'),
  numa: [0, 0, 0, 0, 1, 1, 1, 1], // NUMA affinity column: the only sign of the two sockets
  gpuMemoryMiB: 24564,
  cpuMillis: 224_000,
  memoryBytes: 1024 * GiB,
};

/**
 * Synthetic: 8 PCIe GPUs over two sockets behind switches. Socket 0: {0,1}
 * and {2,3} on two switches under one upper switch (PXB); socket 1: {4,5}
 * and {6,7} under different host bridges (NODE). Across sockets: SYS.
 */
export const PCIE_SWITCHED: NodeProfile = {
  name: 'pcie-switched-2socket',
  links: uniform(8, (i, j) => {
    if ((i < 4) !== (j < 4)) return 'SYS';
    if (i >> 1 === j >> 1) return 'PIX';
    return i < 4 ? 'PXB' : 'NODE';
  }),
  numa: [0, 0, 0, 0, 1, 1, 1, 1],
  gpuMemoryMiB: 49140,
  cpuMillis: 128_000,
  memoryBytes: 1024 * GiB,
};

/** Synthetic: 16 GPUs as two NVSwitch trays of 8 (NV12 inside a tray), SYS between trays. */
export const TWO_TRAY_16: NodeProfile = {
  name: 'two-tray-16gpu',
  links: uniform(16, (i, j) => ((i < 8) === (j < 8) ? 'NV12' : 'SYS')),
  numa: Array.from({ length: 16 }, (_, i) => (i < 8 ? 0 : 1)),
  gpuMemoryMiB: 32768,
  cpuMillis: 96_000,
  memoryBytes: 1536 * GiB,
};

/**
 * 8x A100-SXM4-80GB (NVSwitch, NV12), GPUs 0-3 split into 7 MIG 1g.10gb slices
 * each (profile names as in mig-L-a100-sxm4-80gb-7x1g10gb.txt), GPUs 4-7 whole.
 */
export const A100_MIG: NodeProfile = {
  name: 'a100-mig',
  links: uniform(8, () => 'NV12'),
  numa: [0, 0, 0, 0, 1, 1, 1, 1],
  gpuMemoryMiB: 81920,
  cpuMillis: 256_000,
  memoryBytes: 2048 * GiB,
  mig: Object.fromEntries([0, 1, 2, 3].map((g) => [g, Array.from({ length: 7 }, () => '1g.10gb')])),
};

export const PROFILES = [HGX_H100, DGX1_V100, PCIE_4090, PCIE_SWITCHED, TWO_TRAY_16, A100_MIG] as const;

export interface NodeOptions {
  labels?: Record<string, string>;
  taints?: Taint[];
  alive?: boolean;
  /** Draining (cordoned): takes no new placement. */
  draining?: boolean;
  nvlinkDomain?: string;
  custom?: Record<string, number>;
  /** Omit NUMA nodes (as when the inventory lacks them). */
  noNuma?: boolean;
}

/** A `SchedulerNode` of the given shape; MIG uuids are derived from the node id. */
export function makeNode(profile: NodeProfile, id: string, opts: NodeOptions = {}): SchedulerNode {
  const n = profile.links.length;
  return {
    id,
    alive: opts.alive ?? true,
    ...(opts.draining === true ? { draining: true } : {}),
    labels: { ...opts.labels },
    ...(opts.nvlinkDomain !== undefined ? { nvlinkDomain: opts.nvlinkDomain } : {}),
    taints: opts.taints ?? [],
    capacity: { cpuMillis: profile.cpuMillis, memoryBytes: profile.memoryBytes, custom: { ...opts.custom } },
    gpus: Array.from({ length: n }, (_, i) => ({
      index: i,
      memoryMiB: profile.gpuMemoryMiB,
      ...(opts.noNuma === true ? {} : { numaNode: profile.numa[i]! }),
      mig: (profile.mig?.[i] ?? []).map((p, s) => ({ profile: p, uuid: `MIG-${id}-${i}-${s}` })),
    })),
    links: profile.links.map((r) => [...r]),
    islands: deriveIslands(profile.links),
  };
}

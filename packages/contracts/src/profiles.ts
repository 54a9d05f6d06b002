/**
 * The simulated node profiles, defined once: the worker renders a profile to
 * nvidia-smi text and parses it like a real node (`--profile NAME`), and the
 * head's scheduler builds its test and benchmark nodes from the same
 * profiles, so a scheduler test and a simulated cluster place on the same
 * machines. (There were two tables; where both described one machine the
 * figures transcribed from a recorded nvidia-smi output stay: the DGX-1 has
 * 48 CPU threads, as its recording shows.)
 *
 * A profile says where each device sits (NUMA node, PCIe switch); the PCIe
 * path between two devices follows from it — same switch: PIX (or PXB when
 * `sameSwitch` says so), same NUMA node: NODE, else SYS — unless `pairLink`
 * names the link (NVLink, or SYS on boards that route every pair through
 * the CPU). Machines transcribed from recorded outputs name their source
 * (packages/worker/test-fixtures/nvidia-smi); synthetic ones say so.
 *
 * Plain data and pure functions: UUIDs and text are the worker's business.
 */

const GiB = 1024 ** 3;

/** Where a device sits: NUMA node and PCIe switch. */
export interface DevicePlace {
  numa: number;
  sw: string;
}

export interface MachineProfile {
  name: string;
  description: string;
  /** CPU threads. */
  cpuCores: number;
  memoryBytes: number;
  nvlinkDomain?: string;
  /** Absent: a node without GPUs. `mig`: the MIG mode column (undefined: GPU without MIG support). */
  gpu?: { name: string; memoryMiB: number; mig?: boolean };
  gpuPlaces: DevicePlace[];
  /** PCI bus numbers (domain 0), or full PCI addresses. */
  busIds: string[];
  /** A GPU pair's link when it is not the PCIe path of their places. */
  pairLink?: (i: number, j: number) => string | undefined;
  nics: { name: string; place: DevicePlace }[];
  sameSwitch?: 'PIX' | 'PXB';
  /** MIG slices by GPU index (their GPUs are in MIG mode). */
  mig?: Record<number, string[]>;
  cpuAffinity: (numa: number) => string;
  numaAffinity?: (numa: number) => string;
  gpuNumaId?: (gpu: number) => string;
  /** How nvidia-smi names NIC columns: 'legend' (NIC<k>, R525 and later) or 'device' (mlx5_0, older drivers). */
  nicStyle?: 'legend' | 'device';
}

/** PCIe path between two devices. */
function pcie(a: DevicePlace, b: DevicePlace, sameSwitch: 'PIX' | 'PXB'): string {
  if (a.sw === b.sw) return sameSwitch;
  return a.numa === b.numa ? 'NODE' : 'SYS';
}

/** The GPU link matrix (`nvidia-smi topo -m` cells, "X" on the diagonal). */
export function gpuLinks(p: MachineProfile): string[][] {
  const same = p.sameSwitch ?? 'PIX';
  return p.gpuPlaces.map((a, i) => p.gpuPlaces.map((b, j) => (i === j ? 'X' : (p.pairLink?.(i, j) ?? pcie(a, b, same)))));
}

/** Each NIC's link to every GPU. */
export function nicGpuLinks(p: MachineProfile): { name: string; links: string[] }[] {
  const same = p.sameSwitch ?? 'PIX';
  return p.nics.map((nic) => ({ name: nic.name, links: p.gpuPlaces.map((g) => pcie(g, nic.place, same)) }));
}

/** The NIC-to-NIC link matrix. */
export function nicLinks(p: MachineProfile): string[][] {
  const same = p.sameSwitch ?? 'PIX';
  return p.nics.map((a, i) => p.nics.map((b, j) => (i === j ? 'X' : pcie(a.place, b.place, same))));
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
/** CPU list of a NUMA node on a two-socket box with hyper-threads: "0-11,24-35". */
const twoSockets = (perSocket: number, threads: number) => (numa: number) =>
  `${numa * perSocket}-${numa * perSocket + perSocket - 1},${threads / 2 + numa * perSocket}-${threads / 2 + numa * perSocket + perSocket - 1}`;
const bySocket = (n: number, sw: (i: number) => string): DevicePlace[] => range(n).map((i) => ({ numa: i < n / 2 ? 0 : 1, sw: sw(i) }));

/** DGX-1 (V100) hybrid cube-mesh: each GPU has NVLinks to four others, one or two links each. */
const DGX1_NVLINK: Record<string, string> = {
  '0-1': 'NV1', '0-2': 'NV1', '0-3': 'NV2', '0-4': 'NV2', '1-2': 'NV2', '1-3': 'NV1', '1-5': 'NV2', '2-3': 'NV2',
  '2-6': 'NV1', '3-7': 'NV1', '4-5': 'NV1', '4-6': 'NV1', '4-7': 'NV2', '5-6': 'NV2', '5-7': 'NV1', '6-7': 'NV2',
};

const profiles: MachineProfile[] = [
  {
    // hgx-h100-8gpu-nv18-8nic.txt (sgl-project/sglang#25887)
    name: 'hgx-h100-8',
    description: 'HGX H100 8-GPU: NVSwitch, NV18 between all pairs, one NIC per GPU, two sockets',
    cpuCores: 192,
    memoryBytes: 2048 * GiB,
    gpu: { name: 'NVIDIA H100 80GB HBM3', memoryMiB: 81559, mig: false },
    gpuPlaces: bySocket(8, (i) => `sw${i}`),
    busIds: ['18', '2A', '3A', '5D', '9A', 'AB', 'BA', 'DB'],
    pairLink: () => 'NV18',
    nics: range(8).map((i) => ({ name: `mlx5_${i}`, place: { numa: i < 4 ? 0 : 1, sw: `sw${i}` } })),
    cpuAffinity: twoSockets(48, 192),
  },
  {
    name: 'dgx-a100-8',
    description: 'DGX A100: NVSwitch, NV12 between all pairs, GPU pairs share a PCIe switch with two NICs, NPS4 NUMA',
    cpuCores: 256,
    memoryBytes: 2048 * GiB,
    gpu: { name: 'NVIDIA A100-SXM4-80GB', memoryMiB: 81920, mig: false },
    gpuPlaces: range(8).map((i) => ({ numa: [3, 3, 1, 1, 7, 7, 5, 5][i]!, sw: `pair${i >> 1}` })),
    busIds: ['07', '0F', '47', '4E', '87', '90', 'B7', 'BD'],
    pairLink: () => 'NV12',
    sameSwitch: 'PXB',
    nics: [
      ...range(8).map((k) => ({ name: `mlx5_${k}`, place: { numa: [3, 3, 1, 1, 7, 7, 5, 5][k]!, sw: `pair${k >> 1}` } })),
      { name: 'mlx5_8', place: { numa: 3, sw: 'storage0' } },
      { name: 'mlx5_9', place: { numa: 7, sw: 'storage1' } },
    ],
    cpuAffinity: (n) => `${n * 16}-${n * 16 + 15},${128 + n * 16}-${128 + n * 16 + 15}`,
  },
  {
    // dgx1-v100-8gpu-hybrid-cube-mesh.txt (Oneflow-Inc/DLPerf README); CPU affinity 0-11,24-35 vs 12-23,36-47
    name: 'dgx1-v100-8',
    description: 'DGX-1 V100: hybrid cube-mesh of NV1/NV2 links, SYS across sockets, device-named NIC columns (older driver)',
    cpuCores: 48,
    memoryBytes: 512 * GiB,
    gpu: { name: 'Tesla V100-SXM2-16GB', memoryMiB: 16160 },
    gpuPlaces: bySocket(8, (i) => `sw${i >> 1}`),
    busIds: ['06', '07', '0A', '0B', '85', '86', '89', '8A'],
    pairLink: (i, j) => DGX1_NVLINK[`${Math.min(i, j)}-${Math.max(i, j)}`] ?? 'SYS',
    nics: range(4).map((k) => ({ name: `mlx5_${k}`, place: { numa: k < 2 ? 0 : 1, sw: `sw${k}` } })),
    cpuAffinity: twoSockets(12, 48),
    nicStyle: 'device',
  },
  {
    name: 'pcie-8x-2socket',
    description: '8 PCIe GPUs (L40S) over two sockets, two per PCIe switch, no NVLink, one NIC per socket',
    cpuCores: 128,
    memoryBytes: 1024 * GiB,
    gpu: { name: 'NVIDIA L40S', memoryMiB: 46068 },
    gpuPlaces: bySocket(8, (i) => `sw${i >> 1}`),
    busIds: ['01', '02', '41', '42', '81', '82', 'C1', 'C2'],
    nics: [
      { name: 'mlx5_0', place: { numa: 0, sw: 'sw0' } },
      { name: 'mlx5_1', place: { numa: 1, sw: 'sw2' } },
    ],
    cpuAffinity: twoSockets(32, 128),
  },
  {
    // pcie-8x-rtx4090-all-sys-2nic-tabs.txt (NVIDIA/go-gpuallocator#17): every GPU pair SYS; its NICs are left out
    name: 'pcie-4090-8',
    description: '8 RTX 4090 over two sockets, every GPU pair routed through the CPU (SYS), no NVLink',
    cpuCores: 224,
    memoryBytes: 1024 * GiB,
    gpu: { name: 'NVIDIA GeForce RTX 4090', memoryMiB: 24564 },
    gpuPlaces: bySocket(8, (i) => `sw${i}`),
    busIds: ['01', '21', '41', '61', '81', 'A1', 'C1', 'E1'],
    pairLink: () => 'SYS',
    nics: [],
    cpuAffinity: twoSockets(56, 224),
  },
  {
    // synthetic: {0,1} and {2,3} on two switches under one upper switch (PXB), {4,5} and {6,7} under different host bridges (NODE)
    name: 'pcie-switched-8',
    description: 'synthetic: 8 PCIe GPUs (L40) over two sockets behind PCIe switches, PIX/PXB/NODE/SYS',
    cpuCores: 128,
    memoryBytes: 1024 * GiB,
    gpu: { name: 'NVIDIA L40', memoryMiB: 49140 },
    gpuPlaces: bySocket(8, (i) => `sw${i >> 1}`),
    busIds: ['01', '02', '11', '12', '81', '82', '91', '92'],
    pairLink: (i, j) => ((i < 4) === (j < 4) && i >> 1 !== j >> 1 && i < 4 ? 'PXB' : undefined),
    nics: [],
    cpuAffinity: twoSockets(32, 128),
  },
  {
    name: 'two-tray-16',
    description: 'synthetic: 16 GPUs as two NVSwitch trays of 8 (NV12 inside a tray), SYS between trays',
    cpuCores: 96,
    memoryBytes: 1536 * GiB,
    gpu: { name: 'Tesla V100-SXM3-32GB', memoryMiB: 32768 },
    gpuPlaces: bySocket(16, (i) => `tray${i >> 3}-${i}`),
    busIds: range(16).map((i) => (0x10 * (i + 1)).toString(16).toUpperCase().padStart(2, '0').slice(-2)),
    pairLink: (i, j) => ((i < 8) === (j < 8) ? 'NV12' : 'SYS'),
    nics: [],
    cpuAffinity: twoSockets(24, 96),
  },
  {
    // profile names as in mig-L-a100-sxm4-80gb-7x1g10gb.txt
    name: 'a100-mig-7x1g',
    description: 'one A100 80GB in MIG mode, split into 7 × 1g.10gb',
    cpuCores: 32,
    memoryBytes: 256 * GiB,
    gpu: { name: 'NVIDIA A100-SXM4-80GB', memoryMiB: 81920, mig: false },
    gpuPlaces: [{ numa: 0, sw: 'sw0' }],
    busIds: ['07'],
    nics: [],
    mig: { 0: Array.from({ length: 7 }, () => '1g.10gb') },
    cpuAffinity: () => '0-31',
  },
  {
    name: 'a100-8-half-mig',
    description: '8 A100 80GB (NVSwitch, NV12), GPUs 0-3 split into 7 × 1g.10gb each, GPUs 4-7 whole',
    cpuCores: 256,
    memoryBytes: 2048 * GiB,
    gpu: { name: 'NVIDIA A100-SXM4-80GB', memoryMiB: 81920, mig: false },
    gpuPlaces: bySocket(8, (i) => `pair${i >> 1}`),
    busIds: ['07', '0F', '47', '4E', '87', '90', 'B7', 'BD'],
    pairLink: () => 'NV12',
    sameSwitch: 'PXB',
    nics: [],
    mig: Object.fromEntries([0, 1, 2, 3].map((g) => [g, Array.from({ length: 7 }, () => '1g.10gb')])),
    cpuAffinity: twoSockets(64, 256),
  },
  {
    name: 'gb200-4',
    description: 'GB200 compute tray: 4 GPUs, NV18 between all pairs, two Grace CPUs, in a rack-wide NVLink domain',
    cpuCores: 144,
    memoryBytes: 960 * GiB,
    nvlinkDomain: 'gb200-rack-0',
    gpu: { name: 'NVIDIA GB200', memoryMiB: 189471, mig: false },
    gpuPlaces: bySocket(4, (i) => `c2c${i}`),
    busIds: ['00000008:01:00.0', '00000009:01:00.0', '00000018:01:00.0', '00000019:01:00.0'],
    pairLink: () => 'NV18',
    nics: range(4).map((k) => ({ name: `mlx5_${k}`, place: { numa: k < 2 ? 0 : 1, sw: `nic${k}` } })),
    cpuAffinity: (n) => (n === 0 ? '0-71' : '72-143'),
    // Grace lists its CPU node first, then the memory-only nodes of the GPUs.
    numaAffinity: (n) => (n === 0 ? '0,3-9,11-17' : '1,19-25,27-33'),
    gpuNumaId: (i) => String(2 + 8 * i),
  },
  {
    name: 'cpu-only',
    description: 'a node without GPUs',
    cpuCores: 16,
    memoryBytes: 64 * GiB,
    gpuPlaces: [],
    busIds: [],
    nics: [],
    cpuAffinity: () => '0-15',
  },
];

/** Every profile by name, in the order `--profile` lists them. */
export const MACHINE_PROFILES: ReadonlyMap<string, MachineProfile> = new Map(profiles.map((p) => [p.name, p]));

/** The profile of a name; throws naming the known ones. */
export function machineProfile(name: string): MachineProfile {
  const p = MACHINE_PROFILES.get(name);
  if (!p) throw new Error(`unknown profile '${name}'; known profiles: ${[...MACHINE_PROFILES.keys()].join(', ')}`);
  return p;
}

/**
 * Simulated nodes for development and tests (`--profile NAME`).
 *
 * Each profile describes a real machine class (GPU model and memory, NVLink
 * wiring, PCIe/NUMA placement of GPUs and NICs, CPU and memory) and is
 * rendered to nvidia-smi text (render.ts), then parsed like a real node.
 * A profile can also be a directory of recorded nvidia-smi output
 * (`--profile ./recorded/node7`): topo.txt, query-gpu.csv, list.txt, any subset.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, MusterError } from '@muster/common';
import type { SmiTexts } from './assemble.js';
import { renderList, renderQueryGpu, renderTopo, type RenderGpu } from './render.js';

export interface Profile {
  texts: SmiTexts;
  source: string;
  /** The simulated machine's CPU threads and memory; undefined: the host's. */
  cpuCores?: number;
  memoryBytes?: number;
  nvlinkDomain?: string;
}

const GiB = 1024 ** 3;

/** Where a device sits: NUMA node and PCIe switch. Links between devices follow from it. */
interface Place {
  numa: number;
  sw: string;
}

/** PCIe path between two devices: same switch, same NUMA node, or across the SMP interconnect. */
function pcie(a: Place, b: Place, sameSwitch: 'PIX' | 'PXB' = 'PIX'): string {
  if (a.sw === b.sw) return sameSwitch;
  return a.numa === b.numa ? 'NODE' : 'SYS';
}

/** Stable fake UUIDs, so a profile is the same machine on every run. */
function uuid(prefix: 'GPU' | 'MIG', key: string): string {
  const h = createHash('sha256').update(key).digest('hex');
  return `${prefix}-${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

interface MachineSpec {
  gpu: { name: string; memoryMiB: number; mig?: boolean };
  gpuPlaces: Place[];
  /** PCI bus numbers (domain 0), or full PCI addresses. */
  busIds: string[];
  /** GPU pair link; undefined falls back to the PCIe path. */
  nvlink: (i: number, j: number) => string | undefined;
  nics: { name: string; place: Place }[];
  sameSwitch?: 'PIX' | 'PXB';
  cpuAffinity: (numa: number) => string;
  numaAffinity?: (numa: number) => string;
  gpuNumaId?: (i: number) => string;
  migSlices?: string[];
  nicStyle?: 'legend' | 'device';
}

function machine(key: string, s: MachineSpec): SmiTexts {
  const gpus: RenderGpu[] = s.gpuPlaces.map((place, i) => ({
    name: s.gpu.name,
    memoryMiB: s.gpu.memoryMiB,
    pciBusId: s.busIds[i]!.includes(':') ? s.busIds[i]! : `00000000:${s.busIds[i]}:00.0`,
    uuid: uuid('GPU', `${key}/${i}`),
    ...(s.gpu.mig === undefined ? {} : { migEnabled: s.gpu.mig }),
    mig: (s.migSlices ?? []).map((profile, k) => ({ profile, uuid: uuid('MIG', `${key}/${i}/${k}`) })),
    cpuAffinity: s.cpuAffinity(place.numa),
    numaAffinity: s.numaAffinity?.(place.numa) ?? String(place.numa),
    ...(s.gpuNumaId ? { gpuNumaId: s.gpuNumaId(i) } : {}),
  }));
  const sameSwitch = s.sameSwitch ?? 'PIX';
  const links = s.gpuPlaces.map((a, i) => s.gpuPlaces.map((b, j) => (i === j ? 'X' : (s.nvlink(i, j) ?? pcie(a, b, sameSwitch)))));
  const nics = s.nics.map((nic) => ({ name: nic.name, links: s.gpuPlaces.map((g) => pcie(g, nic.place, sameSwitch)) }));
  const nicLinks = s.nics.map((a, i) => s.nics.map((b, j) => (i === j ? 'X' : pcie(a.place, b.place, sameSwitch))));
  return {
    topo: renderTopo({ gpus, links, nics, nicLinks, nicStyle: s.nicStyle ?? 'legend' }),
    queryGpu: renderQueryGpu(gpus),
    list: renderList(gpus),
  };
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const twoSockets = (perSocket: number, threads: number) => (numa: number) =>
  `${numa * perSocket}-${numa * perSocket + perSocket - 1},${threads / 2 + numa * perSocket}-${threads / 2 + numa * perSocket + perSocket - 1}`;

/** DGX-1 (V100) hybrid cube-mesh: each GPU has NVLinks to four others, one or two links each. */
const DGX1_NVLINK: Record<string, string> = {
  '0-1': 'NV1', '0-2': 'NV1', '0-3': 'NV2', '0-4': 'NV2', '1-2': 'NV2', '1-3': 'NV1', '1-5': 'NV2', '2-3': 'NV2',
  '2-6': 'NV1', '3-7': 'NV1', '4-5': 'NV1', '4-6': 'NV1', '4-7': 'NV2', '5-6': 'NV2', '5-7': 'NV1', '6-7': 'NV2',
};

interface ProfileDef {
  description: string;
  cpuCores: number;
  memoryBytes: number;
  nvlinkDomain?: string;
  texts: () => SmiTexts;
}

const PROFILES: Record<string, ProfileDef> = {
  'hgx-h100-8': {
    description: 'HGX H100 8-GPU: NVSwitch, NV18 between all pairs, one NIC per GPU, two sockets',
    cpuCores: 192,
    memoryBytes: 2048 * GiB,
    texts: () =>
      machine('hgx-h100-8', {
        gpu: { name: 'NVIDIA H100 80GB HBM3', memoryMiB: 81559, mig: false },
        gpuPlaces: range(8).map((i) => ({ numa: i < 4 ? 0 : 1, sw: `sw${i}` })),
        busIds: ['18', '2A', '3A', '5D', '9A', 'AB', 'BA', 'DB'],
        nvlink: () => 'NV18',
        nics: range(8).map((i) => ({ name: `mlx5_${i}`, place: { numa: i < 4 ? 0 : 1, sw: `sw${i}` } })),
        cpuAffinity: twoSockets(48, 192),
      }),
  },
  'dgx-a100-8': {
    description: 'DGX A100: NVSwitch, NV12 between all pairs, GPU pairs share a PCIe switch with two NICs, NPS4 NUMA',
    cpuCores: 256,
    memoryBytes: 2048 * GiB,
    texts: () => {
      const numa = [3, 3, 1, 1, 7, 7, 5, 5];
      return machine('dgx-a100-8', {
        gpu: { name: 'NVIDIA A100-SXM4-80GB', memoryMiB: 81920, mig: false },
        gpuPlaces: range(8).map((i) => ({ numa: numa[i]!, sw: `pair${i >> 1}` })),
        busIds: ['07', '0F', '47', '4E', '87', '90', 'B7', 'BD'],
        nvlink: () => 'NV12',
        sameSwitch: 'PXB',
        nics: [
          ...range(8).map((k) => ({ name: `mlx5_${k}`, place: { numa: numa[k]!, sw: `pair${k >> 1}` } })),
          { name: 'mlx5_8', place: { numa: 3, sw: 'storage0' } },
          { name: 'mlx5_9', place: { numa: 7, sw: 'storage1' } },
        ],
        cpuAffinity: (n) => `${n * 16}-${n * 16 + 15},${128 + n * 16}-${128 + n * 16 + 15}`,
      });
    },
  },
  'dgx1-v100-8': {
    description: 'DGX-1 V100: hybrid cube-mesh of NV1/NV2 links, SYS across sockets, device-named NIC columns (older driver)',
    cpuCores: 80,
    memoryBytes: 512 * GiB,
    texts: () =>
      machine('dgx1-v100-8', {
        gpu: { name: 'Tesla V100-SXM2-16GB', memoryMiB: 16160 },
        gpuPlaces: range(8).map((i) => ({ numa: i < 4 ? 0 : 1, sw: `sw${i >> 1}` })),
        busIds: ['06', '07', '0A', '0B', '85', '86', '89', '8A'],
        nvlink: (i, j) => DGX1_NVLINK[`${Math.min(i, j)}-${Math.max(i, j)}`] ?? 'SYS',
        nics: range(4).map((k) => ({ name: `mlx5_${k}`, place: { numa: k < 2 ? 0 : 1, sw: `sw${k}` } })),
        cpuAffinity: twoSockets(20, 80),
        nicStyle: 'device',
      }),
  },
  'pcie-8x-2socket': {
    description: '8 PCIe GPUs (L40S) over two sockets, two per PCIe switch, no NVLink, one NIC per socket',
    cpuCores: 128,
    memoryBytes: 1024 * GiB,
    texts: () =>
      machine('pcie-8x-2socket', {
        gpu: { name: 'NVIDIA L40S', memoryMiB: 46068 },
        gpuPlaces: range(8).map((i) => ({ numa: i < 4 ? 0 : 1, sw: `sw${i >> 1}` })),
        busIds: ['01', '02', '41', '42', '81', '82', 'C1', 'C2'],
        nvlink: () => undefined,
        nics: [
          { name: 'mlx5_0', place: { numa: 0, sw: 'sw0' } },
          { name: 'mlx5_1', place: { numa: 1, sw: 'sw2' } },
        ],
        cpuAffinity: twoSockets(32, 128),
      }),
  },
  'a100-mig-7x1g': {
    description: 'one A100 80GB in MIG mode, split into 7 × 1g.10gb',
    cpuCores: 32,
    memoryBytes: 256 * GiB,
    texts: () =>
      machine('a100-mig-7x1g', {
        gpu: { name: 'NVIDIA A100-SXM4-80GB', memoryMiB: 81920, mig: true },
        gpuPlaces: [{ numa: 0, sw: 'sw0' }],
        busIds: ['07'],
        nvlink: () => undefined,
        nics: [],
        cpuAffinity: () => '0-31',
        migSlices: Array.from({ length: 7 }, () => '1g.10gb'),
      }),
  },
  'gb200-4': {
    description: 'GB200 compute tray: 4 GPUs, NV18 between all pairs, two Grace CPUs, in a rack-wide NVLink domain',
    cpuCores: 144,
    memoryBytes: 960 * GiB,
    nvlinkDomain: 'gb200-rack-0',
    texts: () =>
      machine('gb200-4', {
        gpu: { name: 'NVIDIA GB200', memoryMiB: 189471, mig: false },
        gpuPlaces: range(4).map((i) => ({ numa: i < 2 ? 0 : 1, sw: `c2c${i}` })),
        busIds: ['00000008:01:00.0', '00000009:01:00.0', '00000018:01:00.0', '00000019:01:00.0'],
        nvlink: () => 'NV18',
        nics: range(4).map((k) => ({ name: `mlx5_${k}`, place: { numa: k < 2 ? 0 : 1, sw: `nic${k}` } })),
        cpuAffinity: (n) => (n === 0 ? '0-71' : '72-143'),
        // Grace lists its CPU node first, then the memory-only nodes of the GPUs.
        numaAffinity: (n) => (n === 0 ? '0,3-9,11-17' : '1,19-25,27-33'),
        gpuNumaId: (i) => String(2 + 8 * i),
      }),
  },
  'cpu-only': {
    description: 'a node without GPUs',
    cpuCores: 16,
    memoryBytes: 64 * GiB,
    texts: () => ({}),
  },
};

/** Names accepted by --profile (besides a directory of recorded output). */
export const profileNames: string[] = Object.keys(PROFILES);

export function profileDescriptions(): { name: string; description: string }[] {
  return Object.entries(PROFILES).map(([name, p]) => ({ name, description: p.description }));
}

/** Recorded-output file names a profile directory may hold, per source. */
const RECORDED: Record<'topo' | 'queryGpu' | 'list', string[]> = {
  topo: ['topo.txt'],
  queryGpu: ['query-gpu.csv', 'query-gpu.txt'],
  list: ['list.txt'],
};

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}

export async function loadProfile(name: string): Promise<Profile> {
  const def = PROFILES[name];
  if (def) {
    return {
      texts: def.texts(),
      source: `simulated:${name}`,
      cpuCores: def.cpuCores,
      memoryBytes: def.memoryBytes,
      ...(def.nvlinkDomain ? { nvlinkDomain: def.nvlinkDomain } : {}),
    };
  }
  if (await isDirectory(name)) {
    const texts: SmiTexts = {};
    for (const [key, files] of Object.entries(RECORDED) as [keyof typeof RECORDED, string[]][]) {
      for (const file of files) {
        const text = await readFile(join(name, file), 'utf8').catch(() => undefined);
        if (text !== undefined) {
          texts[key] = text;
          break;
        }
      }
    }
    if (Object.keys(texts).length === 0) {
      throw new MusterError(ErrorCode.INVALID_ARGUMENT, `profile directory ${name} holds none of topo.txt, query-gpu.csv, list.txt`, {
        details: { field: 'profile', profile: name },
      });
    }
    return { texts, source: 'files' };
  }
  throw new MusterError(ErrorCode.INVALID_ARGUMENT, `unknown profile '${name}'; known profiles: ${profileNames.join(', ')} (or a directory of recorded nvidia-smi output)`, {
    details: { field: 'profile', profile: name, known: profileNames },
  });
}

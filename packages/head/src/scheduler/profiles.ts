/**
 * Node shapes for simulated clusters (tests, the scheduler benchmark, demos),
 * as the scheduler sees them. The machines themselves are @muster/contracts'
 * profiles (profiles.ts), the same ones a worker simulates with `--profile`,
 * so a scheduler test and a simulated cluster place on the same machines.
 */
import { gpuLinks, machineProfile, type MachineProfile } from '@muster/contracts';
import { deriveIslands } from './topology.js';
import type { SchedulerNode, Taint } from './types.js';

/** A machine as the scheduler reads it. */
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

/** The scheduler's view of a machine profile. */
export function nodeProfileOf(m: MachineProfile): NodeProfile {
  return {
    name: m.name,
    links: gpuLinks(m),
    numa: m.gpuPlaces.map((p) => p.numa),
    gpuMemoryMiB: m.gpu?.memoryMiB ?? 0,
    cpuMillis: m.cpuCores * 1000,
    memoryBytes: m.memoryBytes,
    ...(m.mig ? { mig: m.mig } : {}),
  };
}

/** Hybrid cube-mesh of NV1/NV2 links (one island through hops), SYS across sockets. */
export const DGX1_V100 = nodeProfileOf(machineProfile('dgx1-v100-8'));
/** NVSwitch, NV18 between all 8 GPUs. */
export const HGX_H100 = nodeProfileOf(machineProfile('hgx-h100-8'));
/** Every GPU pair SYS: NUMA is the only sign of the two sockets. */
export const PCIE_4090 = nodeProfileOf(machineProfile('pcie-4090-8'));
/** PCIe switches over two sockets: PIX, PXB, NODE and SYS pairs. */
export const PCIE_SWITCHED = nodeProfileOf(machineProfile('pcie-switched-8'));
/** Two NVSwitch trays of 8, SYS between them. */
export const TWO_TRAY_16 = nodeProfileOf(machineProfile('two-tray-16'));
/** 8 A100s, GPUs 0-3 split into 7 MIG 1g.10gb slices each. */
export const A100_MIG = nodeProfileOf(machineProfile('a100-8-half-mig'));

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

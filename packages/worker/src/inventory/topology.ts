/**
 * The topology model the scheduler reasons with: what one cell of
 * `nvidia-smi topo -m` means, how cells compare, and the NVLink islands.
 *
 * Pure functions over plain data (no I/O), so the head's scheduler can import
 * them from the worker package without pulling in discovery.
 *
 * Link strings are nvidia-smi's own, best first:
 *   X     the GPU itself
 *   NV<n> a bonded set of n NVLinks (NV18 on HGX H100, NV12 on DGX A100, ...)
 *   PIX   at most one PCIe bridge
 *   PXB   several PCIe bridges, no host bridge
 *   PHB   through a PCIe host bridge (the CPU)
 *   NODE  between host bridges inside one NUMA node
 *   SYS   across the SMP interconnect between NUMA nodes (QPI/UPI/xGMI)
 * Drivers before ~R384 printed SOC for what is now SYS; the parser normalises
 * it, and linkKind still accepts it.
 */
import { ErrorCode, MusterError } from '@muster/common';
import type { GpuTopology } from '@muster/proto';

export type LinkKind = 'X' | 'NV' | 'PIX' | 'PXB' | 'PHB' | 'NODE' | 'SYS';

export interface LinkInfo {
  kind: LinkKind;
  /** Number of bonded NVLinks; 0 unless kind is NV. */
  nvlinks: number;
}

const PCIE_RANK: Record<Exclude<LinkKind, 'X' | 'NV'>, number> = { PIX: 5, PXB: 4, PHB: 3, NODE: 2, SYS: 1 };

/** Reads one cell; undefined when it is not a link nvidia-smi prints. */
export function parseLink(s: string): LinkInfo | undefined {
  const t = s.trim();
  if (t === 'X') return { kind: 'X', nvlinks: 0 };
  if (t === 'SOC') return { kind: 'SYS', nvlinks: 0 };
  const nv = /^NV([1-9]\d{0,2})$/.exec(t);
  if (nv) return { kind: 'NV', nvlinks: Number(nv[1]) };
  if (t in PCIE_RANK) return { kind: t as LinkKind, nvlinks: 0 };
  return undefined;
}

/** Reads one cell; throws INVALID_ARGUMENT for anything nvidia-smi does not print. */
export function linkKind(s: string): LinkInfo {
  const info = parseLink(s);
  if (!info) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `unknown GPU link '${s}' (expected X, NV<n>, PIX, PXB, PHB, NODE or SYS)`, {
      details: { link: s },
    });
  }
  return info;
}

/**
 * A number that orders links best first: more NVLinks beat fewer, any NVLink
 * beats PCIe, then PIX > PXB > PHB > NODE > SYS. X (self) ranks above all.
 */
export function linkRank(s: string): number {
  const { kind, nvlinks } = linkKind(s);
  if (kind === 'X') return 10_000;
  if (kind === 'NV') return 100 + nvlinks;
  return PCIE_RANK[kind];
}

/** Comparator for sort(): best link first. */
export function compareLinks(a: string, b: string): number {
  return linkRank(b) - linkRank(a);
}

export function isNvlink(s: string): boolean {
  return parseLink(s)?.kind === 'NV';
}

/** Rebuilds the N×N matrix from the proto's row-major flattening. */
export function linkMatrix(links: readonly string[], n: number): string[][] {
  if (links.length !== n * n) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `topology has ${links.length} links, expected ${n}×${n}`, { details: { links: links.length, gpus: n } });
  }
  return Array.from({ length: n }, (_, i) => links.slice(i * n, (i + 1) * n));
}

/** The link between GPUs a and b in a proto topology of n GPUs. */
export function linkBetween(topology: Pick<GpuTopology, 'links'>, n: number, a: number, b: number): string {
  const s = topology.links[a * n + b];
  if (s === undefined || a >= n || b >= n) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `no link between GPU ${a} and GPU ${b} in a ${n}-GPU topology`, { details: { a, b, gpus: n } });
  }
  return s;
}

/**
 * Connected components of the NVLink graph, each sorted, ordered by their
 * lowest GPU. Every GPU is in exactly one island; a GPU without NVLink is an
 * island of its own. On an NVSwitch system (HGX, DGX A100, GB200) all GPUs are
 * one island; on a DGX-1 hybrid cube-mesh too (every GPU reaches every other
 * through NVLink hops), which is why TP placement should also weigh linkRank
 * of the pairs, not just island membership.
 */
export function nvlinkIslands(matrix: readonly (readonly string[])[]): number[][] {
  const n = matrix.length;
  const parent = Array.from({ length: n }, (_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]!]!;
      i = parent[i]!;
    }
    return i;
  };
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      if (isNvlink(matrix[i]![j]!)) {
        const a = find(i);
        const b = find(j);
        if (a !== b) parent[Math.max(a, b)] = Math.min(a, b);
      }
    }
  }
  const groups = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const root = find(i);
    const g = groups.get(root) ?? [];
    g.push(i);
    groups.set(root, g);
  }
  return [...groups.values()].sort((a, b) => a[0]! - b[0]!);
}

/** The NICs a GPU reaches by its best link (several when tied), in NIC order. */
export function nearestNics(nics: readonly { name: string; links: readonly string[] }[], gpu: number): string[] {
  let best = -1;
  let names: string[] = [];
  for (const nic of nics) {
    const link = nic.links[gpu];
    if (link === undefined) continue;
    const rank = linkRank(link);
    if (rank > best) {
      best = rank;
      names = [nic.name];
    } else if (rank === best) {
      names.push(nic.name);
    }
  }
  return names;
}

/** The GPUs a NIC reaches by its best link (several when tied). */
export function nearestGpus(nic: { links: readonly string[] }): number[] {
  let best = -1;
  let gpus: number[] = [];
  nic.links.forEach((link, gpu) => {
    const rank = linkRank(link);
    if (rank > best) {
      best = rank;
      gpus = [gpu];
    } else if (rank === best) {
      gpus.push(gpu);
    }
  });
  return gpus;
}

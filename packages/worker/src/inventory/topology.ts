/**
 * The topology model the scheduler reasons with: what one cell of
 * `nvidia-smi topo -m` means, how cells compare, and the NVLink islands.
 *
 * Pure functions over plain data (no I/O). The cell grammar (parseLink) and
 * the NVLink islands live in @muster/contracts, shared with the head's
 * scheduler; this file adds ranking and the MusterError of a bad cell.
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
import { isNvlink, nvlinkIslands, parseLink, type LinkInfo, type LinkKind } from '@muster/contracts';
import type { GpuTopology } from '@muster/proto';

// The link grammar and the NVLink islands are a contract the head's scheduler
// shares (@muster/contracts topology.ts); re-exported for the inventory's callers.
export { isNvlink, nvlinkIslands, parseLink, type LinkInfo, type LinkKind };

const PCIE_RANK: Record<Exclude<LinkKind, 'X' | 'NV'>, number> = { PIX: 5, PXB: 4, PHB: 3, NODE: 2, SYS: 1 };

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

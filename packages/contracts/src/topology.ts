/**
 * NVLink islands: which GPUs of a node reach each other over NVLink. The
 * worker derives them from `nvidia-smi topo -m` and reports them; the head's
 * scheduler derives them again when a node reports none (simulated nodes,
 * older agents). One derivation, so both always agree.
 *
 * Link strings are nvidia-smi's own, best first:
 *   X     the GPU itself
 *   NV<n> a bonded set of n NVLinks (NV18 on HGX H100, NV12 on DGX A100, ...)
 *   PIX   at most one PCIe bridge
 *   PXB   several PCIe bridges, no host bridge
 *   PHB   through a PCIe host bridge (the CPU)
 *   NODE  between host bridges inside one NUMA node
 *   SYS   across the SMP interconnect between NUMA nodes (QPI/UPI/xGMI)
 * Drivers before ~R384 printed SOC for what is now SYS; it reads as SYS.
 *
 * Two GPUs are NVLinked when both halves of the matrix say so: published
 * matrices are symmetric, a hand-written one may not be, and a link one side
 * does not see is not one to place a TP group on. (The worker's copy read
 * only the upper half, the head's both; the stricter rule stays.)
 */

export type LinkKind = 'X' | 'NV' | 'PIX' | 'PXB' | 'PHB' | 'NODE' | 'SYS';

export interface LinkInfo {
  kind: LinkKind;
  /** Number of bonded NVLinks; 0 unless kind is NV. */
  nvlinks: number;
}

const PCIE: ReadonlySet<string> = new Set(['PIX', 'PXB', 'PHB', 'NODE', 'SYS']);

/** Reads one cell; undefined when it is not a link nvidia-smi prints. */
export function parseLink(s: string): LinkInfo | undefined {
  const t = s.trim();
  if (t === 'X') return { kind: 'X', nvlinks: 0 };
  if (t === 'SOC') return { kind: 'SYS', nvlinks: 0 };
  const nv = /^NV([1-9]\d{0,2})$/.exec(t);
  if (nv) return { kind: 'NV', nvlinks: Number(nv[1]) };
  if (PCIE.has(t)) return { kind: t as LinkKind, nvlinks: 0 };
  return undefined;
}

export function isNvlink(s: string | undefined): boolean {
  return s !== undefined && parseLink(s)?.kind === 'NV';
}

/**
 * Connected components of the NVLink graph, each sorted, ordered by their
 * lowest GPU. Every GPU is in exactly one island; a GPU without NVLink is an
 * island of its own. On an NVSwitch system (HGX, DGX A100, GB200) all GPUs are
 * one island; on a DGX-1 hybrid cube-mesh too (every GPU reaches every other
 * through NVLink hops), which is why TP placement also weighs the links of
 * the pairs, not just island membership.
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
      if (isNvlink(matrix[i]?.[j]) && isNvlink(matrix[j]?.[i])) {
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

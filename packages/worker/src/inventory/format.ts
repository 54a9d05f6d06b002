/**
 * How an inventory is shown: the JSON of `muster-worker inventory --json`,
 * the readable summary, and the one-liner `muster status` prints per node.
 *
 * The JSON is the documented shape (docs/inventory.md), not the proto's:
 * links as an N×N array, islands as plain index arrays, unknown values
 * omitted (or null for numaNode) instead of "" and 0.
 */
import type { NodeInventory } from '@muster/proto';
import { linkMatrix, nearestGpus, nearestNics } from './topology.js';

export interface InventoryJson {
  hostname: string;
  source: string;
  nvlinkDomain: string | null;
  cpuCores: number;
  memoryBytes: number;
  gpus: {
    index: number;
    uuid?: string;
    name?: string;
    memoryMiB?: number;
    numaNode: number | null;
    pciBusId?: string;
    mig: { profile: string; uuid: string; index: number }[];
  }[];
  links: string[][];
  nvlinkIslands: number[][];
  nics: { name: string; links: string[]; nearestGpus: number[] }[];
  customResources: Record<string, number>;
}

export function inventoryToJson(inv: NodeInventory): InventoryJson {
  const n = inv.gpus.length;
  const topology = inv.topology ?? { links: [], nvlinkIslands: [], nics: [] };
  return {
    hostname: inv.hostname,
    source: inv.source,
    nvlinkDomain: inv.nvlinkDomain || null,
    cpuCores: inv.cpuCores,
    memoryBytes: inv.memoryBytes,
    gpus: inv.gpus.map((g) => ({
      index: g.index,
      ...(g.uuid ? { uuid: g.uuid } : {}),
      ...(g.name ? { name: g.name } : {}),
      ...(g.memoryMib ? { memoryMiB: g.memoryMib } : {}),
      numaNode: g.numaNode ?? null,
      ...(g.pciBusId ? { pciBusId: g.pciBusId } : {}),
      mig: g.mig.map((m) => ({ profile: m.profile, uuid: m.uuid, index: m.index })),
    })),
    links: linkMatrix(topology.links, n),
    nvlinkIslands: topology.nvlinkIslands.map((island) => [...island.gpuIndices]),
    nics: topology.nics.map((nic) => ({ name: nic.name, links: [...nic.links], nearestGpus: nearestGpus(nic) })),
    customResources: { ...inv.customResources },
  };
}

/** `[0,1,2,3]` → "0-3"; `[0,1]` → "0,1"; runs of three or more are ranges. */
export function indexSet(nums: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < nums.length; ) {
    let j = i;
    while (j + 1 < nums.length && nums[j + 1] === nums[j]! + 1) j++;
    if (j - i >= 2) parts.push(`${nums[i]}-${nums[j]}`);
    else for (let k = i; k <= j; k++) parts.push(String(nums[k]));
    i = j + 1;
  }
  return parts.join(',');
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd());
}

/** "7 × 1g.10gb" or "3g.40gb, 2 × 1g.10gb": a GPU's MIG devices by profile. */
function migSummary(mig: readonly { profile: string }[]): string {
  const counts = new Map<string, number>();
  for (const m of mig) counts.set(m.profile, (counts.get(m.profile) ?? 0) + 1);
  return [...counts].map(([p, c]) => (c === 1 ? p : `${c} × ${p}`)).join(', ');
}

/** The readable form of `muster-worker inventory`. */
export function formatInventory(inv: NodeInventory): string {
  const j = inventoryToJson(inv);
  const gib = Math.round(j.memoryBytes / 1024 ** 3);
  const out = [
    `node ${j.hostname} · source ${j.source} · ${j.cpuCores} CPU threads · ${gib} GiB memory · NVLink domain ${j.nvlinkDomain ?? '(none)'}`,
  ];
  if (j.gpus.length === 0) {
    out.push('no GPUs');
    return out.join('\n');
  }
  out.push('', `GPUs (${j.gpus.length}):`);
  const rows = [['IDX', 'NAME', 'MEMORY', 'NUMA', 'PCI', 'MIG', 'UUID']];
  for (const g of j.gpus) {
    rows.push([
      String(g.index),
      g.name ?? '?',
      g.memoryMiB ? `${g.memoryMiB} MiB` : '?',
      g.numaNode === null ? '-' : String(g.numaNode),
      g.pciBusId ?? '?',
      g.mig.length > 0 ? String(g.mig.length) : '-',
      g.uuid ?? '?',
    ]);
  }
  out.push(...table(rows).map((r) => `  ${r}`));
  out.push('', 'Links:');
  const header = ['', ...j.gpus.map((g) => `GPU${g.index}`)];
  out.push(...table([header, ...j.links.map((row, i) => [`GPU${i}`, ...row])]).map((r) => `  ${r}`));
  out.push('', `NVLink islands: ${j.nvlinkIslands.map((i) => `[${indexSet(i)}]`).join(' ')}`);
  const migGpus = j.gpus.filter((g) => g.mig.length > 0);
  out.push(`MIG: ${migGpus.length === 0 ? 'none' : ''}`.trimEnd());
  for (const g of migGpus) {
    out.push(`  GPU${g.index}: ${migSummary(g.mig)}`);
    for (const m of g.mig) out.push(`    ${m.index}  ${m.profile}  ${m.uuid}`);
  }
  if (j.nics.length > 0) {
    out.push('NICs (nearest GPUs):');
    out.push(...j.nics.map((nic) => `  ${nic.name}: GPU ${indexSet(nic.nearestGpus)} (${nic.links[nic.nearestGpus[0]!]})`));
  }
  return out.join('\n');
}

/** One line per node for `muster status`: GPUs, islands, MIG slices, NVLink domain. */
export function summarizeInventory(inv: NodeInventory): string {
  if (inv.gpus.length === 0) return 'no GPUs';
  const names = migSummary(inv.gpus.map((g) => ({ profile: g.name || 'GPU' }))).replace(/(\d+) × /g, '$1× ');
  const islands = (inv.topology?.nvlinkIslands ?? []).map((i) => `[${indexSet(i.gpuIndices)}]`).join(' ');
  const mig = inv.gpus.filter((g) => g.mig.length > 0).map((g) => `GPU${g.index}: ${migSummary(g.mig)}`);
  const parts = [names, `NVLink islands ${islands || '-'}`, `MIG ${mig.length > 0 ? mig.join('; ') : 'none'}`];
  if (inv.nvlinkDomain) parts.push(`domain ${inv.nvlinkDomain}`);
  return parts.join(' · ');
}

/** The NICs nearest each GPU, for the scheduler's NIC-aware placement. */
export function nicsByGpu(inv: NodeInventory): string[][] {
  return inv.gpus.map((g) => nearestNics(inv.topology?.nics ?? [], g.index));
}

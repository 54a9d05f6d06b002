/** Human formatting shared by CLI commands. */
import Table from 'cli-table3';
import type { ClusterSummary, NodeView } from '@muster/sdk';

export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export function ago(d: Date, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - d.getTime()) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** "8× NVIDIA H100 80GB HBM3" or "4× A + 4× B" */
function gpuSummary(n: NodeView): string {
  if (n.gpus.length === 0) return '-';
  const byName = new Map<string, number>();
  for (const g of n.gpus) byName.set(g.name || 'GPU', (byName.get(g.name || 'GPU') ?? 0) + 1);
  return [...byName].map(([name, c]) => `${c}× ${name}`).join(' + ');
}

/** Island sizes, "8" or "4+4", with the GPU indices when split. */
function islands(n: NodeView): string {
  if (n.gpus.length === 0) return '-';
  if (n.nvlinkIslands.length <= 1) return String(n.nvlinkIslands[0]?.length ?? n.gpus.length);
  if (n.nvlinkIslands.every((i) => i.length === 1)) return `none (${n.nvlinkIslands.length}×1)`;
  return n.nvlinkIslands.map((i) => `[${i.join(',')}]`).join(' ');
}

function mig(n: NodeView): string {
  const slices = n.gpus.flatMap((g) => g.mig.map((m) => m.profile));
  if (slices.length === 0) return '-';
  const by = new Map<string, number>();
  for (const p of slices) by.set(p, (by.get(p) ?? 0) + 1);
  return [...by].map(([p, c]) => `${c}× ${p}`).join(', ');
}

/** A borderless, left-aligned table (kubectl style). */
export function table(head: string[], rows: string[][]): string {
  const t = new Table({
    head,
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
    chars: { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ' },
  });
  t.push(...rows);
  return t.toString().split('\n').map((l) => l.trimEnd()).join('\n');
}

/** The node table; with `gpusUsed` (GPUs held by placement groups, by node id) a USED/FREE column too. */
export function nodesTable(nodes: NodeView[], gpusUsed?: ReadonlyMap<string, number>): string {
  const head = ['NODE', 'STATE', 'GPUS', 'GPU MEM', 'NVLINK ISLANDS', ...(gpusUsed ? ['GPUS USED/FREE'] : []), 'MIG', 'CPU', 'MEMORY', 'ADDRESS', 'HEARTBEAT'];
  return table(head, nodes.map((n) => {
    const gpuMem = n.gpus.reduce((s, g) => s + g.memoryMiB, 0) * 1024 * 1024;
    const used = gpusUsed?.get(n.id) ?? 0;
    return [
      n.id,
      (n.state === 'dead' ? `dead (${n.stateReason})` : n.state) + (n.draining ? `, draining${n.drainReason ? ` (${n.drainReason})` : ''}` : ''),
      gpuSummary(n),
      gpuMem ? bytes(gpuMem) : '-',
      islands(n),
      ...(gpusUsed ? [`${used}/${Math.max(0, n.gpus.length - used)}`] : []),
      mig(n),
      String(n.cpuCores),
      bytes(n.memoryBytes),
      n.address,
      `${ago(n.lastHeartbeatAt)} ago`,
    ];
  }));
}

export function clusterSummary(nodes: NodeView[]): string {
  const alive = nodes.filter((n) => n.state === 'alive');
  const gpus = alive.reduce((s, n) => s + n.gpus.length, 0);
  const draining = nodes.filter((n) => n.draining).length;
  return `${nodes.length} node(s): ${alive.length} alive, ${nodes.length - alive.length} dead${draining ? `, ${draining} draining` : ''}; ${gpus} GPU(s) on alive nodes`;
}

/**
 * "3 node(s): 3 alive, 0 dead, 1 draining; 24 GPU(s) on alive nodes: 8 used, 16 free", then
 * placement groups and gangs by state, then replica groups ("; 4 replica group(s), 1 quarantined":
 * the quarantined ones only when there are any).
 */
export function summaryLines(s: ClusterSummary): string[] {
  const byState = (m: Record<string, number>) => Object.entries(m).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${v} ${k.toLowerCase()}`).join(', ') || 'none';
  const count = (m: Record<string, number>) => Object.values(m).reduce((a, b) => a + b, 0);
  return [
    `${s.nodesAlive + s.nodesDead} node(s): ${s.nodesAlive} alive, ${s.nodesDead} dead${s.nodesDraining ? `, ${s.nodesDraining} draining` : ''}; ${s.gpusTotal} GPU(s) on alive nodes: ${s.gpusUsed} used, ${s.gpusFree} free`,
    `${count(s.placementGroups)} placement group(s): ${byState(s.placementGroups)}`,
    `${count(s.gangs)} gang(s): ${byState(s.gangs)}; ${s.replicaGroups} replica group(s)${s.replicaGroupsQuarantined ? `, ${s.replicaGroupsQuarantined} quarantined` : ''}`,
  ];
}

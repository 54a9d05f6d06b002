/**
 * Writes nvidia-smi output from a machine description, as a current driver
 * prints it (tab-separated topo -m with padded empty fields, the
 * " X " self cell, legends).
 *
 * Simulated profiles are rendered to text and then read by the same parsers
 * as a real node, so a profile can never hold something the parsers would
 * not accept, and the parsers are exercised on every simulated start.
 */

export interface RenderGpu {
  name: string;
  memoryMiB: number;
  pciBusId: string;
  uuid: string;
  /** undefined: a GPU without MIG support ("[N/A]"). */
  migEnabled?: boolean;
  mig?: { profile: string; uuid: string }[];
  cpuAffinity: string;
  numaAffinity: string;
  gpuNumaId?: string;
}

export interface RenderTopo {
  gpus: RenderGpu[];
  /** N×N GPU links, "X" on the diagonal. */
  links: string[][];
  nics: { name: string; links: string[] }[];
  /** M×M NIC-to-NIC links, "X" on the diagonal. */
  nicLinks: string[][];
  /**
   * 'legend': NIC<k> columns and a NIC legend (R525 and later).
   * 'device': columns named by device (mlx5_0), no NIC legend, no GPU NUMA ID (older drivers).
   */
  nicStyle: 'legend' | 'device';
}

const LEGEND = `Legend:

  X    = Self
  SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)
  NODE = Connection traversing PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node
  PHB  = Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)
  PXB  = Connection traversing multiple PCIe bridges (without traversing the PCIe Host Bridge)
  PIX  = Connection traversing at most a single PCIe bridge
  NV#  = Connection traversing a bonded set of # NVLinks
`;

const self = (s: string): string => (s === 'X' ? ' X ' : s);

export function renderTopo(t: RenderTopo): string {
  const modern = t.nicStyle === 'legend';
  const nicCols = t.nics.map((nic, j) => (modern ? `NIC${j}` : nic.name));
  const tail = modern ? ['CPU Affinity', 'NUMA Affinity', 'GPU NUMA ID'] : ['CPU Affinity', 'NUMA Affinity'];
  const out = [['', ...t.gpus.map((_, i) => `GPU${i}`), ...nicCols, ...tail].join('\t')];
  t.gpus.forEach((gpu, i) => {
    const cells = [...t.links[i]!.map(self), ...t.nics.map((nic) => nic.links[i]!)];
    // nvidia-smi pads NUMA Affinity with an empty field before GPU NUMA ID.
    const affinity = modern ? [gpu.cpuAffinity, gpu.numaAffinity, '', gpu.gpuNumaId ?? 'N/A'] : [gpu.cpuAffinity, gpu.numaAffinity];
    out.push([`GPU${i}`, ...cells, ...affinity].join('\t'));
  });
  t.nics.forEach((nic, j) => {
    out.push([nicCols[j], ...nic.links, ...t.nicLinks[j]!.map(self)].join('\t'));
  });
  let text = `${out.join('\n')}\n\n${LEGEND}`;
  if (modern && t.nics.length > 0) {
    text += `\nNIC Legend:\n\n${t.nics.map((nic, j) => `  NIC${j}: ${nic.name}`).join('\n')}\n`;
  }
  return text;
}

export function renderQueryGpu(gpus: RenderGpu[]): string {
  const rows = gpus.map((g, i) => {
    const mig = g.migEnabled === undefined ? '[N/A]' : g.migEnabled ? 'Enabled' : 'Disabled';
    return `${i}, ${g.uuid}, ${g.name}, ${g.memoryMiB} MiB, ${g.pciBusId}, ${mig}`;
  });
  return `index, uuid, name, memory.total [MiB], pci.bus_id, mig.mode.current\n${rows.join('\n')}\n`;
}

export function renderList(gpus: RenderGpu[]): string {
  const lines: string[] = [];
  gpus.forEach((g, i) => {
    lines.push(`GPU ${i}: ${g.name} (UUID: ${g.uuid})`);
    (g.mig ?? []).forEach((m, k) => lines.push(`  MIG ${m.profile.padEnd(11)} Device ${String(k).padStart(2)}: (UUID: ${m.uuid})`));
  });
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/**
 * Puts the three nvidia-smi readings together into the NodeInventory the
 * worker registers.
 *
 * Each source knows different things: --query-gpu (UUID, name, memory, PCI
 * address, MIG mode), topo -m (links, NICs, NUMA), -L (UUID, name, MIG
 * devices). Any subset may be given (recorded files, a CPU-only node). Where
 * two sources state the same fact they must agree, or assembly fails: an
 * inventory stitched from two different machines is worse than none.
 */
import { ErrorCode, MusterError } from '@muster/common';
import type { GpuDevice, NodeInventory } from '@muster/proto';
import { parseGpuList, type ListGpu } from './parse-list.js';
import { parseQueryGpu, type QueryGpuRow } from './parse-query.js';
import { parseTopo, type TopoResult } from './parse-topo.js';
import { parseError } from './parse-util.js';
import { nvlinkIslands } from './topology.js';

/** Raw nvidia-smi outputs, any subset. */
export interface SmiTexts {
  topo?: string;
  queryGpu?: string;
  list?: string;
  /** Fields of a --query-gpu output printed with noheader. */
  queryColumns?: readonly string[];
}

export interface ParsedSmi {
  topo?: TopoResult;
  query?: QueryGpuRow[];
  list?: ListGpu[];
}

export interface InventoryMeta {
  hostname: string;
  cpuCores: number;
  memoryBytes: number;
  source: string;
  nvlinkDomain: string;
}

export interface Assembled {
  inventory: NodeInventory;
  /** Facts worth a log line: assumptions made, GPUs that cannot run work. */
  warnings: string[];
}

export function parseSmiTexts(texts: SmiTexts): ParsedSmi {
  const parsed: ParsedSmi = {};
  if (texts.topo !== undefined) parsed.topo = parseTopo(texts.topo);
  if (texts.queryGpu !== undefined) parsed.query = parseQueryGpu(texts.queryGpu, texts.queryColumns ? { columns: texts.queryColumns } : {});
  if (texts.list !== undefined) parsed.list = parseGpuList(texts.list);
  return parsed;
}

function disagree(message: string, details: Record<string, unknown> = {}): MusterError {
  return new MusterError(ErrorCode.INVALID_ARGUMENT, `nvidia-smi outputs disagree: ${message}`, { details });
}

/** The GPU count every given source must agree on. */
function gpuCount(p: ParsedSmi): number {
  const counts: [string, number][] = [];
  if (p.topo) counts.push(['topo -m', p.topo.links.length]);
  if (p.query) counts.push(['query-gpu', p.query.length]);
  if (p.list) counts.push(['-L', p.list.length]);
  const [first, ...rest] = counts;
  for (const [name, n] of rest) {
    if (n !== first![1]) throw disagree(`${first![0]} lists ${first![1]} GPUs, ${name} lists ${n}`, { [first![0]]: first![1], [name]: n });
  }
  return first?.[1] ?? 0;
}

export function assembleInventory(p: ParsedSmi, meta: InventoryMeta): Assembled {
  const n = gpuCount(p);
  const warnings: string[] = [];
  const byIndex = new Map<number, QueryGpuRow>();
  for (const row of p.query ?? []) {
    if (row.index >= n) throw parseError('query-gpu', row.line, `GPU index ${row.index} out of range: ${n} GPUs`);
    byIndex.set(row.index, row);
  }

  const gpus: GpuDevice[] = [];
  for (let i = 0; i < n; i++) {
    const q = byIndex.get(i);
    const l = p.list?.[i];
    if (q?.uuid && l && q.uuid !== l.uuid) {
      throw parseError('query-gpu', q.line, `GPU ${i} has uuid ${q.uuid}, but -L line ${l.line} says ${l.uuid}`);
    }
    const numa = p.topo?.numaNodes[i] ?? null;
    const mig = (l?.mig ?? []).map((m) => ({ profile: m.profile, uuid: m.uuid, index: m.index }));
    if (q?.migEnabled && p.list && mig.length === 0) {
      warnings.push(`GPU ${i} has MIG mode enabled but no MIG devices: it cannot run work until MIG devices are created`);
    } else if (q?.migEnabled && !p.list) {
      warnings.push(`GPU ${i} has MIG mode enabled, but without -L output its MIG devices are unknown`);
    }
    gpus.push({
      index: i,
      uuid: q?.uuid ?? l?.uuid ?? '',
      name: q?.name ?? l?.name ?? '',
      memoryMib: q?.memoryMiB ?? 0,
      ...(numa === null ? {} : { numaNode: numa }),
      mig,
      pciBusId: q?.pciBusId ?? '',
      migEnabled: q?.migEnabled ?? mig.length > 0,
    });
  }

  let matrix = p.topo?.links;
  if (!matrix) {
    // Without topo -m nothing is known about the pairs: assume the slowest
    // path rather than promise an NVLink that may not exist.
    matrix = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 'X' : 'SYS')));
    if (n > 1) warnings.push(`no topo -m output for ${n} GPUs: every pair is assumed SYS (no NVLink)`);
  }

  const inventory: NodeInventory = {
    hostname: meta.hostname,
    cpuCores: meta.cpuCores,
    memoryBytes: meta.memoryBytes,
    gpus,
    topology: {
      links: matrix.flat(),
      nvlinkIslands: nvlinkIslands(matrix).map((gpuIndices) => ({ gpuIndices })),
      nics: (p.topo?.nics ?? []).map((nic) => ({ name: nic.name, links: [...nic.links] })),
    },
    nvlinkDomain: meta.nvlinkDomain,
    source: meta.source,
    customResources: {},
  };
  return { inventory, warnings };
}

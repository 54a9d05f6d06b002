/**
 * What the GPUs say they are doing, from two nvidia-smi queries:
 *
 *   nvidia-smi --query-gpu=index,uuid,memory.used,memory.total,utilization.gpu --format=csv
 *   index, uuid, memory.used [MiB], memory.total [MiB], utilization.gpu [%]
 *   0, GPU-a44622e3-…, 130013 MiB, 143771 MiB, 100 %
 *
 *   nvidia-smi --query-compute-apps=gpu_uuid,pid,process_name,used_gpu_memory --format=csv
 *   gpu_uuid, pid, process_name, used_gpu_memory [MiB]
 *   GPU-a44622e3-…, 1328667, /usr/local/bin/python3.10, 130004 MiB
 *
 * The first runs once, as a long-running reader (`gpuLoopArgs`: no header, no
 * units, one row per GPU every interval; gpu-reader.ts), and each of its
 * blocks is parsed as one run's output under the header GPU_FIELDS names; the
 * second is a process per call (`queryApps`), made at most every 5 s
 * (compute-apps.ts). Cells are read by column name, with or without units.
 *
 * A replica's GPU utilisation is the mean of `utilization.gpu` over the GPUs
 * its ranks were given (CUDA_VISIBLE_DEVICES, by index or UUID); its GPU
 * memory is the `used_gpu_memory` of its processes (by pid, so two replicas
 * sharing a GPU are told apart). nvidia-smi has no per-process utilisation
 * outside `pmon`, which samples for a second per call.
 *
 * Values nvidia-smi cannot give ("[N/A]", "[Not Supported]": MIG slices have
 * no utilisation) are left out; a row that is malformed fails the parse
 * with the inventory parsers' line-numbered error (inventory/parse-util.ts),
 * and the sampler reports no GPU values that second.
 */
import { numberedLines, parseError, type SmiSource } from '../inventory/parse-util.js';
import { runSmi } from '../inventory/smi.js';

/** The columns of the GPU query, in order: the header a headerless block is parsed under. */
export const GPU_FIELDS = ['index', 'uuid', 'memory.used', 'memory.total', 'utilization.gpu'] as const;
export const QUERY_APPS_ARGS = ['--query-compute-apps=gpu_uuid,pid,process_name,used_gpu_memory', '--format=csv'];
/** The long-running GPU query: one headerless, unitless row per GPU every `intervalMs` (`-lms`: milliseconds; `-l` takes seconds). */
export function gpuLoopArgs(intervalMs: number): string[] {
  return [`--query-gpu=${GPU_FIELDS.join(',')}`, '--format=csv,noheader,nounits', '-lms', String(intervalMs)];
}
/** One nvidia-smi call's deadline: a driver that hangs must not stall the sampler. */
export const SMI_TIMEOUT_MS = 5_000;

export interface GpuUse {
  index: number;
  uuid: string;
  /** 0…1; absent when nvidia-smi cannot tell (MIG). */
  utilization?: number;
  memoryUsedBytes?: number;
}

export interface AppUse {
  gpuUuid: string;
  pid: number;
  memoryBytes?: number;
}

const MIB = 1024 * 1024;
const UNKNOWN = /^(\[[^\]]*\]|N\/A)$/;

/** Rows of a CSV query with a header, as name → cell (header units dropped: "memory.used [MiB]" → "memory.used"). */
function rowsOf(text: string, source: SmiSource): Array<{ line: number; cells: Map<string, string> }> {
  const lines = numberedLines(text).filter((l) => l.text.trim() !== '');
  const head = lines.shift();
  if (!head) return [];
  const names = head.text.split(',').map((h) => h.trim().replace(/\s*\[[^\]]*\]$/, ''));
  return lines.map(({ text: t, no }) => {
    const cells = t.split(',').map((c) => c.trim());
    if (cells.length !== names.length) throw parseError(source, no, `${cells.length} fields, expected ${names.length} (${names.join(', ')})`);
    return { line: no, cells: new Map(names.map((n, i) => [n, cells[i]!])) };
  });
}

type Where = [SmiSource, number];

/** "130013 MiB" / "130013" → bytes; "[N/A]" → undefined; anything else throws. */
function mib(v: string | undefined, [source, line]: Where): number | undefined {
  if (v === undefined || UNKNOWN.test(v)) return undefined;
  const m = /^(\d+(?:\.\d+)?)(?: MiB)?$/.exec(v);
  if (!m) throw parseError(source, line, `"${v}" is not a MiB amount`);
  return Number(m[1]) * MIB;
}

/** "100 %" / "100" → 1; "[N/A]" → undefined. */
function percent(v: string | undefined, [source, line]: Where): number | undefined {
  if (v === undefined || UNKNOWN.test(v)) return undefined;
  const m = /^(\d+(?:\.\d+)?)(?: %)?$/.exec(v);
  if (!m || Number(m[1]) > 100) throw parseError(source, line, `"${v}" is not a percentage`);
  return Number(m[1]) / 100;
}

export function parseGpuUse(text: string): GpuUse[] {
  return rowsOf(text, 'query-gpu').map(({ line, cells }) => {
    const where: Where = ['query-gpu', line];
    const index = Number(cells.get('index'));
    const uuid = cells.get('uuid') ?? '';
    if (!Number.isInteger(index) || index < 0 || !uuid.startsWith('GPU-')) throw parseError('query-gpu', line, 'no index and GPU UUID');
    const utilization = percent(cells.get('utilization.gpu'), where);
    const memoryUsedBytes = mib(cells.get('memory.used'), where);
    return { index, uuid, ...(utilization === undefined ? {} : { utilization }), ...(memoryUsedBytes === undefined ? {} : { memoryUsedBytes }) };
  });
}

/** One block of the long-running query (its rows, no header), parsed as one run's output; throws as parseGpuUse. */
export function parseGpuBlock(rows: readonly string[]): GpuUse[] {
  return parseGpuUse([GPU_FIELDS.join(', '), ...rows].join('\n'));
}

export function parseAppUse(text: string): AppUse[] {
  return rowsOf(text, 'query-compute-apps').map(({ line, cells }) => {
    const where: Where = ['query-compute-apps', line];
    const pid = Number(cells.get('pid'));
    const gpuUuid = cells.get('gpu_uuid') ?? '';
    if (!Number.isInteger(pid) || pid < 1 || !gpuUuid.startsWith('GPU-')) throw parseError('query-compute-apps', line, 'no pid and GPU UUID');
    const memoryBytes = mib(cells.get('used_gpu_memory') ?? cells.get('used_memory'), where);
    return { gpuUuid, pid, ...(memoryBytes === undefined ? {} : { memoryBytes }) };
  });
}

/** The GPUs a rank was given: CUDA_VISIBLE_DEVICES' entries (indexes or UUIDs; MIG UUIDs too). */
export function visibleDevices(value: string | undefined): string[] {
  return (value ?? '').split(',').map((d) => d.trim()).filter((d) => d !== '' && d !== '-1' && d !== 'NoDevFiles');
}

/** A replica's GPU values from one pair of queries: the mean utilisation of `devices`, the memory of `pids`. */
export function replicaGpuUse(devices: readonly string[], pids: ReadonlySet<number>, gpus: readonly GpuUse[], apps: readonly AppUse[]): { utilization?: number; memoryBytes?: number; gpus: number } {
  const mine = gpus.filter((g) => devices.includes(String(g.index)) || devices.includes(g.uuid));
  const known = mine.filter((g) => g.utilization !== undefined);
  const held = apps.filter((a) => pids.has(a.pid) && a.memoryBytes !== undefined);
  return {
    gpus: known.length,
    ...(known.length ? { utilization: known.reduce((s, g) => s + g.utilization!, 0) / known.length } : {}),
    ...(held.length ? { memoryBytes: held.reduce((s, a) => s + a.memoryBytes!, 0) } : {}),
  };
}

/** The compute-app query once (`bin`: nvidia-smi on PATH by default; inventory/smi.ts); throws on a timeout, a failure or output that does not parse. */
export async function queryApps(bin = 'nvidia-smi'): Promise<AppUse[]> {
  const r = await runSmi(bin, QUERY_APPS_ARGS, SMI_TIMEOUT_MS);
  if (!r.ok) throw new Error(`${QUERY_APPS_ARGS[0]}: ${r.reason}`);
  return parseAppUse(r.stdout);
}

/**
 * Discovery: what this node has, from nvidia-smi, recorded files or a
 * simulated profile, plus CPU threads and memory from the OS.
 *
 * Order of sources: a profile (built-in or a directory) gives all three
 * outputs; --topo/--query-gpu/--list files replace the matching one; with
 * neither, nvidia-smi runs here, each command under a timeout.
 *
 * Failure policy, chosen so that a node never registers a wrong picture:
 *   - no nvidia-smi binary, no driver, or no devices: a CPU-only node, said
 *     once per logger (the worker re-discovers on re-registration);
 *   - nvidia-smi hangs past the timeout: DEADLINE_EXCEEDED (a stuck driver
 *     is a node problem to surface, not to paper over);
 *   - output that does not parse: the parser's line-numbered error;
 *   - topo -m or -L failing while --query-gpu works: a warning, and links
 *     assumed SYS / MIG devices unknown.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { ErrorCode, MusterError } from '@muster/common';
import type { NodeInventory } from '@muster/proto';
import { assembleInventory, parseSmiTexts, type SmiTexts } from './assemble.js';
import { QUERY_GPU_FIELDS } from './parse-query.js';
import { loadProfile } from './profiles.js';
import { runSmi } from './smi.js';

export interface InventoryLog {
  info(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
}

export interface DiscoverOptions {
  profile?: string;
  topoFile?: string;
  queryGpuFile?: string;
  listFile?: string;
  /** Multi-node NVLink domain / clique; else MUSTER_NVLINK_DOMAIN; else the profile's default. */
  nvlinkDomain?: string;
  /** The nvidia-smi binary (default: `nvidia-smi` on PATH). */
  nvidiaSmi?: string;
  /** Per nvidia-smi command (default 10 s). */
  timeoutMs?: number;
  log?: InventoryLog;
}

export const DEFAULT_SMI_TIMEOUT_MS = 10_000;

/** Loggers already told this is a CPU-only node. */
const toldCpuOnly = new WeakSet<object>();

const noLog: InventoryLog = { info: () => {}, warn: () => {} };

/** Runs the three nvidia-smi commands; undefined means a CPU-only node. */
async function readSmi(bin: string, timeoutMs: number, log: InventoryLog): Promise<SmiTexts | undefined> {
  const [query, topo, list] = await Promise.all([
    runSmi(bin, [`--query-gpu=${QUERY_GPU_FIELDS.join(',')}`, '--format=csv'], timeoutMs),
    runSmi(bin, ['topo', '-m'], timeoutMs),
    runSmi(bin, ['-L'], timeoutMs),
  ]);
  if (!query.ok) {
    if (!toldCpuOnly.has(log)) {
      toldCpuOnly.add(log);
      // A missing binary is the normal CPU node; one that fails is worth a warning.
      if (query.missing) log.info({ reason: query.reason }, 'no nvidia-smi: this is a CPU-only node');
      else log.warn({ reason: query.reason }, 'nvidia-smi failed: treating this as a CPU-only node');
    }
    return undefined;
  }
  const texts: SmiTexts = { queryGpu: query.stdout, queryColumns: QUERY_GPU_FIELDS };
  if (topo.ok) texts.topo = topo.stdout;
  else log.warn({ reason: topo.reason }, 'nvidia-smi topo -m failed: GPU links unknown');
  if (list.ok) texts.list = list.stdout;
  else log.warn({ reason: list.reason }, 'nvidia-smi -L failed: MIG devices unknown');
  return texts;
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new MusterError(ErrorCode.INVALID_ARGUMENT, `cannot read ${what} file ${path}: ${(e as Error).message}`, {
      cause: e,
      details: { field: what, path },
    });
  }
}

export async function discoverInventory(opts: DiscoverOptions = {}): Promise<NodeInventory> {
  const log = opts.log ?? noLog;
  const profile = opts.profile ? await loadProfile(opts.profile) : undefined;
  let texts: SmiTexts | undefined = profile?.texts;
  let source = profile?.source;

  const files: [keyof SmiTexts, string | undefined, string][] = [
    ['topo', opts.topoFile, 'topo'],
    ['queryGpu', opts.queryGpuFile, 'query-gpu'],
    ['list', opts.listFile, 'list'],
  ];
  for (const [key, path, what] of files) {
    if (path === undefined) continue;
    texts = { ...texts, [key]: await readText(path, what) };
    source = 'files';
  }

  if (!texts) {
    texts = await readSmi(opts.nvidiaSmi ?? 'nvidia-smi', opts.timeoutMs ?? DEFAULT_SMI_TIMEOUT_MS, log);
    source = texts ? 'nvidia-smi' : 'none';
  }

  const nvlinkDomain = opts.nvlinkDomain ?? (process.env.MUSTER_NVLINK_DOMAIN || undefined) ?? profile?.nvlinkDomain ?? '';
  const { inventory, warnings } = assembleInventory(parseSmiTexts(texts ?? {}), {
    hostname: os.hostname(),
    cpuCores: profile?.cpuCores ?? os.availableParallelism(),
    memoryBytes: profile?.memoryBytes ?? os.totalmem(),
    source: source ?? 'none',
    nvlinkDomain,
  });
  for (const w of warnings) log.warn({ source: inventory.source }, w);
  return inventory;
}

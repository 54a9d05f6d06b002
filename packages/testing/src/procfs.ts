/**
 * What the kernel says about processes on this machine, read from /proc
 * (Linux only): whether a pid runs, its state and group (common/procfs.ts,
 * shared with the worker), its environment.
 * The chaos helpers and the invariant checker find shard processes, which
 * are grandchildren of the test (test → worker → shard), this way.
 */
import { readdir, readFile } from 'node:fs/promises';
import { pidAlive, procStat, type ProcStat } from '@muster/common';

export { pidAlive };

export interface ProcInfo extends ProcStat {
  pid: number;
}

/** /proc/<pid>/stat, parsed (common's procStat, with the pid); undefined when there is no such process. */
export function procInfo(pid: number): ProcInfo | undefined {
  const st = procStat(pid);
  return st && { pid, ...st };
}

/** The environment `pid` was started with; undefined when it is gone or not ours to read. */
export async function procEnv(pid: number): Promise<Map<string, string> | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/environ`, 'utf8');
    const env = new Map<string, string>();
    for (const kv of raw.split('\0')) {
      const eq = kv.indexOf('=');
      if (eq > 0) env.set(kv.slice(0, eq), kv.slice(eq + 1));
    }
    return env;
  } catch {
    return undefined;
  }
}

export interface ScannedProcess extends ProcInfo {
  env: Map<string, string>;
}

/** Every live (non-zombie) process whose environment `match` accepts, this process excluded. */
export async function scanProcesses(match: (env: Map<string, string>) => boolean): Promise<ScannedProcess[]> {
  const found: ScannedProcess[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const env = await procEnv(pid);
    if (!env || !match(env)) continue;
    const st = procInfo(pid);
    if (!st || st.state === 'Z' || st.state === 'X') continue;
    found.push({ ...st, env });
  }
  return found;
}

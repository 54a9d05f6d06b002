/**
 * What the kernel says about processes on this machine, read from /proc
 * (Linux only): whether a pid runs, its state and group, its environment.
 * The chaos helpers and the invariant checker find shard processes, which
 * are grandchildren of the test (test → worker → shard), this way.
 */
import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';

export interface ProcInfo {
  pid: number;
  /** R, S, D, T (stopped), Z (zombie), X (dead), ... */
  state: string;
  ppid: number;
  pgrp: number;
  /** CPU time used so far, user + system, in ms (clock ticks of 10 ms, Linux's USER_HZ). */
  cpuMs: number;
}

/** /proc/<pid>/stat, parsed; undefined when there is no such process. */
export function procInfo(pid: number): ProcInfo | undefined {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may hold spaces and parentheses: fields 3.. start after the last ')'.
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  const [state, ppid, pgrp] = [rest[0], Number(rest[1]), Number(rest[2])];
  if (state === undefined || !Number.isFinite(ppid) || !Number.isFinite(pgrp)) return undefined;
  const cpuMs = (Number(rest[11]) + Number(rest[12])) * 10;
  return { pid, state, ppid, pgrp, cpuMs };
}

/** True while `pid` exists and is neither a zombie nor dead (kill(pid, 0) alone also answers for zombies). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const st = procInfo(pid);
  return st !== undefined && st.state !== 'Z' && st.state !== 'X';
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

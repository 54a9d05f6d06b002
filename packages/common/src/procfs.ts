/**
 * What the kernel says about a process, from /proc/<pid>/stat (Linux): the
 * one parser the worker (shard adoption, liveness) and the test kit (chaos,
 * invariants, benchmarks) share.
 */
import { readFileSync } from 'node:fs';

export interface ProcStat {
  /** R, S, D, T (stopped), Z (zombie), X (dead), ... */
  state: string;
  ppid: number;
  pgrp: number;
  /** Field 22, clock ticks since boot; kept as text (compared, never computed with). */
  startTime: string;
  /** CPU time used so far, user + system, in ms (clock ticks of 10 ms, Linux's USER_HZ). */
  cpuMs: number;
}

/** /proc/<pid>/stat, parsed; undefined when there is no such process. */
export function procStat(pid: number): ProcStat | undefined {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm (field 2) may hold spaces and parentheses: fields 3.. start after the last ')'.
  const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
  const [state, ppid, pgrp, startTime] = [rest[0], Number(rest[1]), Number(rest[2]), rest[19]];
  if (state === undefined || startTime === undefined || !Number.isFinite(ppid) || !Number.isFinite(pgrp)) return undefined;
  return { state, ppid, pgrp, startTime, cpuMs: (Number(rest[11]) + Number(rest[12])) * 10 };
}

/** True when `pid` runs (not a zombie) and, if given, started at `startTime` (so it is the same process, not a reused pid). */
export function pidAlive(pid: number, startTime?: string): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const st = procStat(pid);
  return st !== undefined && st.state !== 'Z' && st.state !== 'X' && (startTime === undefined || st.startTime === startTime);
}

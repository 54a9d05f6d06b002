/**
 * What the kernel says a process uses: /proc/<pid>/stat (CPU time, parent,
 * start time) and /proc/<pid>/status (resident memory), read for the ranks
 * of each replica and every process below them (a launcher script, a
 * Python engine's workers). The sampler (sampler.ts) turns two reads into
 * CPU cores; memory is the latest read.
 *
 * Why stat + status and not smaps_rollup: smaps_rollup gives PSS (shared
 * pages split fairly) but walks every mapping of the process on each read —
 * a model server maps tens of GiB — while stat and status are a few hundred
 * bytes the kernel keeps at hand. RSS counts a page shared by two processes
 * of one replica twice; for an autoscaling target that is a stable bias, not
 * noise.
 *
 * Finding the children: ranks run in process groups of their own, but a
 * child may start its own group (or session), so the tree is followed by
 * parent pid over one read of every /proc/<pid>/stat per sample (a few
 * hundred small reads on a typical node, once a second).
 */
import { readdir, readFile } from 'node:fs/promises';

/**
 * Clock ticks per second of stat's CPU times: USER_HZ, which the kernel fixes
 * at 100 on every architecture Linux exposes to user space (sysconf
 * _SC_CLK_TCK; Node has no sysconf, and the value has not changed since 2.6).
 */
export const CLOCK_TICKS = 100;

export interface ProcStat {
  pid: number;
  comm: string;
  ppid: number;
  /** utime + stime, clock ticks. */
  cpuTicks: number;
  /** Start time since boot, clock ticks: with pid, the process's identity (pids are recycled). */
  startTime: number;
}

/**
 * Parses one /proc/<pid>/stat line. The command name (field 2) is in
 * parentheses and may hold spaces and parentheses itself, so the fields are
 * counted from the last ')'. Undefined when the text is not a stat line.
 */
export function parseStat(text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 1 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  // After ')': field 3 (state) onwards; fields 4 ppid, 14 utime, 15 stime, 22 starttime.
  const rest = text.slice(close + 1).trim().split(/\s+/);
  const field = (n: number): number => Number(rest[n - 3]);
  const [ppid, utime, stime, startTime] = [field(4), field(14), field(15), field(22)];
  if (!Number.isInteger(pid) || pid < 1 || ![ppid, utime, stime, startTime].every((v) => Number.isInteger(v) && v >= 0)) return undefined;
  return { pid, comm: text.slice(open + 1, close), ppid, cpuTicks: utime + stime, startTime };
}

/** VmRSS of a /proc/<pid>/status text, in bytes; undefined when absent (a kernel thread, a zombie). */
export function parseStatusRss(text: string): number | undefined {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(text);
  return m ? Number(m[1]) * 1024 : undefined;
}

/** Every pid at or below `roots` in the tree of `table` (parent pid → children). */
export function descendants(roots: Iterable<number>, table: ReadonlyMap<number, ProcStat>): Set<number> {
  const children = new Map<number, number[]>();
  for (const p of table.values()) {
    const list = children.get(p.ppid);
    if (list) list.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  const out = new Set<number>();
  const todo = [...roots].filter((pid) => table.has(pid));
  while (todo.length) {
    const pid = todo.pop()!;
    if (out.has(pid)) continue;
    out.add(pid);
    for (const c of children.get(pid) ?? []) todo.push(c);
  }
  return out;
}

/** Reads a small /proc file; undefined when the process is gone or unreadable. */
async function readSmall(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** One read of every process's stat (`root`: /proc, or a directory laid out like it in tests). */
export async function readProcTable(root = '/proc'): Promise<Map<number, ProcStat>> {
  const table = new Map<number, ProcStat>();
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return table; // no /proc (not Linux): nothing to measure
  }
  const pids = names.filter((n) => /^\d+$/.test(n));
  const stats = await Promise.all(pids.map((pid) => readSmall(`${root}/${pid}/stat`)));
  for (const text of stats) {
    const s = text === undefined ? undefined : parseStat(text);
    if (s) table.set(s.pid, s);
  }
  return table;
}

/** Resident memory of `pids`, bytes (a process gone since the table was read counts 0). */
export async function residentBytes(pids: Iterable<number>, root = '/proc'): Promise<number> {
  const texts = await Promise.all([...pids].map((pid) => readSmall(`${root}/${pid}/status`)));
  return texts.reduce((sum, t) => sum + ((t === undefined ? undefined : parseStatusRss(t)) ?? 0), 0);
}

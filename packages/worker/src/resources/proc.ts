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
 *
 * Reads are synchronous, in batches of READ_BATCH with a turn of the event
 * loop between them: /proc files are made by the kernel on read and never
 * wait on a disk, and a promise per file cost five times the CPU (measured
 * on this project's build machine, 113 processes, load average ≈ 13–16:
 * 8.5 ms of CPU a sample with a promise per file, 2.0–2.1 ms batched), while
 * a batch holds the loop for well under a millisecond, so the agent's
 * heartbeats and HTTP bridges do not wait.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setImmediate as yieldToLoop } from 'node:timers/promises';

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

/** Parent pid → its children's pids, over one read of the process table (built once a sample, for every replica). */
export function childrenOf(table: ReadonlyMap<number, ProcStat>): Map<number, number[]> {
  const children = new Map<number, number[]>();
  for (const p of table.values()) {
    const list = children.get(p.ppid);
    if (list) list.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  return children;
}

/** Every pid at or below `roots` in the tree of `table` (`children`: childrenOf(table), passed when several trees are followed). */
export function descendants(roots: Iterable<number>, table: ReadonlyMap<number, ProcStat>, children: ReadonlyMap<number, readonly number[]> = childrenOf(table)): Set<number> {
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

/** Files read between two turns of the event loop. */
export const READ_BATCH = 64;

/** Reads a small /proc file; undefined when the process is gone or unreadable. */
function readSmall(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** `read` over `items` in batches of READ_BATCH, yielding to the event loop between batches. */
async function batched<T, R>(items: readonly T[], read: (t: T) => R): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += READ_BATCH) {
    if (i > 0) await yieldToLoop();
    for (const t of items.slice(i, i + READ_BATCH)) out.push(read(t));
  }
  return out;
}

/** One read of every process's stat (`root`: /proc, or a directory laid out like it in tests). */
export async function readProcTable(root = '/proc'): Promise<Map<number, ProcStat>> {
  const table = new Map<number, ProcStat>();
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return table; // no /proc (not Linux): nothing to measure
  }
  const pids = names.filter((n) => /^\d+$/.test(n));
  for (const text of await batched(pids, (pid) => readSmall(`${root}/${pid}/stat`))) {
    const s = text === undefined ? undefined : parseStat(text);
    if (s) table.set(s.pid, s);
  }
  return table;
}

/** Resident memory of `pids`, bytes (a process gone since the table was read counts 0). */
export async function residentBytes(pids: Iterable<number>, root = '/proc'): Promise<number> {
  const texts = await batched([...pids], (pid) => readSmall(`${root}/${pid}/status`));
  return texts.reduce((sum, t) => sum + ((t === undefined ? undefined : parseStatusRss(t)) ?? 0), 0);
}

/**
 * /proc parsing on text recorded on a real machine (test-fixtures/proc):
 * a command name with spaces and parentheses, CPU ticks of a busy process
 * read twice, resident memory, and the tree below a rank.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { childrenOf, CLOCK_TICKS, descendants, parseStat, parseStatusRss, type ProcStat } from './proc.js';

const DIR = new URL('../../test-fixtures/proc/', import.meta.url);
/** A recorded file without its first line (where it came from). */
const fixture = (name: string): string => readFileSync(new URL(name, DIR), 'utf8').split('\n').slice(1).join('\n');

describe('parseStat on recorded /proc/<pid>/stat', () => {
  it('reads fields after the last ")" when the command name holds spaces and parentheses', () => {
    expect(parseStat(fixture('stat-comm-with-parens.txt'))).toEqual({ pid: 31572, comm: 'sleepy (a) b', ppid: 31569, cpuTicks: 0, startTime: 3005331 });
  });

  it('reads utime + stime of a busy process: 0.4 cores over the 1 s between the two reads', () => {
    const t0 = parseStat(fixture('stat-busy-node-t0.txt'))!;
    const t1 = parseStat(fixture('stat-busy-node-t1.txt'))!;
    expect(t0).toMatchObject({ pid: 31575, comm: 'node', ppid: 31573, cpuTicks: 37 });
    expect(t1.startTime).toBe(t0.startTime);
    expect((t1.cpuTicks - t0.cpuTicks) / CLOCK_TICKS).toBeCloseTo(0.4, 5);
  });

  it('refuses what is not a stat line', () => {
    for (const bad of ['', 'hello', '12 (x', 'x (y) S 1 2', fixture('status-sleep.txt')]) expect(parseStat(bad)).toBeUndefined();
    // Cut before the start time (field 22).
    expect(parseStat(fixture('stat-busy-node-t0.txt').split(' ').slice(0, 20).join(' '))).toBeUndefined();
  });
});

describe('parseStatusRss on recorded /proc/<pid>/status', () => {
  it('reads VmRSS in bytes', () => {
    expect(parseStatusRss(fixture('status-busy-node.txt'))).toBe(46424 * 1024);
    expect(parseStatusRss(fixture('status-sleep.txt'))).toBe(1824 * 1024);
  });

  it('is undefined without VmRSS (a kernel thread or a zombie has none)', () => {
    expect(parseStatusRss(fixture('status-sleep.txt').replace(/^VmRSS:.*$/m, ''))).toBeUndefined();
  });
});

describe('descendants', () => {
  const rank = parseStat(fixture('stat-rank-sh.txt'))!;
  const child = parseStat(fixture('stat-busy-node-t0.txt'))!;
  const other = parseStat(fixture('stat-comm-with-parens.txt'))!;
  const table = new Map<number, ProcStat>([rank, child, other].map((p) => [p.pid, p]));

  it('follows parent pids from the rank to its children, and no further', () => {
    expect(child.ppid).toBe(rank.pid); // recorded: sh ran node as its child
    expect([...descendants([rank.pid], table)].sort()).toEqual([rank.pid, child.pid].sort());
    expect([...descendants([other.pid], table)]).toEqual([other.pid]);
    // The same, from a parent → children map built once for several trees.
    const children = childrenOf(table);
    expect(children.get(rank.pid)).toEqual([child.pid]);
    expect([...descendants([rank.pid], table, children)].sort()).toEqual([rank.pid, child.pid].sort());
  });

  it('ignores roots that are gone, and survives a cycle of recycled pids', () => {
    expect(descendants([999_999], table).size).toBe(0);
    const loop = new Map<number, ProcStat>([[1, { ...rank, pid: 1, ppid: 2 }], [2, { ...rank, pid: 2, ppid: 1 }]]);
    expect(descendants([1], loop)).toEqual(new Set([1, 2]));
  });
});

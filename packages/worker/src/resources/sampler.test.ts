/**
 * The sampler over a directory laid out like /proc, filled with text
 * recorded on a real machine (test-fixtures/proc): CPU from two ticks, the
 * rank's children counted, memory summed, simulated GPU stand-ins, and a
 * recycled pid never read as a delta.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readProcTable } from './proc.js';
import { ResourceSampler, type RankRef } from './sampler.js';

// The real reader, watched: a sample with no rank must not read /proc.
vi.mock('./proc.js', async (original) => {
  const real = await original<typeof import('./proc.js')>();
  return { ...real, readProcTable: vi.fn(real.readProcTable) };
});

const DIR = new URL('../../test-fixtures/proc/', import.meta.url);
const fixture = (name: string): string => readFileSync(new URL(name, DIR), 'utf8').split('\n').slice(1).join('\n');
const silent = { warn: () => undefined, info: () => undefined };

let root: string | undefined;
afterEach(() => {
  if (root) rmSync(root, { recursive: true, force: true });
  root = undefined;
});

/** A fake /proc: pid → [stat, status]. */
function proc(files: Record<number, [string, string]>): string {
  root ??= mkdtempSync(join(tmpdir(), 'muster-proc-'));
  for (const [pid, [stat, status]] of Object.entries(files)) {
    mkdirSync(join(root, pid), { recursive: true });
    writeFileSync(join(root, pid, 'stat'), stat);
    writeFileSync(join(root, pid, 'status'), status);
  }
  return root;
}

// Recorded: rank `sh` 31573 ran `node` 31575 (busy); 31572 is another process.
const rank: RankRef = { group: 'g', replicaId: 'r1', pid: 31573, devices: [] };
const KB = 1024;

describe('ResourceSampler', () => {
  it('reports CPU from the second tick on, for the rank and its children, and memory at once', async () => {
    let now = 0;
    const dir = proc({ 31573: [fixture('stat-rank-sh.txt'), fixture('status-sleep.txt')], 31575: [fixture('stat-busy-node-t0.txt'), fixture('status-busy-node.txt')], 31572: [fixture('stat-comm-with-parens.txt'), fixture('status-sleep.txt')] });
    const s = new ResourceSampler({ gpu: 'none', procRoot: dir, now: () => now, log: silent });
    const first = await s.sample([rank]);
    expect(first).toEqual([{ group: 'g', replicaId: 'r1', usage: { memoryBytes: (1824 + 46424) * KB } }]);
    now = 1000;
    proc({ 31575: [fixture('stat-busy-node-t1.txt'), fixture('status-busy-node.txt')] });
    const [second] = await s.sample([rank]);
    expect(second?.usage.cpu).toBeCloseTo(0.4, 5);
    expect(second?.usage.memoryBytes).toBe((1824 + 46424) * KB);
  });

  it('a recycled pid (same pid, another start time) is a new process: no delta from the old one', async () => {
    let now = 0;
    const dir = proc({ 31573: [fixture('stat-rank-sh.txt'), fixture('status-sleep.txt')], 31575: [fixture('stat-busy-node-t1.txt'), fixture('status-busy-node.txt')] });
    const s = new ResourceSampler({ gpu: 'none', procRoot: dir, now: () => now, log: silent });
    await s.sample([rank]);
    now = 1000;
    const reborn = fixture('stat-busy-node-t1.txt').replace(' 3005331 ', ' 3009999 ');
    proc({ 31575: [reborn, fixture('status-busy-node.txt')] });
    const [r] = await s.sample([rank]);
    expect(r?.usage.cpu).toBe(0); // the rank itself was measured (0 ticks); the new node brings none yet
  });

  it('on a simulated profile, a replica with GPUs gets stand-ins: CPU per GPU (≤ 1) and its memory', async () => {
    let now = 0;
    const dir = proc({ 31573: [fixture('stat-rank-sh.txt'), fixture('status-sleep.txt')], 31575: [fixture('stat-busy-node-t0.txt'), fixture('status-busy-node.txt')] });
    const s = new ResourceSampler({ gpu: 'simulated', procRoot: dir, now: () => now, log: silent });
    await s.sample([{ ...rank, devices: ['0', '1'] }]);
    now = 1000;
    proc({ 31575: [fixture('stat-busy-node-t1.txt'), fixture('status-busy-node.txt')] });
    const [r] = await s.sample([{ ...rank, devices: ['0', '1'] }]);
    expect(r?.usage).toMatchObject({ gpus: 2, gpuMemoryBytes: (1824 + 46424) * KB });
    expect(r?.usage.gpuUtilization).toBeCloseTo(0.2, 5);
  });

  it('a failing nvidia-smi is logged once and costs only the GPU values', async () => {
    const warned: string[] = [];
    const dir = proc({ 31573: [fixture('stat-rank-sh.txt'), fixture('status-sleep.txt')] });
    const s = new ResourceSampler({ gpu: 'nvidia-smi', procRoot: dir, queryGpus: () => Promise.reject(new Error('NVML: driver not loaded')), log: { ...silent, warn: (_o, m) => warned.push(m ?? '') } });
    const [a] = await s.sample([{ ...rank, devices: ['0'] }]);
    await s.sample([{ ...rank, devices: ['0'] }]);
    expect(a?.usage).toEqual({ memoryBytes: 1824 * KB });
    expect(warned).toHaveLength(1);
  });

  it('reads no /proc while no rank runs here', async () => {
    const dir = proc({ 31573: [fixture('stat-rank-sh.txt'), fixture('status-sleep.txt')] });
    const s = new ResourceSampler({ gpu: 'none', procRoot: dir, log: silent });
    vi.mocked(readProcTable).mockClear();
    expect(await s.sample([])).toEqual([]);
    expect(readProcTable).not.toHaveBeenCalled();
    await s.sample([rank]);
    expect(readProcTable).toHaveBeenCalledTimes(1);
  });
});

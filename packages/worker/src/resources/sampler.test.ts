/**
 * The sampler over a directory laid out like /proc, filled with text
 * recorded on a real machine (test-fixtures/proc): CPU from two ticks, the
 * rank's children counted, memory summed, simulated GPU stand-ins, a
 * recycled pid never read as a delta, and real-GPU values from the
 * long-running reader (a stand-in, and once over a fake nvidia-smi); the
 * compute-app query's cadence over a fake nvidia-smi that counts its runs.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@muster/common';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { queryApps, type GpuUse } from './gpu.js';
import { GpuUseReader } from './gpu-reader.js';
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

  it('on real GPUs: utilisation from the reader\'s latest block, memory from the app query, by pid', async () => {
    const dir = proc({ 31573: [fixture('stat-rank-sh.txt'), fixture('status-sleep.txt')] });
    const gpus: GpuUse[] = [{ index: 0, uuid: 'GPU-0', utilization: 0.5 }, { index: 1, uuid: 'GPU-1', utilization: 1 }];
    const reader = { start: vi.fn(), latest: () => gpus, stop: vi.fn(() => Promise.resolve()) };
    const apps = [{ gpuUuid: 'GPU-0', pid: 31573, memoryBytes: 7 }, { gpuUuid: 'GPU-1', pid: 999, memoryBytes: 1000 }];
    const s = new ResourceSampler({ gpu: 'nvidia-smi', gpuCount: 2, procRoot: dir, gpuReader: () => reader, queryApps: () => Promise.resolve(apps), log: silent });
    const [r] = await s.sample([{ ...rank, devices: ['0', '1'] }]);
    expect(r?.usage).toEqual({ memoryBytes: 1824 * KB, gpuUtilization: 0.75, gpus: 2, gpuMemoryBytes: 7 });
    await s.close();
    expect(reader.stop).toHaveBeenCalledTimes(1);
  });

  it('no fresh block from the reader: no GPU values, and no app query to stall on the same driver', async () => {
    const dir = proc({ 31573: [fixture('stat-rank-sh.txt'), fixture('status-sleep.txt')] });
    const queryApps = vi.fn(() => Promise.resolve([]));
    const s = new ResourceSampler({ gpu: 'nvidia-smi', gpuCount: 1, procRoot: dir, gpuReader: () => ({ start: () => undefined, latest: () => undefined, stop: () => Promise.resolve() }), queryApps, log: silent });
    const [r] = await s.sample([{ ...rank, devices: ['0'] }]);
    expect(r?.usage).toEqual({ memoryBytes: 1824 * KB });
    expect(queryApps).not.toHaveBeenCalled();
  });

  it('a failing app query is logged once and costs only the GPU values', async () => {
    const warned: string[] = [];
    const dir = proc({ 31573: [fixture('stat-rank-sh.txt'), fixture('status-sleep.txt')] });
    const reader = () => ({ start: () => undefined, latest: () => [{ index: 0, uuid: 'GPU-0', utilization: 1 }], stop: () => Promise.resolve() });
    const s = new ResourceSampler({ gpu: 'nvidia-smi', gpuCount: 1, procRoot: dir, gpuReader: reader, queryApps: () => Promise.reject(new Error('NVML: driver not loaded')), log: { ...silent, warn: (_o, m) => warned.push(m ?? '') } });
    const [a] = await s.sample([{ ...rank, devices: ['0'] }]);
    await s.sample([{ ...rank, devices: ['0'] }]);
    expect(a?.usage).toEqual({ memoryBytes: 1824 * KB });
    expect(warned).toHaveLength(1);
  });

  it('over a fake nvidia-smi: one reader started by the first GPU sample, reported through, gone after close', async () => {
    const dir = proc({ 31573: [fixture('stat-rank-sh.txt'), fixture('status-sleep.txt')] });
    const smi = mkdtempSync(join(tmpdir(), 'muster-smi-'));
    const bin = join(smi, 'nvidia-smi');
    const starts = (): string[] => (existsSync(join(smi, 'starts')) ? readFileSync(join(smi, 'starts'), 'utf8').trim().split('\n') : []);
    writeFileSync(
      bin,
      `#!/bin/sh
case "$1" in
  --query-gpu=*) echo $$ >> "${smi}/starts"; while :; do echo "0, GPU-0, 100, 200, 40"; sleep 0.03; done;;
  --query-compute-apps=*) printf 'gpu_uuid, pid, process_name, used_gpu_memory [MiB]\\nGPU-0, 31573, python, 3 MiB\\n';;
esac
`,
    );
    chmodSync(bin, 0o755);
    const s = new ResourceSampler({ gpu: 'nvidia-smi', gpuCount: 1, procRoot: dir, gpuReader: () => new GpuUseReader({ gpus: 1, bin, intervalMs: 30, log: silent }), queryApps: () => queryApps(bin), log: silent });
    const withGpu = [{ ...rank, devices: ['0'] }];
    try {
      await s.sample([rank]);
      expect(starts()).toEqual([]); // no rank holds a GPU yet: no reader
      const usage = await waitFor('GPU values in a sample', async () => {
        const [r] = await s.sample(withGpu);
        return r?.usage.gpuUtilization === undefined ? undefined : r.usage;
      }, { timeoutMs: 5_000, intervalMs: 10 });
      expect(usage).toMatchObject({ memoryBytes: 1824 * KB, gpuUtilization: 0.4, gpus: 1, gpuMemoryBytes: 3 * 1024 * 1024 });
      expect(starts()).toHaveLength(1);
    } finally {
      await s.close();
    }
    expect(() => process.kill(Number(starts()[0]), 0)).toThrow(/ESRCH/);
    const [after] = await s.sample(withGpu); // closed: no GPU values, and no reader started again
    expect(after?.usage).toEqual({ cpu: 0, memoryBytes: 1824 * KB });
    expect(starts()).toHaveLength(1);
    rmSync(smi, { recursive: true, force: true });
  });

  it('over a fake nvidia-smi: the app query runs once per interval, not per sample; at once for a new rank; a failing one no faster', async () => {
    // Rank r1 (pid 31573) from the start; rank r2 (pid 31572, not below 31573) later.
    const dir = proc({ 31573: [fixture('stat-rank-sh.txt'), fixture('status-sleep.txt')], 31572: [fixture('stat-comm-with-parens.txt'), fixture('status-sleep.txt')] });
    const smi = mkdtempSync(join(tmpdir(), 'muster-smi-'));
    const bin = join(smi, 'nvidia-smi');
    // Each compute-app query appends a line to `queries`, then fails if `fail` exists, else prints `apps`.
    writeFileSync(
      bin,
      `#!/bin/sh
case "$1" in --query-compute-apps=*) ;; *) exit 2;; esac
echo run >> "${smi}/queries"
[ -f "${smi}/fail" ] && { echo "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver"; exit 9; }
printf 'gpu_uuid, pid, process_name, used_gpu_memory [MiB]\\n'
cat "${smi}/apps"
`,
    );
    chmodSync(bin, 0o755);
    writeFileSync(join(smi, 'apps'), 'GPU-0, 31573, python, 3 MiB\n');
    const queries = (): number => (existsSync(join(smi, 'queries')) ? readFileSync(join(smi, 'queries'), 'utf8').trim().split('\n').length : 0);
    let now = 0;
    const gpus: GpuUse[] = [{ index: 0, uuid: 'GPU-0', utilization: 0.5 }, { index: 1, uuid: 'GPU-1', utilization: 1 }];
    const warned: string[] = [];
    const s = new ResourceSampler({
      gpu: 'nvidia-smi',
      gpuCount: 2,
      procRoot: dir,
      now: () => now,
      gpuReader: () => ({ start: () => undefined, latest: () => gpus, stop: () => Promise.resolve() }),
      queryApps: () => queryApps(bin),
      log: { ...silent, warn: (_o, m) => warned.push(m ?? '') },
    });
    const r1 = { ...rank, devices: ['0'] };
    const r2: RankRef = { group: 'g', replicaId: 'r2', pid: 31572, devices: ['1'] };
    const MIB = 1024 * 1024;
    /** One sample a second of the clock, as the reporter takes them: each replica's GPU memory. */
    const tick = async (ranks: RankRef[]): Promise<Array<number | undefined>> => {
      const out = await s.sample(ranks);
      now += 1_000;
      return out.map((r) => r.usage.gpuMemoryBytes);
    };
    try {
      for (let i = 0; i < 12; i++) expect(await tick([r1])).toEqual([3 * MIB]); // 0 … 11 s: reused between queries
      expect(queries()).toBe(3); // at 0, 5 and 10 s — not 12

      // 12 s: r2 starts. The sample that first sees it asks again, and has its memory.
      writeFileSync(join(smi, 'apps'), 'GPU-0, 31573, python, 3 MiB\nGPU-1, 31572, python, 5 MiB\n');
      expect(await tick([r1, r2])).toEqual([3 * MIB, 5 * MIB]);
      expect(queries()).toBe(4);
      // 13 s: a rank that nvidia-smi does not list yet (not loaded) is absent, never 0; known ranks ask nothing.
      writeFileSync(join(smi, 'apps'), 'GPU-0, 31573, python, 4 MiB\n');
      expect(await tick([r1])).toEqual([3 * MIB]);
      expect(queries()).toBe(4);

      // 14 … 33 s: the driver fails. A new rank at 14 s asks at once, and that query fails; after it the
      // queries run at the cadence only, though a rank the last query was not asked for starts every second.
      writeFileSync(join(smi, 'fail'), '');
      for (let i = 0; i < 20; i++) expect(await tick([r1, { ...r2, pid: 40_000 + i }])).toEqual([undefined, undefined]);
      expect(queries()).toBe(4 + 4); // 14, 19, 24, 29 s
      expect(warned).toEqual([expect.stringMatching(/^nvidia-smi failed/)]); // once for the streak

      // 34 s: the query due fails too; the driver recovers at 35 s, but is not asked before 39 s.
      expect(await tick([r1, r2])).toEqual([undefined, undefined]);
      expect(queries()).toBe(9);
      rmSync(join(smi, 'fail'));
      for (let i = 0; i < 4; i++) expect(await tick([r1, r2])).toEqual([undefined, undefined]);
      expect(queries()).toBe(9);
      expect(await tick([r1, r2])).toEqual([4 * MIB, undefined]); // 39 s; r2 is not listed: absent, not 0
      expect(queries()).toBe(10);
      expect(warned).toHaveLength(1);
    } finally {
      await s.close();
      rmSync(smi, { recursive: true, force: true });
    }
  });

  it('a sampler reading nvidia-smi refuses to start without the GPU count', () => {
    expect(() => new ResourceSampler({ gpu: 'nvidia-smi', log: silent })).toThrow(/GPU count/);
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

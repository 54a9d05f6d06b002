/**
 * nvidia-smi's GPU and compute-app queries, parsed from output recorded on a
 * real 8 × H200 machine (test-fixtures/nvidia-smi), and a replica's share of
 * them: its GPUs' mean utilisation, its processes' GPU memory.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gpuLoopArgs, parseAppUse, parseGpuBlock, parseGpuUse, queryApps, replicaGpuUse, visibleDevices } from './gpu.js';

const DIR = new URL('../../test-fixtures/nvidia-smi/', import.meta.url);
const fixture = (name: string): string => readFileSync(new URL(name, DIR), 'utf8').split('\n').slice(1).join('\n');
const MIB = 1024 * 1024;

describe('parseGpuUse (--query-gpu=index,uuid,memory.used,memory.total,utilization.gpu)', () => {
  it('reads utilisation as a fraction and memory used in bytes, by the header', () => {
    const gpus = parseGpuUse(fixture('query-gpu-util-h200-8gpu.txt'));
    expect(gpus).toHaveLength(8);
    expect(gpus[0]).toEqual({ index: 0, uuid: 'GPU-a44622e3-2296-6285-0a86-84d0f6c67900', utilization: 1, memoryUsedBytes: 130013 * MIB });
    expect(gpus[7]).toMatchObject({ index: 7, utilization: 0 });
    const after = parseGpuUse(fixture('query-gpu-util-h200-8gpu-after.txt'));
    expect(after.filter((g) => g.utilization === 0).map((g) => g.index)).toEqual([2, 4, 5, 6, 7]);
  });

  it('leaves out what nvidia-smi cannot tell, and refuses a malformed row naming its line', () => {
    const text = fixture('query-gpu-util-h200-8gpu.txt');
    const na = text.replace('58071 MiB, 143771 MiB, 0 %', '[N/A], 143771 MiB, [Not Supported]');
    expect(parseGpuUse(na)[7]).toEqual({ index: 7, uuid: 'GPU-28780eb0-24d5-1f13-59b8-ae5c23617a72' });
    expect(() => parseGpuUse(text.replace('100 %', '100 percent'))).toThrow(/query-gpu line 2: "100 percent" is not a percentage/);
    expect(() => parseGpuUse(text.replace('130013 MiB', '130013 GiB'))).toThrow(/is not a MiB amount/);
    expect(() => parseGpuUse(text.replace(', 0 %', ''))).toThrow(/line 9: 4 fields, expected 5/);
  });
});

describe('parseGpuBlock (one block of the long-running query: no header, no units)', () => {
  it('reads a block as the one-shot query with its header, units or not', () => {
    const text = fixture('query-gpu-util-h200-8gpu.txt');
    const rows = text.split('\n').filter((l) => /^\d+,/.test(l));
    expect(parseGpuBlock(rows.map((l) => l.replace(/ (MiB|%)/g, '')))).toEqual(parseGpuUse(text));
    expect(gpuLoopArgs(500)).toEqual(['--query-gpu=index,uuid,memory.used,memory.total,utilization.gpu', '--format=csv,noheader,nounits', '-lms', '500']);
  });

  it('refuses a garbled row, naming its line as the one-shot parse would', () => {
    expect(() => parseGpuBlock(['0, GPU-1, 10, 20, 50', 'NVIDIA-SMI has failed'])).toThrow(/query-gpu line 3: 1 fields, expected 5/);
  });
});

describe('parseAppUse (--query-compute-apps=gpu_uuid,pid,process_name,used_gpu_memory)', () => {
  it('reads each process, including one whose name nvidia-smi could not find', () => {
    const apps = parseAppUse(fixture('compute-apps-h200-8gpu.txt'));
    expect(apps).toHaveLength(8);
    expect(apps[0]).toEqual({ gpuUuid: 'GPU-a44622e3-2296-6285-0a86-84d0f6c67900', pid: 1328667, memoryBytes: 130004 * MIB });
    expect(apps[7]).toEqual({ gpuUuid: 'GPU-28780eb0-24d5-1f13-59b8-ae5c23617a72', pid: 1758887, memoryBytes: 58060 * MIB });
  });

  it('an empty answer (no process on any GPU) is the header alone', () => {
    expect(parseAppUse(fixture('compute-apps-h200-8gpu.txt').split('\n').slice(0, 1).join('\n'))).toEqual([]);
  });
});

describe('a replica\'s share', () => {
  const gpus = parseGpuUse(fixture('query-gpu-util-h200-8gpu-after.txt'));
  const apps = parseAppUse(fixture('compute-apps-h200-8gpu.txt'));

  it('averages its GPUs (by index or UUID) and sums its processes\' memory', () => {
    // A TP-2 replica on GPUs 0 and 2 (2 is idle after the recorded release), its ranks pids 1328667 and 1425258.
    const r = replicaGpuUse(['0', 'GPU-4e9e74b7-4977-f04d-3af3-ccfe5f570e90'], new Set([1328667, 1425258]), gpus, apps);
    expect(r).toEqual({ gpus: 2, utilization: 0.5, memoryBytes: (130004 + 105842) * MIB });
  });

  it('a replica with no process on the GPUs has utilisation but no GPU memory', () => {
    expect(replicaGpuUse(['5'], new Set([42]), gpus, apps)).toEqual({ gpus: 1, utilization: 0 });
  });

  it('CUDA_VISIBLE_DEVICES: indexes, UUIDs, and "none"', () => {
    expect(visibleDevices('0,1, 3')).toEqual(['0', '1', '3']);
    expect(visibleDevices('MIG-5f1f7f2a-0000-0000-0000-000000000000')).toHaveLength(1);
    expect(visibleDevices('')).toEqual([]);
    expect(visibleDevices(undefined)).toEqual([]);
    expect(visibleDevices('-1')).toEqual([]);
  });
});

describe('queryApps (through inventory/smi.ts runSmi)', () => {
  const withSmi = async (script: string, f: (bin: string) => Promise<void>) => {
    const dir = mkdtempSync(join(tmpdir(), 'muster-smi-'));
    const bin = join(dir, 'nvidia-smi');
    writeFileSync(bin, `#!/bin/sh\n${script}\n`);
    chmodSync(bin, 0o755);
    try {
      await f(bin);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('runs the compute-app query and parses it', () =>
    withSmi(`case "$1" in --query-compute-apps=*) printf 'gpu_uuid, pid, process_name, used_gpu_memory [MiB]\\nGPU-1, 42, python, 10 MiB\\n';; *) exit 2;; esac`, async (bin) => {
      expect(await queryApps(bin)).toEqual([{ gpuUuid: 'GPU-1', pid: 42, memoryBytes: 10 * MIB }]);
    }));

  it('rejects with what nvidia-smi said when it fails, and when it is missing', async () => {
    await withSmi('echo "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver"; exit 9', async (bin) => {
      await expect(queryApps(bin)).rejects.toThrow(/exited with 9: NVIDIA-SMI has failed/);
    });
    await expect(queryApps('/nonexistent/nvidia-smi')).rejects.toThrow(/not found/);
  });
});

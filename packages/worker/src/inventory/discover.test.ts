import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { isMusterError } from '@muster/common';
import { discoverInventory, type InventoryLog } from './discover.js';
import { inventoryToJson } from './format.js';

const FIXTURES = new URL('../../test-fixtures/nvidia-smi/', import.meta.url);
const fixturePath = (dir: URL, name: string): string => new URL(name, dir).pathname;
const fixture = (dir: URL, name: string): string => readFileSync(new URL(name, dir), 'utf8').split('\n').slice(1).join('\n');

const tmp = mkdtempSync(join(tmpdir(), 'muster-inventory-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const uuid = (i: number): string => `GPU-0000000${i}-1111-2222-3333-444455556666`;
const QUERY = `index, uuid, name, memory.total [MiB], pci.bus_id, mig.mode.current\n${Array.from(
  { length: 8 },
  (_, i) => `${i}, ${uuid(i)}, NVIDIA H100 80GB HBM3, 81559 MiB, 00000000:${(0x18 + i).toString(16).toUpperCase()}:00.0, Disabled`,
).join('\n')}\n`;
const LIST = `${Array.from({ length: 8 }, (_, i) => `GPU ${i}: NVIDIA H100 80GB HBM3 (UUID: ${uuid(i)})`).join('\n')}\n`;

/** A fake nvidia-smi: a shell script answering the three discovery commands. */
function fakeSmi(name: string, parts: { query?: string; topo?: string; list?: string; body?: string }): string {
  const dir = join(tmp, name);
  const file = (key: string, text: string | undefined): string => {
    if (text === undefined) return 'echo "Unable to determine the device handle" >&2; exit 255';
    writeFileSync(join(tmp, `${name}.${key}`), text);
    return `cat '${join(tmp, `${name}.${key}`)}'`;
  };
  const body =
    parts.body ??
    `case "$1" in\n  --query-gpu=*) ${file('query', parts.query)} ;;\n  topo) ${file('topo', parts.topo)} ;;\n  -L) ${file('list', parts.list)} ;;\nesac\n`;
  writeFileSync(dir, `#!/bin/sh\n${body}`);
  chmodSync(dir, 0o755);
  return dir;
}

function recordingLog(): InventoryLog & { lines: { level: string; msg?: string }[] } {
  const lines: { level: string; msg?: string }[] = [];
  return {
    lines,
    info: (_o, msg) => lines.push({ level: 'info', ...(msg === undefined ? {} : { msg }) }),
    warn: (_o, msg) => lines.push({ level: 'warn', ...(msg === undefined ? {} : { msg }) }),
  };
}

describe('discoverInventory', () => {
  beforeEach(() => {
    vi.stubEnv('MUSTER_NVLINK_DOMAIN', '');
    return () => vi.unstubAllEnvs();
  });

  it('runs nvidia-smi and assembles its three outputs', async () => {
    const smi = fakeSmi('hgx', { query: QUERY, topo: fixture(FIXTURES, 'hgx-h100-8gpu-nv18-8nic.txt'), list: LIST });
    const inv = await discoverInventory({ nvidiaSmi: smi });
    expect(inv.source).toBe('nvidia-smi');
    expect(inv.gpus.map((g) => [g.index, g.uuid, g.numaNode, g.pciBusId])).toEqual(
      Array.from({ length: 8 }, (_, i) => [i, uuid(i), i < 4 ? 0 : 1, `00000000:${(0x18 + i).toString(16).toUpperCase()}:00.0`]),
    );
    expect(inv.topology!.nvlinkIslands).toEqual([{ gpuIndices: [0, 1, 2, 3, 4, 5, 6, 7] }]);
    expect(inv.topology!.nics.map((n) => n.name)).toEqual(Array.from({ length: 8 }, (_, k) => `mlx5_${k}`));
    expect(inv.cpuCores).toBeGreaterThan(0);
    expect(inv.memoryBytes).toBeGreaterThan(0);
  });

  it('is a CPU-only node without nvidia-smi, and says so once per logger', async () => {
    const log = recordingLog();
    const missing = join(tmp, 'no-such-nvidia-smi');
    const a = await discoverInventory({ nvidiaSmi: missing, log });
    const b = await discoverInventory({ nvidiaSmi: missing, log });
    expect([a.source, a.gpus, a.topology]).toEqual(['none', [], { links: [], nvlinkIslands: [], nics: [] }]);
    expect(b.source).toBe('none');
    expect(log.lines).toEqual([{ level: 'info', msg: 'no nvidia-smi: this is a CPU-only node' }]);
  });

  it('is a CPU-only node when nvidia-smi cannot reach the driver, with a warning', async () => {
    const log = recordingLog();
    const smi = fakeSmi('nodriver', { body: 'echo "NVIDIA-SMI has failed because it couldn\'t communicate with the NVIDIA driver."\nexit 9\n' });
    const inv = await discoverInventory({ nvidiaSmi: smi, log });
    expect(inv.gpus).toEqual([]);
    expect(log.lines).toEqual([{ level: 'warn', msg: 'nvidia-smi failed: treating this as a CPU-only node' }]);
  });

  it('fails with DEADLINE_EXCEEDED when nvidia-smi hangs', async () => {
    const smi = fakeSmi('hang', { body: 'exec sleep 5\n' });
    const err = await discoverInventory({ nvidiaSmi: smi, timeoutMs: 200 }).catch((e: unknown) => e);
    expect(isMusterError(err) && err.code).toBe('MUSTER_DEADLINE_EXCEEDED');
    expect((err as Error).message).toContain('did not finish in 200 ms');
  });

  it('assumes SYS links and warns when topo -m fails but --query-gpu works', async () => {
    const log = recordingLog();
    const smi = fakeSmi('notopo', { query: QUERY, list: LIST });
    const inv = await discoverInventory({ nvidiaSmi: smi, log });
    expect(inventoryToJson(inv).links[0]).toEqual(['X', 'SYS', 'SYS', 'SYS', 'SYS', 'SYS', 'SYS', 'SYS']);
    expect(inv.topology!.nvlinkIslands).toHaveLength(8);
    expect(log.lines.map((l) => l.msg)).toEqual([
      'nvidia-smi topo -m failed: GPU links unknown',
      'no topo -m output for 8 GPUs: every pair is assumed SYS (no NVLink)',
    ]);
  });

  it('passes a parse error of real output on, naming the line', async () => {
    const smi = fakeSmi('badtopo', { query: QUERY, list: LIST, topo: fixture(FIXTURES, 'malformed-h100-12nic-merged-columns-tabs.txt') });
    await expect(discoverInventory({ nvidiaSmi: smi })).rejects.toThrow(/^topo -m line 1: column 'NIC8NIC9'/);
  });

  it('reads recorded files, keeping line numbers of their # source: line', async () => {
    const inv = await discoverInventory({
      topoFile: fixturePath(FIXTURES, 'dgx1-v100-8gpu-hybrid-cube-mesh.txt'),
    });
    expect(inv.source).toBe('files');
    expect(inv.gpus).toHaveLength(8);
    expect(inv.topology!.links.slice(0, 8)).toEqual(['X', 'NV1', 'NV1', 'NV2', 'NV2', 'SYS', 'SYS', 'SYS']);
    const mig = await discoverInventory({ listFile: fixturePath(FIXTURES, 'mig-L-a100-sxm4-80gb-7x1g10gb.txt') });
    expect(mig.gpus[0]!.mig).toHaveLength(7);
    const broken = join(tmp, 'broken-topo.txt');
    writeFileSync(broken, `# source: test\n${fixture(FIXTURES, 'hgx-h100-8gpu-nv18-8nic.txt').replace('GPU3    NV18', 'GPU3    NV17')}`);
    await expect(discoverInventory({ topoFile: broken })).rejects.toThrow(/^topo -m line 6: GPU3\/GPU0 is NV17 here but NV18 in row GPU0 \(line 3\)/);
  });

  it('refuses sources that disagree', async () => {
    const err = await discoverInventory({
      topoFile: fixturePath(FIXTURES, 'hgx-h100-8gpu-nv18-8nic.txt'),
      listFile: fixturePath(FIXTURES, 'mig-L-a100-sxm4-80gb-7x1g10gb.txt'),
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('nvidia-smi outputs disagree: topo -m lists 8 GPUs, -L lists 1');
  });

  it('reads a profile directory of recorded output', async () => {
    const dir = join(tmp, 'recorded-node');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir);
    writeFileSync(join(dir, 'topo.txt'), readFileSync(new URL('v100-4gpu-nv3-power9-numa8-tabs.txt', FIXTURES)));
    const inv = await discoverInventory({ profile: dir });
    expect(inv.source).toBe('files');
    expect(inv.topology!.nvlinkIslands).toEqual([{ gpuIndices: [0, 1] }, { gpuIndices: [2, 3] }]);
    expect(inv.gpus.map((g) => g.numaNode)).toEqual([0, 0, 8, 8]);
  });

  it('takes the NVLink domain from the option, else MUSTER_NVLINK_DOMAIN, else the profile', async () => {
    expect((await discoverInventory({ profile: 'hgx-h100-8' })).nvlinkDomain).toBe('');
    vi.stubEnv('MUSTER_NVLINK_DOMAIN', 'clique-7');
    expect((await discoverInventory({ profile: 'hgx-h100-8' })).nvlinkDomain).toBe('clique-7');
    expect((await discoverInventory({ profile: 'gb200-4' })).nvlinkDomain).toBe('clique-7');
    expect((await discoverInventory({ profile: 'gb200-4', nvlinkDomain: 'rack-3' })).nvlinkDomain).toBe('rack-3');
  });

  it('reports an unreadable file as an invalid argument naming it', async () => {
    const err = await discoverInventory({ queryGpuFile: join(tmp, 'missing.csv') }).catch((e: unknown) => e);
    expect(isMusterError(err) && err.code).toBe('MUSTER_INVALID_ARGUMENT');
    expect((err as Error).message).toContain(`cannot read query-gpu file ${join(tmp, 'missing.csv')}`);
  });
});

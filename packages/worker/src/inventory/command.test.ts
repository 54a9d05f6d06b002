import { beforeEach, describe, expect, it, vi } from 'vitest';
import { runInventoryCommand } from './command.js';
import type { InventoryJson } from './format.js';
import { discoverInventory } from './discover.js';
import { indexSet, summarizeInventory } from './format.js';

const FIXTURES = new URL('../../test-fixtures/nvidia-smi/', import.meta.url);
const path = (name: string): string => new URL(name, FIXTURES).pathname;

describe('muster-worker inventory', () => {
  beforeEach(() => {
    vi.stubEnv('MUSTER_NVLINK_DOMAIN', '');
    return () => vi.unstubAllEnvs();
  });

  it('--json prints the documented shape', async () => {
    const j = JSON.parse(await runInventoryCommand({ profile: 'a100-mig-7x1g', json: true })) as InventoryJson;
    expect(Object.keys(j).sort()).toEqual(
      ['cpuCores', 'customResources', 'gpus', 'hostname', 'links', 'memoryBytes', 'nics', 'nvlinkDomain', 'nvlinkIslands', 'source'].sort(),
    );
    expect(j.gpus[0]).toMatchObject({ index: 0, name: 'NVIDIA A100-SXM4-80GB', memoryMiB: 81920, numaNode: 0, pciBusId: '00000000:07:00.0' });
    expect(j.gpus[0]!.uuid).toMatch(/^GPU-/);
    expect(j.gpus[0]!.mig).toHaveLength(7);
    expect(Object.keys(j.gpus[0]!.mig[0]!).sort()).toEqual(['index', 'profile', 'uuid']);
    expect(j).toMatchObject({ links: [['X']], nvlinkIslands: [[0]], nics: [], source: 'simulated:a100-mig-7x1g', nvlinkDomain: null });
  });

  it('--json leaves out what a recorded file does not say', async () => {
    const j = JSON.parse(await runInventoryCommand({ topo: path('pcie-8x-rtx4090-all-sys-2nic-tabs.txt'), json: true })) as InventoryJson;
    expect(j.source).toBe('files');
    expect(j.gpus[6]).toEqual({ index: 6, numaNode: 1, mig: [] });
    expect(j.links[6]).toEqual(['SYS', 'SYS', 'SYS', 'SYS', 'SYS', 'SYS', 'X', 'SYS']);
    expect(j.nics).toEqual([
      { name: 'NIC0', links: ['SYS', 'SYS', 'SYS', 'SYS', 'SYS', 'SYS', 'PHB', 'SYS'], nearestGpus: [6] },
      { name: 'NIC1', links: ['SYS', 'SYS', 'SYS', 'SYS', 'SYS', 'SYS', 'PHB', 'SYS'], nearestGpus: [6] },
    ]);
    expect(j.nvlinkIslands).toHaveLength(8);
  });

  it('prints a readable summary: GPU table, links, islands, MIG, NICs', async () => {
    const text = await runInventoryCommand({ profile: 'hgx-h100-8', nvlinkDomain: 'rack-9' });
    expect(text).toMatch(/^node .* · source simulated:hgx-h100-8 · 192 CPU threads · 2048 GiB memory · NVLink domain rack-9$/m);
    expect(text).toMatch(/^ {2}IDX {2}NAME {19}MEMORY {5}NUMA {2}PCI {15}MIG {2}UUID$/m);
    expect(text).toMatch(/^ {2}4 {4}NVIDIA H100 80GB HBM3 {2}81559 MiB {2}1 {5}00000000:9A:00.0 {2}- {4}GPU-/m);
    expect(text).toContain('  GPU0  X     NV18  NV18');
    expect(text).toContain('NVLink islands: [0-7]');
    expect(text).toContain('MIG: none');
    expect(text).toContain('  mlx5_3: GPU 3 (PIX)');
    const mig = await runInventoryCommand({ list: path('mig-L-a100-sxm4-80gb-7x1g10gb.txt') });
    expect(mig).toContain('  GPU0: 7 × 1g.10gb\n    0  1g.10gb  MIG-feb88891-0321-5fef-9c87-d4af3b54259e');
    expect(await runInventoryCommand({ profile: 'cpu-only' })).toMatch(/\nno GPUs$/);
  });

  it('gives muster status a one-line summary', async () => {
    expect(summarizeInventory(await discoverInventory({ profile: 'gb200-4' }))).toBe('4× NVIDIA GB200 · NVLink islands [0-3] · MIG none · domain gb200-rack-0');
    expect(summarizeInventory(await discoverInventory({ profile: 'a100-mig-7x1g' }))).toBe('NVIDIA A100-SXM4-80GB · NVLink islands [0] · MIG GPU0: 7 × 1g.10gb');
    expect(summarizeInventory(await discoverInventory({ profile: 'pcie-8x-2socket' }))).toBe(
      '8× NVIDIA L40S · NVLink islands [0] [1] [2] [3] [4] [5] [6] [7] · MIG none',
    );
    expect(summarizeInventory(await discoverInventory({ profile: 'cpu-only' }))).toBe('no GPUs');
    expect([indexSet([0, 1]), indexSet([0, 1, 2, 5]), indexSet([])]).toEqual(['0,1', '0-2,5', '']);
  });
});

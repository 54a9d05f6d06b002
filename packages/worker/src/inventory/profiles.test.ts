import { readFileSync } from 'node:fs';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { isMusterError } from '@muster/common';
import { discoverInventory } from './discover.js';
import { inventoryToJson } from './format.js';
import { parseTopo } from './parse-topo.js';
import { gpuLinks, machineProfile, nvlinkIslands } from '@muster/contracts';
import { loadProfile, profileNames } from './profiles.js';

const FIXTURES = new URL('../../test-fixtures/nvidia-smi/', import.meta.url);
const fixture = (name: string): string => readFileSync(new URL(name, FIXTURES), 'utf8').split('\n').slice(1).join('\n');
const all = (n: number, link: string): string[][] => Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 'X' : link)));

async function profile(name: string) {
  return inventoryToJson(await discoverInventory({ profile: name }));
}

describe('simulated profiles', () => {
  beforeEach(() => {
    vi.stubEnv('MUSTER_NVLINK_DOMAIN', '');
    return () => vi.unstubAllEnvs();
  });

  it('offers the documented profiles', () => {
    expect(profileNames).toEqual(['hgx-h100-8', 'dgx-a100-8', 'dgx1-v100-8', 'pcie-8x-2socket', 'pcie-4090-8', 'pcie-switched-8', 'two-tray-16', 'a100-mig-7x1g', 'a100-8-half-mig', 'gb200-4', 'cpu-only']);
  });

  it('hgx-h100-8: NV18 all pairs, one island, a PIX NIC per GPU, NUMA by socket', async () => {
    const j = await profile('hgx-h100-8');
    expect(j.source).toBe('simulated:hgx-h100-8');
    expect(j.gpus.map((g) => [g.name, g.memoryMiB, g.numaNode])).toEqual(
      Array.from({ length: 8 }, (_, i) => ['NVIDIA H100 80GB HBM3', 81559, i < 4 ? 0 : 1]),
    );
    expect(j.links).toEqual(all(8, 'NV18'));
    expect(j.nvlinkIslands).toEqual([[0, 1, 2, 3, 4, 5, 6, 7]]);
    expect(j.nics.map((n) => [n.name, n.nearestGpus, n.links[n.nearestGpus[0]!]])).toEqual(
      Array.from({ length: 8 }, (_, k) => [`mlx5_${k}`, [k], 'PIX']),
    );
    expect(j.nvlinkDomain).toBeNull();
  });

  it('dgx-a100-8: NV12 all pairs, GPU pairs behind one PCIe switch with two NICs, NPS4 NUMA nodes', async () => {
    const j = await profile('dgx-a100-8');
    expect(j.links).toEqual(all(8, 'NV12'));
    expect(j.gpus.map((g) => g.numaNode)).toEqual([3, 3, 1, 1, 7, 7, 5, 5]);
    expect(j.nics).toHaveLength(10);
    expect(j.nics[0]).toMatchObject({ name: 'mlx5_0', links: ['PXB', 'PXB', 'SYS', 'SYS', 'SYS', 'SYS', 'SYS', 'SYS'], nearestGpus: [0, 1] });
  });

  it('dgx1-v100-8: the same NVLink wiring as the recorded DGX-1, one island', async () => {
    const j = await profile('dgx1-v100-8');
    expect(j.links).toEqual(parseTopo(fixture('dgx1-v100-8gpu-hybrid-cube-mesh.txt')).links);
    expect(j.nvlinkIslands).toEqual([[0, 1, 2, 3, 4, 5, 6, 7]]);
    expect(j.nics.map((n) => n.name)).toEqual(['mlx5_0', 'mlx5_1', 'mlx5_2', 'mlx5_3']);
    expect(j.gpus.every((g) => g.name === 'Tesla V100-SXM2-16GB')).toBe(true);
  });

  it('pcie-8x-2socket: no NVLink, every GPU its own island, PIX/NODE/SYS by switch and socket', async () => {
    const j = await profile('pcie-8x-2socket');
    expect(j.nvlinkIslands).toEqual([[0], [1], [2], [3], [4], [5], [6], [7]]);
    expect(j.links[0]).toEqual(['X', 'PIX', 'NODE', 'NODE', 'SYS', 'SYS', 'SYS', 'SYS']);
    expect(j.links[5]).toEqual(['SYS', 'SYS', 'SYS', 'SYS', 'PIX', 'X', 'NODE', 'NODE']);
    expect(j.gpus.map((g) => g.numaNode)).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
  });

  it('a100-mig-7x1g: one GPU with seven 1g.10gb MIG devices, indexed 0-6, distinct UUIDs', async () => {
    const j = await profile('a100-mig-7x1g');
    expect(j.gpus).toHaveLength(1);
    expect(j.links).toEqual([['X']]);
    expect(j.nvlinkIslands).toEqual([[0]]);
    const mig = j.gpus[0]!.mig;
    expect(mig.map((m) => [m.index, m.profile])).toEqual(Array.from({ length: 7 }, (_, k) => [k, '1g.10gb']));
    expect(new Set(mig.map((m) => m.uuid)).size).toBe(7);
    expect(mig.every((m) => /^MIG-[0-9a-f]{8}-/.test(m.uuid))).toBe(true);
  });

  it('gb200-4: NV18 all pairs, Grace NUMA lists read as nodes 0 and 1, a default NVLink domain', async () => {
    const j = await profile('gb200-4');
    expect(j.links).toEqual(all(4, 'NV18'));
    expect(j.gpus.map((g) => g.numaNode)).toEqual([0, 0, 1, 1]);
    expect(j.nvlinkDomain).toBe('gb200-rack-0');
    expect(j.cpuCores).toBe(144);
    const other = inventoryToJson(await discoverInventory({ profile: 'gb200-4', nvlinkDomain: 'nvl72-b' }));
    expect(other.nvlinkDomain).toBe('nvl72-b');
  });

  it('renders every profile to text that parses back to the matrix and islands the head\'s scheduler sees', async () => {
    for (const name of profileNames) {
      const m = machineProfile(name);
      const j = await profile(name);
      expect(j.links, name).toEqual(m.gpu ? gpuLinks(m) : []);
      expect(j.nvlinkIslands, name).toEqual(nvlinkIslands(gpuLinks(m)));
      expect(j.gpus.map((g) => g.memoryMiB), name).toEqual(m.gpuPlaces.map(() => m.gpu!.memoryMiB));
      expect(j.cpuCores, name).toBe(m.cpuCores);
    }
  });

  it('cpu-only: no GPUs, empty topology', async () => {
    const j = await profile('cpu-only');
    expect(j).toMatchObject({ source: 'simulated:cpu-only', gpus: [], links: [], nvlinkIslands: [], nics: [] });
  });

  it('is the same machine on every load (stable UUIDs)', async () => {
    expect((await loadProfile('hgx-h100-8')).texts).toEqual((await loadProfile('hgx-h100-8')).texts);
  });

  it('names the known profiles when given an unknown one', async () => {
    const err = await loadProfile('h100').catch((e: unknown) => e);
    expect(isMusterError(err) && err.code).toBe('MUSTER_INVALID_ARGUMENT');
    expect((err as Error).message).toBe(
      "unknown profile 'h100'; known profiles: hgx-h100-8, dgx-a100-8, dgx1-v100-8, pcie-8x-2socket, pcie-4090-8, pcie-switched-8, two-tray-16, a100-mig-7x1g, a100-8-half-mig, gb200-4, cpu-only (or a directory of recorded nvidia-smi output)",
    );
  });
});

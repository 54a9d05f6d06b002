import { describe, expect, it } from 'vitest';
import { assembleInventory, parseSmiTexts } from './assemble.js';

const META = { hostname: 'n1', cpuCores: 8, memoryBytes: 1024, source: 'files', nvlinkDomain: '' };
const U0 = 'GPU-00000000-1111-2222-3333-444455556666';
const U1 = 'GPU-11111111-1111-2222-3333-444455556666';
const QUERY = `index, uuid, name, memory.total [MiB], pci.bus_id, mig.mode.current\n0, ${U0}, NVIDIA A100-SXM4-40GB, 40960 MiB, 00000000:07:00.0, Enabled\n1, ${U1}, NVIDIA A100-SXM4-40GB, 40960 MiB, 00000000:0F:00.0, Disabled\n`;
const TOPO = '\tGPU0\tGPU1\tCPU Affinity\tNUMA Affinity\nGPU0\t X \tNV12\t0-15\t0\nGPU1\tNV12\t X \t0-15\t0\n';

describe('assembleInventory', () => {
  it('joins query-gpu, topo -m and -L by GPU index', () => {
    const list = `GPU 0: NVIDIA A100-SXM4-40GB (UUID: ${U0})\n  MIG 3g.20gb     Device  0: (UUID: MIG-aaaaaaaa-1111-2222-3333-444455556666)\nGPU 1: NVIDIA A100-SXM4-40GB (UUID: ${U1})\n`;
    const { inventory, warnings } = assembleInventory(parseSmiTexts({ queryGpu: QUERY, topo: TOPO, list }), META);
    expect(warnings).toEqual([]);
    expect(inventory.gpus).toEqual([
      { index: 0, uuid: U0, name: 'NVIDIA A100-SXM4-40GB', memoryMib: 40960, numaNode: 0, pciBusId: '00000000:07:00.0', mig: [{ profile: '3g.20gb', uuid: 'MIG-aaaaaaaa-1111-2222-3333-444455556666', index: 0 }], migEnabled: true },
      { index: 1, uuid: U1, name: 'NVIDIA A100-SXM4-40GB', memoryMib: 40960, numaNode: 0, pciBusId: '00000000:0F:00.0', mig: [], migEnabled: false },
    ]);
    expect(inventory.topology).toEqual({ links: ['X', 'NV12', 'NV12', 'X'], nvlinkIslands: [{ gpuIndices: [0, 1] }], nics: [] });
    expect(inventory).toMatchObject({ hostname: 'n1', cpuCores: 8, memoryBytes: 1024, source: 'files', nvlinkDomain: '', customResources: {} });
  });

  it('warns about a GPU in MIG mode without MIG devices: it cannot run work', () => {
    const list = `GPU 0: NVIDIA A100-SXM4-40GB (UUID: ${U0})\nGPU 1: NVIDIA A100-SXM4-40GB (UUID: ${U1})\n`;
    expect(assembleInventory(parseSmiTexts({ queryGpu: QUERY, topo: TOPO, list }), META).warnings).toEqual([
      'GPU 0 has MIG mode enabled but no MIG devices: it cannot run work until MIG devices are created',
    ]);
    expect(assembleInventory(parseSmiTexts({ queryGpu: QUERY, topo: TOPO }), META).warnings).toEqual([
      'GPU 0 has MIG mode enabled, but without -L output its MIG devices are unknown',
    ]);
  });

  it('refuses a UUID that -L and query-gpu disagree on, naming both lines', () => {
    const list = `GPU 0: NVIDIA A100-SXM4-40GB (UUID: ${U1})\nGPU 1: NVIDIA A100-SXM4-40GB (UUID: ${U0})\n`;
    expect(() => assembleInventory(parseSmiTexts({ queryGpu: QUERY, list }), META)).toThrow(
      `query-gpu line 2: GPU 0 has uuid ${U0}, but -L line 1 says ${U1}`,
    );
  });

  it('refuses an index beyond the GPU count of the other sources', () => {
    const query = `index, name\n0, A\n2, B\n`;
    expect(() => assembleInventory(parseSmiTexts({ queryGpu: query, topo: TOPO }), META)).toThrow('query-gpu line 3: GPU index 2 out of range: 2 GPUs');
  });
});

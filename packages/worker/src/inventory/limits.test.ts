/**
 * The worker refuses an inventory past NODE_LIMITS by name before it
 * registers; every shipped simulated profile stays within them.
 */
import { describe, expect, it } from 'vitest';
import { NODE_LIMITS } from '@muster/contracts';
import type { GpuDevice, NodeInventory } from '@muster/proto';
import { checkInventoryLimits, inventoryLimitProblems } from './limits.js';
import { discoverInventory } from './discover.js';
import { profileNames } from './profiles.js';

const gpu = (i: number, slices = 0): GpuDevice => ({ index: i, uuid: `GPU-${i}`, name: 'g', memoryMib: 1, pciBusId: '', mig: Array.from({ length: slices }, (_, k) => ({ profile: '1g.10gb', uuid: `MIG-${i}-${k}`, index: k })) } as GpuDevice);
const inv = (gpus: GpuDevice[], custom: Record<string, number> = {}): NodeInventory => ({ hostname: 'h', cpuCores: 1, memoryBytes: 1, gpus, topology: undefined, nvlinkDomain: '', source: 'test', customResources: custom });

describe('inventory limits', () => {
  it('takes a node at every bound', () => {
    const full = inv(Array.from({ length: NODE_LIMITS.gpus }, (_, i) => gpu(i, NODE_LIMITS.migSlicesPerGpu)), Object.fromEntries(Array.from({ length: NODE_LIMITS.customResources }, (_, i) => [`r${i}`, 1])));
    expect(inventoryLimitProblems(full)).toEqual([]);
  });

  it('refuses one past each bound, naming the field and the limit', () => {
    const over = inv(Array.from({ length: NODE_LIMITS.gpus + 1 }, (_, i) => gpu(i, i === 0 ? NODE_LIMITS.migSlicesPerGpu + 1 : 0)), Object.fromEntries(Array.from({ length: NODE_LIMITS.customResources + 1 }, (_, i) => [`r${i}`, 1])));
    over.gpus[1]!.uuid = 'G'.repeat(NODE_LIMITS.uuidLength + 1);
    const msg = (() => {
      try {
        checkInventoryLimits(over);
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })();
    expect(msg).toContain(`inventory.gpus: ${NODE_LIMITS.gpus + 1} GPUs; the limit is ${NODE_LIMITS.gpus} (gpus`);
    expect(msg).toContain(`inventory.gpus[0].mig: ${NODE_LIMITS.migSlicesPerGpu + 1} MIG slices; the limit is ${NODE_LIMITS.migSlicesPerGpu} (migSlicesPerGpu)`);
    expect(msg).toContain(`inventory.gpus[1].uuid: ${NODE_LIMITS.uuidLength + 1} characters; the limit is ${NODE_LIMITS.uuidLength} (uuidLength)`);
    expect(msg).toContain(`inventory.customResources: ${NODE_LIMITS.customResources + 1} entries; the limit is ${NODE_LIMITS.customResources} (customResources)`);
  });

  it('every simulated profile is within the bounds', async () => {
    for (const profile of profileNames) {
      expect([profile, inventoryLimitProblems(await discoverInventory({ profile }))]).toEqual([profile, []]);
    }
  });
});

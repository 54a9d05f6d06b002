import { describe, expect, it } from 'vitest';
import { parsePlacementGroupSpec } from './spec.js';

function errorOf(input: unknown): string {
  const r = parsePlacementGroupSpec(input);
  if (r.ok) throw new Error('expected a validation error');
  return r.message;
}

describe('placement group spec', () => {
  it('applies the documented defaults', () => {
    const r = parsePlacementGroupSpec({ name: 'llama', bundles: [{ gpus: 8 }] });
    expect(r).toEqual({
      ok: true,
      spec: {
        name: 'llama',
        strategy: 'PACK',
        bundles: [{ cpuMillis: 0, memoryBytes: 0, gpus: 8, gpuMemoryMiB: 0, custom: {} }],
        topology: [],
        selector: { matchLabels: {} },
        tolerations: [],
        priority: 0,
      },
    });
  });

  it('accepts a full spec', () => {
    const r = parsePlacementGroupSpec({
      name: 'pp',
      strategy: 'STRICT_SPREAD',
      bundles: [{ gpus: 4, cpuMillis: 8000, memoryBytes: 2 ** 34, gpuMemoryMiB: 80_000, custom: { 'rdma/ib': 1 } }, { gpus: 2, migProfile: '1g.10gb' }],
      topology: [{ level: 'gpu-island' }, { level: 'rack', mode: 'preferred' }],
      selector: { matchLabels: { pool: 'serve' } },
      tolerations: [{ key: 'spot', operator: 'Exists', effect: 'NoSchedule' }],
      priority: 10,
    });
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.spec.topology).toEqual([{ level: 'gpu-island', mode: 'required' }, { level: 'rack', mode: 'preferred' }]);
  });

  // Each refusal names the field at fault.
  it.each([
    ['no bundles', { name: 'x', bundles: [] }, 'bundles: a placement group needs at least one bundle'],
    ['bundles missing', { name: 'x' }, 'bundles: Invalid input: expected array'],
    ['negative GPUs', { name: 'x', bundles: [{ gpus: -1 }] }, 'bundles[0].gpus: Too small: expected number to be >=0'],
    ['fractional GPUs', { name: 'x', bundles: [{ gpus: 1.5 }] }, 'bundles[0].gpus: Invalid input: expected int'],
    ['unknown strategy', { name: 'x', strategy: 'BALANCED', bundles: [{ gpus: 1 }] }, 'strategy: Invalid option: expected one of "PACK"|"SPREAD"|"STRICT_PACK"|"STRICT_SPREAD"'],
    ['misspelt key', { name: 'x', bundles: [{ gpu: 1 }] }, 'bundles[0].gpu: unknown key; did you mean "gpus"?'],
    ['unknown topology level', { name: 'x', bundles: [{ gpus: 1 }], topology: [{ level: 'row' }] }, 'topology[0].level: Invalid option'],
    ['level given twice', { name: 'x', bundles: [{ gpus: 1 }], topology: [{ level: 'rack' }, { level: 'rack', mode: 'preferred' }] }, 'topology[1].level: level "rack" given twice'],
    ['MIG profile without slices', { name: 'x', bundles: [{ migProfile: '1g.10gb' }] }, 'bundles[0].gpus: with migProfile, gpus counts MIG slices'],
    ['malformed MIG profile', { name: 'x', bundles: [{ gpus: 1, migProfile: 'big' }] }, 'bundles[0].migProfile: expected a MIG profile'],
    ['node required with STRICT_SPREAD', { name: 'x', strategy: 'STRICT_SPREAD', bundles: [{ gpus: 1 }, { gpus: 1 }], topology: [{ level: 'node' }] }, 'topology[0]: level "node" required puts all bundles on one node'],
    ['negative custom resource', { name: 'x', bundles: [{ custom: { fpga: -1 } }] }, 'bundles[0].custom.fpga: Too small'],
    ['non-integer priority', { name: 'x', bundles: [{ gpus: 1 }], priority: 0.5 }, 'priority: Invalid input: expected int'],
    ['Equal toleration without key', { name: 'x', bundles: [{ gpus: 1 }], tolerations: [{ value: 'true' }] }, 'tolerations[0].key: required with operator Equal'],
    ['missing name', { bundles: [{ gpus: 1 }] }, 'name: Invalid input: expected string'],
  ])('refuses %s', (_why, input, message) => {
    expect(errorOf(input)).toContain(message);
  });

  it('reports every bad field at once, not just the first', () => {
    const msg = errorOf({ name: '', strategy: 'X', bundles: [{ gpus: -1 }] });
    expect(msg).toContain('name:');
    expect(msg).toContain('strategy:');
    expect(msg).toContain('bundles[0].gpus:');
  });

  it('never throws, whatever it is given', () => {
    for (const input of [null, undefined, 42, 'spec', [], { bundles: 'all' }]) expect(parsePlacementGroupSpec(input).ok).toBe(false);
  });
});

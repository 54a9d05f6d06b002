import { describe, expect, it } from 'vitest';
import { customMetricsOf, isExactResourceUsage, MAX_CUSTOM_METRICS, resourceUsageOf, sumResourceUsage } from './resource-usage.js';
import { toLoadReport } from './subjects.js';

describe('resource reports and custom gauges, decoded', () => {
  it('a load report keeps valid gauges only, at most MAX_CUSTOM_METRICS, and is never refused for them', () => {
    const many = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`g${i}`, i]));
    const r = toLoadReport({ v: 1, replicaId: 'r', inFlight: 0, queued: 0, timeMs: 1, custom: { ...many, '1bad': 1, nan: Number.NaN, huge: 1e13, 'a b': 2 } });
    expect(Object.keys(r?.custom ?? {})).toHaveLength(MAX_CUSTOM_METRICS);
    expect(toLoadReport({ v: 1, replicaId: 'r', inFlight: 0, queued: 0, timeMs: 1, custom: 'x' })).toEqual({ v: 1, replicaId: 'r', inFlight: 0, queued: 0, timeMs: 1 });
    expect(customMetricsOf({ 'vllm:ok': -3.5, bad_: Infinity })).toEqual({ 'vllm:ok': -3.5 });
    expect(customMetricsOf({})).toBeUndefined();
  });

  it('an older worker\'s resource report on the load subject is no load report', () => {
    expect(toLoadReport({ v: 1, kind: 'resources', replicaId: 'r', node: 'n1', timeMs: 5, resources: { cpu: 1.5, memoryBytes: 1e9 } })).toBeUndefined();
  });

  it('drops each value a report may not carry, alone', () => {
    expect(resourceUsageOf({ cpu: -1, memoryBytes: 2e15, gpuUtilization: 1.01, gpuMemoryBytes: 8, gpus: 1.5 })).toEqual({ gpuMemoryBytes: 8 });
    expect(resourceUsageOf({ cpu: 0, gpuUtilization: 1, gpus: 2 })).toEqual({ cpu: 0, gpuUtilization: 1, gpus: 2 });
  });

  it('tells a usage whose every value may be carried from one with a bad value (absent values are fine)', () => {
    expect(isExactResourceUsage({ cpu: 0, memoryBytes: 5, gpuUtilization: 1, gpuMemoryBytes: 0, gpus: 2 })).toBe(true);
    expect(isExactResourceUsage({ cpu: undefined, memoryBytes: 5 })).toBe(true);
    expect(isExactResourceUsage({})).toBe(true);
    for (const bad of [{ cpu: -0.1 }, { memoryBytes: Number.NaN }, { gpuUtilization: 1.01 }, { gpuMemoryBytes: Infinity }, { gpus: 1.5 }, { cpu: 1, gpus: -1 }]) {
      expect(isExactResourceUsage(bad)).toBe(false);
    }
  });

  it('sums a replica\'s nodes: CPU and bytes added, GPU utilisation weighed by GPU count', () => {
    expect(sumResourceUsage([{ cpu: 1, memoryBytes: 10, gpuUtilization: 1, gpus: 3 }, { cpu: 0.5, gpuUtilization: 0, gpus: 1, gpuMemoryBytes: 4 }])).toEqual({ cpu: 1.5, memoryBytes: 10, gpuMemoryBytes: 4, gpuUtilization: 0.75, gpus: 4 });
    expect(sumResourceUsage([{}, {}])).toEqual({});
  });
});

/**
 * The head validates every gang and replica group spec it receives, whatever
 * the client: value rules the SDK leaves to it are refused here by path, and
 * the messages read as the SDK's do (common/strict.ts formats both). A
 * replica group's placement is checked at apply, as its placement groups
 * would be, instead of failing later when a replica is made.
 */
import { describe, expect, it } from 'vitest';
import type { ReplicaGroupSpec } from '@muster/proto';
import { modelConflicts, parseRgSpec, revisionOf } from './rg-spec.js';

function wire(over: Partial<ReplicaGroupSpec> = {}): ReplicaGroupSpec {
  return {
    name: 'echo',
    template: { command: 'node', args: [], env: {}, cwd: '', ports: [{ name: 'http', port: 0 }], readiness: undefined, liveness: undefined, warmup: undefined },
    tp: 2,
    pp: 1,
    resources: { gpus: 1, cpuMillis: 0, memoryBytes: 0, gpuMemoryMib: 0, migProfile: '', custom: {} },
    placement: undefined,
    replicas: { min: 0, max: 4, initial: 1 },
    startup: undefined,
    rollout: undefined,
    drainDeadlineMs: 0,
    httpPort: '',
    maxReplacements: undefined,
    autoscaling: undefined,
    models: [],
    requestTimeoutMs: 0,
    engineMetrics: undefined,
    maxInFlightPerReplica: 0,
    overflow: undefined,
    routing: undefined,
    roles: [],
    ...over,
  };
}

const refusal = (w: ReplicaGroupSpec) => {
  try {
    parseRgSpec(w);
  } catch (e) {
    return e as Error & { code: string };
  }
  throw new Error('expected a refusal');
};

describe('replica group specs at the head', () => {
  it('accepts a well-formed spec', () => {
    expect(parseRgSpec(wire()).tp).toBe(2);
  });

  it.each([
    ['a placement strategy', wire({ placement: { strategy: 'PAK', topology: [], matchLabels: {}, tolerations: [], priority: 0 } }), 'invalid replica group spec: placement.strategy: Invalid option'],
    ['a topology level', wire({ placement: { strategy: '', topology: [{ level: 'island', mode: '' }], matchLabels: {}, tolerations: [], priority: 0 } }), 'placement.topology[0].level: Invalid option'],
    ['a MIG profile', wire({ resources: { gpus: 1, cpuMillis: 0, memoryBytes: 0, gpuMemoryMib: 0, migProfile: 'big', custom: {} } }), 'resources.migProfile: expected a MIG profile'],
    ['a probe kind', wire({ template: { ...wire().template!, readiness: { kind: 'grpc', port: 'http', path: '', command: [], periodMs: 0, timeoutMs: 0, failureThreshold: 0 } } }), 'template.readiness.kind: Invalid option'],
    ['a replica count', wire({ replicas: { min: 3, max: 2, initial: 3 } }), 'replicas.max: max 2 is below min 3'],
  ])('refuses %s by path', (_, w, message) => {
    const e = refusal(w);
    expect(e.code).toBe('MUSTER_INVALID_ARGUMENT');
    expect(e.message).toContain(message);
  });

  it('maxReplacements: unset is 3, 0 is never, a stored -1 (before presence tracking) is 0, -2 is refused', () => {
    expect(parseRgSpec(wire()).maxReplacements).toBe(3);
    expect(parseRgSpec(wire({ maxReplacements: 0 })).maxReplacements).toBe(0);
    expect(parseRgSpec(wire({ maxReplacements: -1 })).maxReplacements).toBe(0);
    expect(refusal(wire({ maxReplacements: -2 })).message).toMatch(/maxReplacements/);
  });

  it('models: bounded, printable without whitespace, once each; unique across live groups', () => {
    expect(parseRgSpec(wire({ models: ['meta-llama/Llama-3.1-8B-Instruct', 'llama'] })).models).toEqual(['meta-llama/Llama-3.1-8B-Instruct', 'llama']);
    expect(refusal(wire({ models: ['a b'] })).message).toMatch(/models\[0\]: a model name is printable, without whitespace/);
    expect(refusal(wire({ models: [''] })).message).toMatch(/models\[0\]: a model name is not empty/);
    expect(refusal(wire({ models: ['m', 'm'] })).message).toMatch(/models: a model name is listed twice/);
    expect(refusal(wire({ models: ['x'.repeat(257)] })).message).toMatch(/models\[0\]: .*256/);
    expect(refusal(wire({ models: Array.from({ length: 65 }, (_, i) => `m${i}`) })).message).toMatch(/models: .*64/);
    const spec = parseRgSpec(wire({ models: ['a', 'b'] }));
    const others = [
      { name: 'other', models: ['b', 'c'], deleting: false },
      { name: 'gone', models: ['a'], deleting: true }, // a group being deleted gives its names up
      { name: 'echo', models: ['a'], deleting: false }, // its own earlier spec
    ];
    expect(modelConflicts(spec, others)).toEqual(['"b" (served by other)']);
  });

  it('models and requestTimeoutMs are routing, not what runs: they leave the revision as it was before they existed', () => {
    const before = parseRgSpec(wire());
    const { models: _m, requestTimeoutMs: _t, ...older } = before; // a spec as parsed before the fields existed
    expect(revisionOf(before)).toBe(revisionOf(older as typeof before));
    expect(revisionOf(parseRgSpec(wire({ models: ['a'], requestTimeoutMs: 5_000 })))).toBe(revisionOf(before));
    expect(revisionOf(parseRgSpec(wire({ tp: 1 })))).not.toBe(revisionOf(before));
  });

  it('requestTimeoutMs: 0 (the gateway default) up to an hour', () => {
    expect(parseRgSpec(wire({ requestTimeoutMs: 120_000 })).requestTimeoutMs).toBe(120_000);
    expect(refusal(wire({ requestTimeoutMs: -1 })).message).toMatch(/requestTimeoutMs/);
    expect(refusal(wire({ requestTimeoutMs: 3_600_001 })).message).toMatch(/requestTimeoutMs/);
  });
});

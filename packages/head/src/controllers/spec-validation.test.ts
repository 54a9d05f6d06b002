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
import { rgSpecRefusal, wireRgSpec } from './rg-spec.test-support.js';

/** A NATS group `echo` of TP 2, a GPU per shard. */
const wire = (over: Partial<ReplicaGroupSpec> = {}): ReplicaGroupSpec =>
  wireRgSpec({ name: 'echo', tp: 2, resources: { gpus: 1, cpuMillis: 0, memoryBytes: 0, gpuMemoryMib: 0, migProfile: '', custom: {} }, httpPort: '', ...over });

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
    const e = rgSpecRefusal(w);
    expect(e.code).toBe('MUSTER_INVALID_ARGUMENT');
    expect(e.message).toContain(message);
  });

  it('maxReplacements: unset is 3, 0 is never, a stored -1 (before presence tracking) is 0, -2 is refused', () => {
    expect(parseRgSpec(wire()).maxReplacements).toBe(3);
    expect(parseRgSpec(wire({ maxReplacements: 0 })).maxReplacements).toBe(0);
    expect(parseRgSpec(wire({ maxReplacements: -1 })).maxReplacements).toBe(0);
    expect(rgSpecRefusal(wire({ maxReplacements: -2 })).message).toMatch(/maxReplacements/);
  });

  it('models: bounded, printable without whitespace, once each; unique across live groups', () => {
    expect(parseRgSpec(wire({ models: ['meta-llama/Llama-3.1-8B-Instruct', 'llama'] })).models).toEqual(['meta-llama/Llama-3.1-8B-Instruct', 'llama']);
    expect(rgSpecRefusal(wire({ models: ['a b'] })).message).toMatch(/models\[0\]: a model name is printable, without whitespace/);
    expect(rgSpecRefusal(wire({ models: [''] })).message).toMatch(/models\[0\]: a model name is not empty/);
    expect(rgSpecRefusal(wire({ models: ['m', 'm'] })).message).toMatch(/models: a model name is listed twice/);
    expect(rgSpecRefusal(wire({ models: ['x'.repeat(257)] })).message).toMatch(/models\[0\]: .*256/);
    expect(rgSpecRefusal(wire({ models: Array.from({ length: 65 }, (_, i) => `m${i}`) })).message).toMatch(/models: .*64/);
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
    expect(rgSpecRefusal(wire({ requestTimeoutMs: -1 })).message).toMatch(/requestTimeoutMs/);
    expect(rgSpecRefusal(wire({ requestTimeoutMs: 3_600_001 })).message).toMatch(/requestTimeoutMs/);
  });
});

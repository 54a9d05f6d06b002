/**
 * The head validates every gang and replica group spec it receives, whatever
 * the client: value rules the SDK leaves to it are refused here by path, and
 * the messages read as the SDK's do (common/strict.ts formats both). A
 * replica group's placement is checked at apply, as its placement groups
 * would be, instead of failing later when a replica is made.
 */
import { describe, expect, it } from 'vitest';
import type { ReplicaGroupSpec } from '@muster/proto';
import { parseRgSpec } from './rg-spec.js';

function wire(over: Partial<ReplicaGroupSpec> = {}): ReplicaGroupSpec {
  return {
    name: 'echo',
    template: { command: 'node', args: [], env: {}, cwd: '', ports: [{ name: 'http', port: 0 }], readiness: undefined, liveness: undefined },
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
    engineMetrics: undefined,
    maxInFlightPerReplica: 0,
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
});

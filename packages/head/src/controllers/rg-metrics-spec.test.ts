/**
 * Issue 17, point 4 at the head: a replica group's policy of several metrics
 * (Autoscaling.metrics) is validated at apply, each metric by its own field
 * path, and becomes the policy the autoscaler runs; the single
 * metric/target stays as it was.
 */
import { describe, expect, it } from 'vitest';
import type { Autoscaling, ReplicaGroupSpec } from '@muster/proto';
import { parseRgSpec, policyOf } from './rg-spec.js';

function wire(autoscaling: Partial<Autoscaling>, httpPort = ''): ReplicaGroupSpec {
  return {
    name: 'burn',
    template: { command: 'node', args: [], env: {}, cwd: '', ports: [{ name: 'http', port: 0 }], readiness: undefined, liveness: undefined, warmup: undefined },
    tp: 1, pp: 1, resources: undefined, placement: undefined, replicas: { min: 1, max: 4, initial: 1 }, startup: undefined, rollout: undefined,
    drainDeadlineMs: 0, httpPort, maxReplacements: undefined, engineMetrics: undefined, maxInFlightPerReplica: 0, models: [], requestTimeoutMs: 0, overflow: undefined, routing: undefined, roles: [],
    autoscaling: { metric: '', target: 0, upscaleDelayMs: 0, downscaleDelayMs: 0, maxStep: 0, tolerance: 0, scaleToZeroAfterMs: 0, lookbackMs: 0, floors: [], metrics: [], ...autoscaling },
  };
}

function refusal(w: ReplicaGroupSpec): Error & { details?: { fields?: string[] } } {
  try {
    parseRgSpec(w);
  } catch (e) {
    return e as Error;
  }
  throw new Error('accepted');
}

describe('Autoscaling.metrics at apply', () => {
  it('becomes the policy: the list is kept in order, with no metric/target copy of its first beside it', () => {
    const p = policyOf(parseRgSpec(wire({ metrics: [{ metric: 'cpu', target: 1.5 }, { metric: 'gpu-utilization', target: 0.7 }, { metric: 'custom:batch_fill', target: 3 }] })));
    expect(p).toMatchObject({ min: 1, max: 4 });
    expect(p?.metrics[0]).toEqual({ metric: 'cpu', target: 1.5 });
    expect(p).not.toHaveProperty('metric');
    expect(p).not.toHaveProperty('target');
    expect(p?.metrics.map((m) => m.metric)).toEqual(['cpu', 'gpu-utilization', 'custom:batch_fill']);
  });

  it('the single metric/target is a list of one, as before', () => {
    expect(policyOf(parseRgSpec(wire({ metric: 'ongoing', target: 4 })))?.metrics).toEqual([{ metric: 'ongoing', target: 4 }]);
    expect(policyOf(parseRgSpec(wire({})))?.metrics).toEqual([{ metric: 'queue', target: 5 }]);
  });

  it.each<[string, Partial<Autoscaling>, string]>([
    ['an engine metric on a NATS group', { metrics: [{ metric: 'cpu', target: 1 }, { metric: 'engine-waiting', target: 5 }] }, 'autoscaling.metrics[1].metric: "engine-waiting" reads the engine'],
    ['a metric listed twice', { metrics: [{ metric: 'memory', target: 1e9 }, { metric: 'memory', target: 2e9 }] }, 'metrics[1].metric: "memory" is listed twice'],
    ['a utilisation above 1', { metrics: [{ metric: 'gpu-utilization', target: 70 }] }, 'metrics[0].target: must be ≤ 1 for gpu-utilization'],
    ['both forms at once', { metric: 'cpu', target: 1, metrics: [{ metric: 'memory', target: 1e9 }] }, 'give either metric and target, or metrics, not both'],
    ['an unknown metric', { metrics: [{ metric: 'disk', target: 1 }] }, 'metrics[0].metric: "disk" is not a metric'],
    ['cpu without a target', { metric: 'cpu' }, 'target: cpu has no default target'],
  ])('refuses %s, naming the field', (_name, a, message) => {
    const e = refusal(wire(a));
    expect(e.message).toContain(message);
  });
});

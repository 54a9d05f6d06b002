import type { ReplicaGroupSpec } from '@muster/proto';
import { parseRgSpec } from './rg-spec.js';

/** A replica group spec as it comes off the wire (an HTTP group `llm`, one `node` shard per replica, every other field unset), `over` on top. */
export function wireRgSpec(over: Partial<ReplicaGroupSpec> = {}): ReplicaGroupSpec {
  return {
    name: 'llm',
    template: { command: 'node', args: [], env: {}, cwd: '', ports: [{ name: 'http', port: 0 }], readiness: undefined, liveness: undefined, warmup: undefined },
    tp: 1,
    pp: 1,
    resources: undefined,
    placement: undefined,
    replicas: { min: 0, max: 4, initial: 1 },
    startup: undefined,
    rollout: undefined,
    drainDeadlineMs: 0,
    httpPort: 'http',
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

/** What parseRgSpec throws for `w`; a spec it accepts fails the test. */
export function rgSpecRefusal(w: ReplicaGroupSpec): Error & { code: string } {
  try {
    parseRgSpec(w);
  } catch (e) {
    return e as Error & { code: string };
  }
  throw new Error('expected a refusal');
}

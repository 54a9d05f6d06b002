/**
 * A replica group's overflow at the head: validated at apply (another group's
 * name by the naming rule, never itself; a rule; N bounded; errors name the
 * field), not a new revision (no roll), and carried to routers in the
 * membership — a change of it alone is a new membership version.
 */
import { describe, expect, it } from 'vitest';
import type { ReplicaGroup, ReplicaGroupSpec } from '@muster/proto';
import { MAX_OVERFLOW_QUEUE_PER_REPLICA } from '@muster/contracts';
import { MembershipFeed } from './rg-membership.js';
import { parseRgSpec, revisionOf } from './rg-spec.js';

function wire(over: Partial<ReplicaGroupSpec> = {}): ReplicaGroupSpec {
  return {
    name: 'big', template: { command: 'node', args: [], env: {}, cwd: '', ports: [], readiness: undefined, liveness: undefined, warmup: undefined }, tp: 1, pp: 1,
    resources: undefined, placement: undefined, replicas: { min: 0, max: 2, initial: 1 }, startup: undefined, rollout: undefined, drainDeadlineMs: 0, httpPort: '',
    maxReplacements: undefined, autoscaling: undefined, models: [], requestTimeoutMs: 0, engineMetrics: undefined, maxInFlightPerReplica: 0, overflow: undefined, routing: undefined, roles: [],
    ...over,
  };
}

const refusal = (w: ReplicaGroupSpec): string => {
  try {
    parseRgSpec(w);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected a refusal');
};

describe('overflow in a replica group spec', () => {
  it('accepts another group and a rule (that group need not exist)', () => {
    expect(parseRgSpec(wire({ overflow: { group: 'small', queuePerReplicaAbove: 0, onBackPressure: false } })).overflow).toEqual({ group: 'small', queuePerReplicaAbove: 0, onBackPressure: false });
    expect(parseRgSpec(wire({ overflow: { group: 'small', queuePerReplicaAbove: undefined, onBackPressure: true } })).overflow?.onBackPressure).toBe(true);
    expect(parseRgSpec(wire()).overflow).toBeUndefined();
  });

  it.each([
    ['a name outside the rule', { group: 'Small_1', queuePerReplicaAbove: 4, onBackPressure: false }, 'overflow.group: must name a replica group'],
    ['no name', { group: '', queuePerReplicaAbove: 4, onBackPressure: false }, 'overflow.group: must name a replica group'],
    ['itself', { group: 'big', queuePerReplicaAbove: 4, onBackPressure: false }, 'overflow.group: a group cannot overflow to itself ("big")'],
    ['no rule', { group: 'small', queuePerReplicaAbove: undefined, onBackPressure: false }, 'overflow: name a saturation rule'],
    ['a negative N', { group: 'small', queuePerReplicaAbove: -1, onBackPressure: false }, 'overflow.queuePerReplicaAbove: must be ≥ 0'],
    ['an N beyond the bound', { group: 'small', queuePerReplicaAbove: MAX_OVERFLOW_QUEUE_PER_REPLICA + 1, onBackPressure: false }, 'overflow.queuePerReplicaAbove'],
  ])('refuses %s, naming the field', (_, overflow, message) => {
    const m = refusal(wire({ overflow }));
    expect(m).toContain('invalid replica group spec');
    expect(m).toContain(message);
  });

  it('does not change the revision: replicas do not roll', () => {
    expect(revisionOf(parseRgSpec(wire({ overflow: { group: 'small', queuePerReplicaAbove: 2, onBackPressure: false } })))).toBe(revisionOf(parseRgSpec(wire())));
  });
});

describe('overflow in the membership', () => {
  const rg = (spec: ReplicaGroupSpec): ReplicaGroup => ({
    name: 'big', spec, desired: 1, revision: 'r1', stableRevision: '', membershipVersion: 0, message: '', createdAtMs: 0, deleting: false, stableSpec: undefined, autoscaler: undefined,
    replicas: [{ id: 'a', revision: 'r1', state: 'ready', placementGroupId: '', gangId: '', subject: 's.a', message: '', createdAtMs: 0, replaces: '' }],
  });

  it('is carried to routers, and a change of it alone is a new version', () => {
    const feed = new MembershipFeed('big', 0);
    const first = feed.propose(rg(wire()), 0)!;
    expect(first.overflow).toBeUndefined();
    feed.commit(first);
    expect(feed.propose(rg(wire()), 0)).toBeUndefined();
    const overflow = { group: 'small', queuePerReplicaAbove: 3, onBackPressure: false };
    const next = feed.propose(rg(wire({ overflow })), 0)!;
    expect(next).toMatchObject({ version: 2, overflow });
    feed.commit(next);
    expect(feed.propose(rg(wire({ overflow })), 0)).toBeUndefined();
  });
});

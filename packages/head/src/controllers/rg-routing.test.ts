/**
 * Issue 18, point 1 at the head: a replica group's routing policy is
 * validated at apply (naming the field, with "did you mean"), reaches
 * routers in the membership with its defaults filled, and changing it is a
 * new membership but not a new revision (no replica rolls).
 */
import { describe, expect, it } from 'vitest';
import type { ReplicaGroup, ReplicaGroupSpec, Routing } from '@muster/proto';
import { MembershipFeed } from './rg-membership.js';
import { parseRgSpec, revisionOf } from './rg-spec.js';
import { routingConfig } from '@muster/contracts';

function wire(routing: Routing | undefined): ReplicaGroupSpec {
  return {
    name: 'llm',
    template: { command: 'node', args: [], env: {}, cwd: '', ports: [{ name: 'http', port: 0 }], readiness: undefined, liveness: undefined, warmup: undefined },
    tp: 1, pp: 1, resources: undefined, placement: undefined, replicas: { min: 0, max: 4, initial: 1 }, startup: undefined, rollout: undefined,
    drainDeadlineMs: 0, httpPort: 'http', maxReplacements: undefined, autoscaling: undefined, engineMetrics: undefined, maxInFlightPerReplica: 0,
    models: [], requestTimeoutMs: 0, routing, overflow: undefined, roles: [],
  };
}
const routing = (over: Partial<Routing>): Routing => ({ policy: 'prefix', prefixChars: 0, loadFactor: 0, ...over });

function refusal(r: Routing): string {
  try {
    parseRgSpec(wire(r));
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected a refusal');
}

describe('routing policy', () => {
  it('accepts p2c, prefix and no routing at all, and fills the defaults for routers', () => {
    expect(parseRgSpec(wire(undefined)).routing).toBeUndefined();
    expect(routingConfig(undefined)).toEqual({ policy: 'p2c', prefixChars: 256, loadFactor: 1.25 });
    expect(routingConfig(parseRgSpec(wire(routing({}))).routing)).toEqual({ policy: 'prefix', prefixChars: 256, loadFactor: 1.25 });
    expect(routingConfig(parseRgSpec(wire(routing({ prefixChars: 1000, loadFactor: 2 }))).routing)).toEqual({ policy: 'prefix', prefixChars: 1000, loadFactor: 2 });
    expect(routingConfig(parseRgSpec(wire(routing({ policy: '' }))).routing).policy).toBe('p2c');
  });

  it.each<[string, Partial<Routing>, string]>([
    ['a misspelt policy', { policy: 'prefx' }, 'routing.policy: "prefx" is not a routing policy (p2c | prefix); did you mean "prefix"?'],
    ['a load factor under 1', { loadFactor: 0.5 }, 'routing.loadFactor: must be 0 (the default, 1.25) or a factor in 1 … 100'],
    ['a load factor that is no number', { loadFactor: Number.NaN }, 'routing.loadFactor'],
    ['negative prefix characters', { prefixChars: -1 }, 'routing.prefixChars: must be a whole number of characters in 0 … 65536'],
    ['too many prefix characters', { prefixChars: 100_000 }, 'routing.prefixChars'],
    ['prefix settings under p2c', { policy: 'p2c', prefixChars: 100 }, 'routing.prefixChars: only the "prefix" policy uses it'],
  ])('refuses %s, naming the field', (_name, over, message) => {
    expect(refusal(routing(over))).toContain(message);
  });

  it('reaches routers in the membership; a change of it alone is a new membership, not a new revision', () => {
    const rg = (spec: ReplicaGroupSpec): ReplicaGroup => ({
      name: 'llm', spec, desired: 1, revision: 'r', stableRevision: '', membershipVersion: 0, message: '', createdAtMs: 0, deleting: false, stableSpec: undefined, autoscaler: undefined,
      replicas: [{ id: 'a', revision: 'r', state: 'ready', placementGroupId: '', gangId: '', subject: 's.a', message: '', createdAtMs: 0, replaces: '' }],
    } as ReplicaGroup);
    const feed = new MembershipFeed('llm', 0);
    const first = feed.propose(rg(parseRgSpec(wire(undefined))), 0)!;
    expect(first.routing).toEqual({ policy: 'p2c', prefixChars: 256, loadFactor: 1.25 });
    feed.commit(first);
    expect(feed.propose(rg(parseRgSpec(wire(undefined))), 0)).toBeUndefined();
    const prefix = parseRgSpec(wire(routing({ loadFactor: 1.5 })));
    expect(feed.propose(rg(prefix), 0)).toMatchObject({ version: 2, routing: { policy: 'prefix', prefixChars: 256, loadFactor: 1.5 } });
    expect(revisionOf(prefix)).toBe(revisionOf(parseRgSpec(wire(undefined))));
  });
});

/** `muster rg get` shows a group's overflow rule (the counts are each caller's: see docs/replica-groups.md). */
import { describe as group, expect, it } from 'vitest';
import { ReplicaGroup, type ReplicaGroups, type ReplicaGroupView } from '@muster/sdk';
import { describe } from './rg.js';

const view = (overflow: NonNullable<ReplicaGroupView['spec']>['overflow']): ReplicaGroupView => ({
  name: 'big', desired: 1, revision: 'r1', stableRevision: '', replicas: [], replicaCount: 0, replicasByState: {}, membershipVersion: 3, message: '', deleting: false,
  spec: { overflow } as ReplicaGroupView['spec'],
});

group('rg get: overflow', () => {
  it('names the overflow group and its rules', () => {
    const text = describe(new ReplicaGroup(view({ group: 'small', queuePerReplicaAbove: 4, onBackPressure: true }), {} as ReplicaGroups));
    expect(text).toContain('overflow: to small when more than 4 call(s) would wait per replica or a call would get back-pressure');
  });

  it('says nothing without one', () => {
    expect(describe(new ReplicaGroup(view(undefined), {} as ReplicaGroups))).not.toContain('overflow');
  });
});

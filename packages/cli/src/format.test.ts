import { describe, expect, it } from 'vitest';
import type { ClusterSummary } from '@muster/sdk';
import { summaryLines } from './format.js';

const summary = (over: Partial<ClusterSummary>): ClusterSummary => ({
  nodesAlive: 2,
  nodesDead: 1,
  nodesDraining: 1,
  gpusTotal: 16,
  gpusUsed: 6,
  gpusFree: 10,
  placementGroups: { CREATED: 1, QUARANTINED: 1 },
  gangs: { READY: 2, QUARANTINED: 1 },
  replicaGroups: 3,
  replicaGroupsQuarantined: 0,
  ...over,
});

describe('muster status summary lines', () => {
  it('prints nodes, GPUs, groups and gangs by state, and the replica groups', () => {
    expect(summaryLines(summary({}))).toEqual([
      '3 node(s): 2 alive, 1 dead, 1 draining; 16 GPU(s) on alive nodes: 6 used, 10 free',
      '2 placement group(s): 1 created, 1 quarantined',
      '3 gang(s): 1 quarantined, 2 ready; 3 replica group(s)',
    ]);
  });

  it('says how many replica groups are quarantined, when any are', () => {
    expect(summaryLines(summary({ replicaGroupsQuarantined: 1 }))[2]).toBe('3 gang(s): 1 quarantined, 2 ready; 3 replica group(s), 1 quarantined');
  });
});

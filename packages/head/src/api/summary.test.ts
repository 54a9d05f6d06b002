import { describe, expect, it } from 'vitest';
import { GangState, NodeState, PlacementGroupState, type Gang, type Node, type PlacementGroup } from '@muster/proto';
import { clusterSummary } from './summary.js';

const node = (nodeId: string, state: NodeState, gpus: number, draining = false): Node =>
  ({ nodeId, state, draining, inventory: { gpus: Array.from({ length: gpus }, (_, index) => ({ index })) } }) as unknown as Node;
const pg = (state: PlacementGroupState, placements: Array<[string, number]>): PlacementGroup =>
  ({ state, placements: placements.map(([nodeId, n]) => ({ nodeId, gpuIndices: Array.from({ length: n }, (_, i) => i) })) }) as unknown as PlacementGroup;

describe('cluster summary', () => {
  it('counts nodes by state, GPUs of alive nodes used by bundles, groups and gangs by state', () => {
    const s = clusterSummary({
      nodes: [node('a', NodeState.NODE_STATE_ALIVE, 8), node('b', NodeState.NODE_STATE_ALIVE, 8, true), node('c', NodeState.NODE_STATE_DEAD, 8)],
      pgs: {
        list: () => [
          pg(PlacementGroupState.PLACEMENT_GROUP_STATE_CREATED, [['a', 4], ['b', 2]]),
          pg(PlacementGroupState.PLACEMENT_GROUP_STATE_RESCHEDULING, [['c', 8]]), // on a dead node: not counted as used
          pg(PlacementGroupState.PLACEMENT_GROUP_STATE_PENDING, []),
          pg(PlacementGroupState.PLACEMENT_GROUP_STATE_REMOVED, [['a', 1]]),
        ],
      },
      gangs: { list: () => [{ state: GangState.GANG_STATE_READY }, { state: GangState.GANG_STATE_READY }, { state: GangState.GANG_STATE_FAILED }] as Gang[] },
      replicaGroups: { list: () => [{ name: 'a' }, { name: 'b' }] },
    });
    expect(s).toEqual({
      nodesAlive: 2,
      nodesDead: 1,
      nodesDraining: 1,
      gpusTotal: 16,
      gpusUsed: 6,
      gpusFree: 10,
      placementGroups: { CREATED: 1, RESCHEDULING: 1, PENDING: 1 },
      gangs: { READY: 2, FAILED: 1 },
      replicaGroups: 2,
      replicaGroupsQuarantined: 0,
    });
  });

  it('counts records the head cannot read under QUARANTINED, whatever state they were stored in; their bundles stay used', () => {
    const held = { ...pg(PlacementGroupState.PLACEMENT_GROUP_STATE_CREATED, [['a', 2]]), id: 'pg-q' };
    const s = clusterSummary({
      nodes: [node('a', NodeState.NODE_STATE_ALIVE, 8)],
      pgs: { list: () => [held, { ...pg(PlacementGroupState.PLACEMENT_GROUP_STATE_CREATED, [['a', 1]]), id: 'pg-ok' }], isQuarantined: (id) => id === 'pg-q' },
      gangs: {
        list: () => [{ id: 'g-q', state: GangState.GANG_STATE_READY }, { id: 'g-undecodable', state: GangState.GANG_STATE_UNSPECIFIED }, { id: 'g-ok', state: GangState.GANG_STATE_READY }] as Gang[],
        isQuarantined: (id) => id !== 'g-ok',
      },
      replicaGroups: { list: () => [{ name: 'rg-ok' }, { name: 'rg-q' }, { name: 'rg-ok-2' }], isQuarantined: (name) => name === 'rg-q' },
    });
    expect(s.placementGroups).toEqual({ QUARANTINED: 1, CREATED: 1 });
    expect(s.gangs).toEqual({ QUARANTINED: 2, READY: 1 });
    expect(s.gpusUsed).toBe(3);
    // A quarantined replica group counts in the total and again on its own.
    expect(s.replicaGroups).toBe(3);
    expect(s.replicaGroupsQuarantined).toBe(1);
  });
});

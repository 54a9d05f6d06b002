/**
 * The cluster summary in GetClusterInfo: node counts by state, GPUs total /
 * used / free, placement groups and gangs by state, replica groups (all, and
 * how many are quarantined). `muster status` shows it at any cluster size;
 * the node list itself is paged (ListNodes).
 *
 * Computed from the head's memory in one pass over nodes and one over groups,
 * and small whatever the cluster's size: a handful of counters, no records.
 * A record the head cannot read (controllers/quarantine.ts) is counted under
 * QUARANTINED, whatever state it was stored in; a quarantined placement
 * group's bundles still count as used GPUs (they stay reserved). Replica
 * groups have no state map: a quarantined one counts in `replicaGroups` and
 * again in `replicaGroupsQuarantined`.
 */
import {
  GangState,
  NodeState,
  PlacementGroupState,
  gangStateToJSON,
  placementGroupStateToJSON,
  type ClusterSummary,
  type Gang,
  type Node,
  type PlacementGroup,
} from '@muster/proto';
import { QUARANTINED } from '../controllers/quarantine.js';

export interface SummarySources {
  /** Every node, in any order. */
  nodes: Iterable<Node>;
  pgs: { list(): PlacementGroup[]; isQuarantined?(id: string): boolean };
  gangs: { list(): Gang[]; isQuarantined?(id: string): boolean };
  replicaGroups: { list(): Array<{ name: string }>; isQuarantined?(name: string): boolean };
}

/** "PLACEMENT_GROUP_STATE_RUNNING" → "RUNNING". */
const shortName = (full: string, prefix: string) => (full.startsWith(prefix) ? full.slice(prefix.length) : full);

export function clusterSummary(src: SummarySources): ClusterSummary {
  const s: ClusterSummary = {
    nodesAlive: 0,
    nodesDead: 0,
    nodesDraining: 0,
    gpusTotal: 0,
    gpusUsed: 0,
    gpusFree: 0,
    placementGroups: {},
    gangs: {},
    replicaGroups: 0,
    replicaGroupsQuarantined: 0,
  };
  const alive = new Set<string>();
  for (const n of src.nodes) {
    if (n.state === NodeState.NODE_STATE_ALIVE) {
      s.nodesAlive++;
      if (n.draining) s.nodesDraining++;
      s.gpusTotal += n.inventory?.gpus.length ?? 0;
      alive.add(n.nodeId);
    } else if (n.state === NodeState.NODE_STATE_DEAD) {
      s.nodesDead++;
    }
  }
  for (const pg of src.pgs.list()) {
    if (pg.state === PlacementGroupState.PLACEMENT_GROUP_STATE_REMOVED) continue;
    const name = src.pgs.isQuarantined?.(pg.id) ? QUARANTINED : shortName(placementGroupStateToJSON(pg.state), 'PLACEMENT_GROUP_STATE_');
    s.placementGroups[name] = (s.placementGroups[name] ?? 0) + 1;
    for (const p of pg.placements) if (alive.has(p.nodeId)) s.gpusUsed += p.gpuIndices.length;
  }
  for (const g of src.gangs.list()) {
    const quarantined = src.gangs.isQuarantined?.(g.id) ?? false;
    if (g.state === GangState.GANG_STATE_UNSPECIFIED && !quarantined) continue;
    const name = quarantined ? QUARANTINED : shortName(gangStateToJSON(g.state), 'GANG_STATE_');
    s.gangs[name] = (s.gangs[name] ?? 0) + 1;
  }
  for (const rg of src.replicaGroups.list()) {
    s.replicaGroups++;
    if (src.replicaGroups.isQuarantined?.(rg.name)) s.replicaGroupsQuarantined++;
  }
  s.gpusFree = Math.max(0, s.gpusTotal - s.gpusUsed);
  return s;
}

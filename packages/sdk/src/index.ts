export { connect, Cluster, type ConnectOptions, type EventsOptions } from './cluster.js';
export type { RetryNotice } from './endpoints.js';
export type { NodeView, GpuView, NodeStateName, ClusterEventView, ClusterEventKind, DrainStatusView } from './types.js';
export { ErrorCode, MusterError, isMusterError } from './errors.js';
export {
  PlacementGroup,
  PlacementGroups,
  type PlacementGroupSpec,
  type BundleSpec,
  type Strategy,
  type TopologyLevel,
  type PlacementGroupView,
  type PlacementGroupStateName,
  type BundleAssignment,
  type PendingReasonView,
} from './placement-groups.js';
export { Gang, Gangs, type GangSpec, type ProbeSpec, type GangView, type GangStateName, type RankView, type FailureView } from './gangs.js';
export * as shard from './shard.js';
export { ReplicaGroup, ReplicaGroups, type ReplicaGroupSpec, type ReplicaGroupView, type ReplicaView } from './replica-groups.js';
export * from './dataplane/index.js';
export { Actor, Actors, type ActorOptions } from './actors.js';
export { checkPlacementGroupSpec, checkGangSpec, checkReplicaGroupSpec, checkActorOptions } from './spec-schemas.js';

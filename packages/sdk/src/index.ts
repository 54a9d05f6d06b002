export { connect, Cluster, type EventsOptions, type NodeFilter } from './cluster.js';
export type { ConnectOptions } from './connect-options.js';
export { connectOptionsFromEnv } from './env.js';
export type { PageOptions } from './pages.js';
export type { RetryNotice } from './endpoints.js';
export type { NodeView, GpuView, NodeStateName, ClusterEventView, ClusterEventKind, DrainStatusView } from './types.js';
export { ErrorCode, MusterError, isMusterError } from './errors.js';
export type { PlacementGroupSpec, BundleSpec, Strategy, TopologyLevel, GangSpec, ProbeSpec, WarmupSpec, WarmupRequestSpec, ReplicaGroupSpec, ActorOptions, AutoscalingMetricName } from './specs.js';
export {
  PlacementGroup,
  PlacementGroups,
  type PlacementGroupView,
  type PlacementGroupStateName,
  type PlacementGroupFilter,
  type BundleAssignment,
  type PendingReasonView,
} from './placement-groups.js';
export { Gang, Gangs, type GangView, type GangStateName, type GangFilter, type RankView, type FailureView } from './gangs.js';
export * as shard from './shard.js';
export { ReplicaGroup, ReplicaGroups, type AutoscalerView, type ReplicaFilter, type ReplicaGroupView, type ReplicaLoadView, type ReplicaView } from './replica-groups.js';
export { DataPlaneAccess, renewInMs, type DataPlane } from './data-plane-access.js';
export * from '@muster/dataplane';
export { Actor, Actors } from './actors.js';
export { checkPlacementGroupSpec, checkGangSpec, checkReplicaGroupSpec, checkActorOptions } from './spec-schemas.js';
export type { ClusterInfo, ClusterSummary } from '@muster/proto';

export { connect, Cluster, type ConnectOptions, type EventsOptions } from './cluster.js';
export type { NodeView, GpuView, NodeStateName, ClusterEventView, ClusterEventKind } from './types.js';
export { ErrorCode, MusterError, isMusterError } from './errors.js';

export { spawnManaged, findTaggedProcesses, killTagged, type ManagedProcess, type SpawnOptions } from './procs.js';
export { startEtcd, type EtcdServer } from './etcd.js';
export { freePort, claimPortBlock } from './ports.js';
export { startNats, type NatsServer } from './nats.js';
export {
  LocalCluster,
  createTestCluster,
  type ChildInfo,
  type ClusterOptions,
  type HeadHandle,
  type StopSignal,
  type WorkerSpec,
  type WorkerHandle,
} from './cluster.js';
export { kill, freeze, thaw, thawAll, isFrozen, findShards, clusterShards, killShard, type Target, type ShardProcess } from './chaos.js';
export { checkInvariants, assertInvariants, type InvariantOptions, type InvariantRule, type Violation } from './invariants.js';
export { pidAlive, procEnv, procInfo, scanProcesses, type ProcInfo, type ScannedProcess } from './procfs.js';
export { findBinary } from './binaries.js';
export { tempDir } from './tmp.js';
export { waitFor } from './wait.js';

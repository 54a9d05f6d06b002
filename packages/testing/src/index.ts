/**
 * `@muster/testing`: the public test kit. It builds on `@muster/local` (the
 * local-cluster launcher, re-exported here so tests need one import) and adds
 * the test-only parts: `createTestCluster()`, chaos faults, the invariant
 * checker, /proc readers, and the fixtures of the integration suite.
 */
export {
  spawnManaged,
  findTaggedProcesses,
  killTagged,
  startEtcd,
  startNats,
  freePort,
  findBinary,
  tempDir,
  LocalCluster,
  type ManagedProcess,
  type SpawnOptions,
  type EtcdServer,
  type NatsServer,
  type ChildInfo,
  type ClusterOptions,
  type HeadHandle,
  type StopSignal,
  type WorkerSpec,
  type WorkerHandle,
} from '@muster/local';
export { waitFor } from '@muster/common';
export { createTestCluster, rootRanksFallback } from './test-cluster.js';
export { claimPortBlock } from './port-blocks.js';
export { kill, freeze, thaw, thawAll, isFrozen, findShards, clusterShards, killShard, type Target, type ShardProcess } from './chaos.js';
export { checkInvariants, assertInvariants, type InvariantOptions, type InvariantRule, type Violation } from './invariants.js';
export { pidAlive, procEnv, procInfo, scanProcesses, type ProcInfo, type ScannedProcess } from './procfs.js';

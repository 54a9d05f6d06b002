/**
 * `@muster/local`: a whole Muster cluster of real processes on this machine
 * (nats-server, heads, optionally etcd, workers), and the process plumbing
 * under it. `muster up` runs one; the test kit (`@muster/testing`) builds
 * its test clusters, chaos helpers and fixtures on it. Nothing here is
 * test-only, and nothing here imports the test kit.
 */
export { spawnManaged, findTaggedProcesses, killTagged, type ManagedProcess, type SpawnOptions, type TaggedProcess } from './procs.js';
export { startEtcd, type EtcdServer } from './etcd.js';
export { startNats, type NatsServer } from './nats.js';
export { freePort, metricsListen } from './ports.js';
export { findBinary } from './binaries.js';
export { tempDir } from './tmp.js';
export { restartable, type Restartable, type KillSignal } from './restartable.js';
export { LocalCluster, childRunTag } from './cluster.js';
export type { ChildInfo, ClusterOptions, HeadHandle, StopSignal, WorkerHandle, WorkerSpec } from './types.js';

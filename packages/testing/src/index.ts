export { spawnManaged, findTaggedProcesses, killTagged, type ManagedProcess, type SpawnOptions } from './procs.js';
export { startEtcd, type EtcdServer } from './etcd.js';
export { freePort } from './ports.js';
export { startNats, type NatsServer } from './nats.js';
export { LocalCluster, createTestCluster, type ClusterOptions, type WorkerSpec, type WorkerHandle } from './cluster.js';
export { findBinary } from './binaries.js';
export { tempDir } from './tmp.js';
export { waitFor } from './wait.js';

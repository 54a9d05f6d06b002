export { spawnManaged, findTaggedProcesses, killTagged, type ManagedProcess, type SpawnOptions } from './procs.js';
export { startEtcd, freePort, type EtcdServer } from './etcd.js';
export { findBinary } from './binaries.js';
export { tempDir } from './tmp.js';
export { waitFor } from './wait.js';

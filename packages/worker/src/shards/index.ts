/** Shard supervision: the contract (types) and its local-process implementation. */
export type * from './types.js';
export { LocalSupervisor, type LocalSupervisorOptions } from './supervisor.js';
export { validateSpec, shardKey, describeProbe, READINESS_DEFAULTS, LIVENESS_DEFAULTS } from './validate.js';
export { logPathOf } from './logs.js';

/**
 * @muster/contracts: every contract that crosses a process boundary, defined
 * once — NATS subjects and reports, the shard environment, NVLink islands,
 * host:port addresses, leader following and gRPC channel options. Pure (no
 * I/O, no runtime dependencies), so head, worker, SDK and user programs can
 * all import it. test/unit/contracts-literals.test.ts fails when a subject
 * or a shard variable name is spelled anywhere else.
 */
export * from './subjects.js';
export * from './shard-env.js';
export * from './role-env.js';
export * from './client-env.js';
export * from './topology.js';
export * from './profiles.js';
export * from './address.js';
export * from './leader.js';
export * from './grpc-options.js';
export * from './identity.js';
export * from './spec-limits.js';
export * from './node-limits.js';
export * from './engine-metrics.js';
export * from './resource-usage.js';
export * from './batches.js';
export * from './routing.js';
export * from './warmup.js';
export * from './trace.js';

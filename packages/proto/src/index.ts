// The one wire contract of Muster: messages and gRPC service definitions
// generated from proto/muster/v1 by `pnpm gen` (see scripts/gen.mjs).
export * from './gen/muster/v1/types.js';
export * from './gen/muster/v1/cluster.js';
export * from './gen/muster/v1/agent.js';
export * from './gen/muster/v1/placement.js';
export * from './gen/muster/v1/gang.js';
export * from './gen/muster/v1/replica.js';

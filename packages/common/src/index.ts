/**
 * `@muster/common`: what every Muster package shares (errors and their gRPC
 * mapping, config layering, codec, NATS connection, auth, ids, /proc, the
 * one `waitFor`). No I/O at import time.
 */
export * from './errors.js';
// pino and the Prometheus exporter load only where asked for: processes
// import `@muster/common/log` and `@muster/common/metrics`; the index
// re-exports their types alone (erased at run time), so `@muster/sdk` users
// load neither.
export type { Logger } from './log.js';
export type { Metrics } from './metrics.js';
export * from './net.js';
export * from './latency-buckets.js';
export * from './codec.js';
export * from './config.js';
export * from './nats.js';
export * from './auth.js';
export * from './secret-file.js';
export * from './tls.js';
export * from './version.js';
export * from './ids.js';
export * from './procfs.js';
export * from './wait.js';
export * from './strict.js';
export * from './client-config.js';
export * from './trace-context.js';
export * from './membership-parts.js';
export * from './agent-parts.js';

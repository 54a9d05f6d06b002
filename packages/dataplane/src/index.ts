/**
 * @muster/dataplane: `serve()` for replicas, `Router` for callers, and the
 * wire types both share — the SDK re-exports it, and the worker's HTTP
 * bridge serves with it (so the worker needs no SDK). See docs/dataplane.md.
 */
export { serve, type Server, type ServeHandlers, type ServeOptions } from './serve.js';
export { MAX_BATCH_SIZE, MAX_QUEUE_DELAY_MS, MAX_CONCURRENT_BATCHES, type BatchContext, type BatchHandler, type BatchOptions } from './batch.js';
export { Router, type RouterInit, type MembershipFeed } from './router.js';
export type { OpenOverflow } from './overflow.js';
export { replicaSubject, loadSubject, QUEUE_GROUP } from '@muster/contracts';
export { routeTextOf } from './route-key.js';
export type * from './types.js';

/**
 * @muster/dataplane: `serve()` for replicas, `Router` for callers, and the
 * wire types both share — the SDK re-exports it, and the worker's HTTP
 * bridge serves with it (so the worker needs no SDK). See docs/dataplane.md.
 */
export { serve } from './serve.js';
export type { Server, ServeHandlers, ServeOptions } from './serve-options.js';
export type { BatchContext, BatchHandler, BatchOptions } from './batch-plan.js';
export { Router, type RouterInit, type MembershipFeed } from './router.js';
export type { OpenOverflow } from './overflow.js';
export { replicaSubject, loadSubject, QUEUE_GROUP } from '@muster/contracts';
export { routeTextOf } from './route-key.js';
export { encodeFrame, frameItems, FRAME_VERSION, MAX_FRAME_ITEMS, type FrameItem } from './frames.js';
export type * from './types.js';

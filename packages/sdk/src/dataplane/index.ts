/** The data plane: `serve()` for replicas, `Router` for callers. See docs/dataplane.md. */
export { serve, type Server, type ServeHandlers, type ServeOptions } from './serve.js';
export { Router, type RouterInit, type MembershipFeed } from './router.js';
export { replicaSubject, loadSubject, QUEUE_GROUP } from './wire.js';
export type * from './types.js';

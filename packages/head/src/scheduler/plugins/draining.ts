/**
 * Draining (cordoned) nodes: what runs there keeps running until the
 * controllers move it, but nothing new lands there — not a new group, not a
 * group placed again after a node loss, not a replica's replacement. Second
 * in the chain, right after liveness: as cheap, and as decisive.
 *
 * The empty twin (pipeline.ts, "would it fit an empty cluster?") sees no node
 * draining: a drain is undone by an uncordon, so a group that only a draining
 * node could hold is PENDING, counted under `node-draining`, never INFEASIBLE.
 */
import { OK, ReasonCode, reject, type FilterResult } from '../reasons.js';
import type { NodeHeadroom } from '../state.js';
import type { SchedulerPlugin } from './types.js';

const DRAINING = reject(ReasonCode.NODE_DRAINING);

export const drainingPlugin = {
  name: 'draining',
  filterNode(node: NodeHeadroom): FilterResult {
    return node.draining ? DRAINING : OK;
  },
} satisfies SchedulerPlugin;

/**
 * Node health: a dead node takes nothing, and neither does a node whose
 * inventory the scheduler cannot represent (more than 32 GPUs, GPU indices
 * with gaps). First in the chain because it is the cheapest "no".
 */
import { OK, ReasonCode, reject, type FilterResult } from '../reasons.js';
import type { NodeHeadroom } from '../state.js';
import type { SchedulerPlugin } from './types.js';

const DEAD = reject(ReasonCode.NODE_DEAD);

export const alivePlugin = {
  name: 'alive',
  filterNode(node: NodeHeadroom): FilterResult {
    if (!node.alive) return DEAD;
    if (node.unsupported !== '') return reject(ReasonCode.NODE_UNSUPPORTED, node.unsupported);
    return OK;
  },
} satisfies SchedulerPlugin;

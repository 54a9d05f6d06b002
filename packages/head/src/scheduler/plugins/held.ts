/**
 * Nodes held for a starving group (see queue.ts). The queue passes the hold
 * only to groups ordered behind the starving one, so those may backfill
 * everywhere else but cannot take what the starving gang is waiting for.
 */
import { OK, ReasonCode, reject, type FilterResult } from '../reasons.js';
import type { NodeHeadroom } from '../state.js';
import type { GangContext, SchedulerPlugin } from './types.js';

export const heldPlugin = {
  name: 'held',
  filterNode(node: NodeHeadroom, ctx: GangContext): FilterResult {
    const holder = ctx.held?.get(node.node.id);
    return holder === undefined ? OK : reject(ReasonCode.NODE_HELD, holder);
  },
} satisfies SchedulerPlugin;

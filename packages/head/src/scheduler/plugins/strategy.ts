/**
 * The group strategy, bundle by bundle:
 * - STRICT_SPREAD: a node takes at most one bundle of the group (filter).
 * - PACK: prefer nodes that already hold a bundle of this gang (score), so
 *   pipeline stages share a node when they can.
 * - SPREAD: prefer nodes that hold none (score).
 * - STRICT_PACK is a required `node` level: the pipeline confines the whole
 *   attempt to one node (see domains.ts), so nothing to do here.
 */
import { OK, ReasonCode, reject, type FilterResult } from '../reasons.js';
import type { NodeState } from '../state.js';
import type { GangContext, SchedulerPlugin } from './types.js';

export const strategyPlugin = {
  name: 'strategy',
  filterBundle(node: NodeState, _bundle, ctx: GangContext): FilterResult {
    if (ctx.strategy === 'STRICT_SPREAD' && (ctx.bundlesOnNode.get(node.idx) ?? 0) > 0) return reject(ReasonCode.SPREAD_NODE_USED);
    return OK;
  },
  score(node: NodeState, _bundle, ctx: GangContext): number {
    const here = (ctx.bundlesOnNode.get(node.idx) ?? 0) > 0;
    if (ctx.strategy === 'PACK') return here ? 100 : 0;
    if (ctx.strategy === 'SPREAD') return here ? 0 : 100;
    return 0;
  },
} satisfies SchedulerPlugin;

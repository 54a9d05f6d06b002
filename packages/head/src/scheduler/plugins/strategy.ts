/**
 * The group strategy, bundle by bundle:
 * - STRICT_SPREAD: a node takes at most one bundle of the group (filter).
 * - PACK: prefer nodes that already hold a bundle of this gang, then nodes
 *   that could take all the gang still needs (score), so a gang that fits on
 *   one node lands on one node, and pipeline stages share nodes when they can.
 * - SPREAD: prefer nodes that hold none (score).
 * - STRICT_PACK is a required `node` level: the pipeline confines the whole
 *   attempt to one node (see domains.ts), so nothing to do here.
 */
import { OK, ReasonCode, reject, type FilterResult } from '../reasons.js';
import type { NodeHeadroom } from '../state.js';
import type { GangContext, GangDemand, SchedulerPlugin } from './types.js';

const NODE_USED = reject(ReasonCode.SPREAD_NODE_USED);

function takesAll(node: NodeHeadroom, need: GangDemand): boolean {
  if (node.freeGpuCount() < need.gpus || node.freeCpu < need.cpuMillis || node.freeMem < need.memoryBytes) return false;
  if (need.migSlices > 0) {
    let free = 0;
    for (const n of node.migFree.values()) free += n;
    if (free < need.migSlices) return false;
  }
  for (const [name, want] of need.custom) if ((node.freeCustom.get(name) ?? 0) < want) return false;
  return true;
}

export const strategyPlugin = {
  name: 'strategy',
  filterBundle(node: NodeHeadroom, _bundle, ctx: GangContext): FilterResult {
    if (ctx.strategy === 'STRICT_SPREAD' && (ctx.bundlesOnNode.get(node.idx) ?? 0) > 0) return NODE_USED;
    return OK;
  },
  score(node: NodeHeadroom, _bundle, ctx: GangContext): number {
    const here = (ctx.bundlesOnNode.get(node.idx) ?? 0) > 0;
    if (ctx.strategy === 'PACK') return here ? 100 : takesAll(node, ctx.remaining) ? 50 : 0;
    if (ctx.strategy === 'SPREAD') return here ? 0 : 100;
    return 0;
  },
} satisfies SchedulerPlugin;

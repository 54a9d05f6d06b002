/**
 * Label selector (`matchLabels`): every listed label must be on the node with
 * that exact value. The detail names the first label that did not match, so
 * "3 label mismatch gpu=h100" says which one to fix.
 */
import { OK, ReasonCode, reject, type FilterResult } from '../reasons.js';
import type { NodeHeadroom } from '../state.js';
import type { GangContext, SchedulerPlugin } from './types.js';

export const selectorPlugin = {
  name: 'selector',
  filterNode(node: NodeHeadroom, ctx: GangContext): FilterResult {
    const labels = node.node.labels;
    for (const key in ctx.spec.selector.matchLabels) {
      const want = ctx.spec.selector.matchLabels[key];
      if (labels[key] !== want) return reject(ReasonCode.SELECTOR, `${key}=${want}`);
    }
    return OK;
  },
} satisfies SchedulerPlugin;

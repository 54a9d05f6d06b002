/**
 * Taints and tolerations, as in Kubernetes. A `NoSchedule` taint (spot nodes,
 * nodes being drained) keeps a group off unless one of its tolerations
 * matches; an untolerated `PreferNoSchedule` taint only costs score, so such
 * nodes are used when nothing else fits.
 */
import { OK, ReasonCode, reject, type FilterResult } from '../reasons.js';
import type { NodeHeadroom } from '../state.js';
import type { Taint, Toleration } from '../types.js';
import type { GangContext, SchedulerPlugin } from './types.js';

export function tolerates(tolerations: readonly Toleration[], taint: Taint): boolean {
  for (const t of tolerations) {
    if (t.effect !== undefined && t.effect !== taint.effect) continue;
    if (t.operator === 'Exists' && (t.key === '' || t.key === taint.key)) return true;
    if (t.operator === 'Equal' && t.key === taint.key && t.value === taint.value) return true;
  }
  return false;
}

export const taintsPlugin = {
  name: 'taints',
  filterNode(node: NodeHeadroom, ctx: GangContext): FilterResult {
    for (const taint of node.node.taints) {
      if (taint.effect === 'NoSchedule' && !tolerates(ctx.spec.tolerations, taint)) return reject(ReasonCode.TAINT, taint.key);
    }
    return OK;
  },
  score(node: NodeHeadroom, _bundle, ctx: GangContext): number {
    for (const taint of node.node.taints) {
      if (taint.effect === 'PreferNoSchedule' && !tolerates(ctx.spec.tolerations, taint)) return 0;
    }
    return 100;
  },
} satisfies SchedulerPlugin;

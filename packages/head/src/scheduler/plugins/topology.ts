/**
 * Co-location levels (`node`, `nvlink-domain`, `rack`, `zone`).
 *
 * Required levels are enforced by confinement: the pipeline tries the gang
 * one domain at a time (domains.ts), so this plugin's filter only refuses
 * nodes that lack the label a required level is read from. Preferred levels
 * are tried the same way first; when no single domain takes the gang, the
 * last attempt is unconfined and this score keeps bundles near the ones
 * already placed.
 */
import { OK, ReasonCode, reject, type FilterResult } from '../reasons.js';
import type { NodeHeadroom } from '../state.js';
import type { DomainLevel, GangContext, SchedulerPlugin } from './types.js';

/** Which domain of `level` the node is in; undefined when its label is missing. */
export function domainOf(node: NodeHeadroom, level: DomainLevel): string | undefined {
  switch (level) {
    case 'node': return node.node.id;
    case 'nvlink-domain': return node.nvlinkDomain;
    case 'rack': return node.rack;
    case 'zone': return node.zone;
  }
}

export const topologyPlugin = {
  name: 'topology',
  filterNode(node: NodeHeadroom, ctx: GangContext): FilterResult {
    for (const level of ctx.requiredLevels) if (domainOf(node, level) === undefined) return reject(ReasonCode.TOPOLOGY_LABEL, level);
    return OK;
  },
  score(node: NodeHeadroom, _b, ctx: GangContext): number {
    if (ctx.preferredLevels.length === 0 || ctx.bundlesOnNode.size === 0) return 0;
    let hits = 0;
    for (const level of ctx.preferredLevels) {
      const d = domainOf(node, level);
      if (d !== undefined && ctx.placedDomains.get(level)?.has(d) === true) hits++;
    }
    return Math.round((100 * hits) / ctx.preferredLevels.length);
  },
} satisfies SchedulerPlugin;

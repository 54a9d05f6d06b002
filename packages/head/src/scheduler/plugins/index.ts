/**
 * The plugin chain, in the order the pipeline runs it. Order matters twice:
 * cheap, decisive filters go first (a dead node needs no resource check), and
 * a node is counted under its first failing filter. Score tiers are listed in
 * pipeline.ts.
 */
import { alivePlugin } from './alive.js';
import { drainingPlugin } from './draining.js';
import { gpuIslandPlugin } from './gpu-island.js';
import { heldPlugin } from './held.js';
import { resourcesPlugin } from './resources.js';
import { selectorPlugin } from './selector.js';
import { strategyPlugin } from './strategy.js';
import { taintsPlugin } from './taints.js';
import { topologyPlugin } from './topology.js';

export { alivePlugin, drainingPlugin, gpuIslandPlugin, heldPlugin, resourcesPlugin, selectorPlugin, strategyPlugin, taintsPlugin, topologyPlugin };
export { domainOf } from './topology.js';
export { tolerates } from './taints.js';
export * from './types.js';

/** Group-scope filters: once per node per group. */
export const nodeFilters = [alivePlugin, drainingPlugin, heldPlugin, taintsPlugin, selectorPlugin, topologyPlugin] as const;

/** Bundle-scope filters: per node per bundle, after the gang's earlier bundles reserved. */
export const bundleFilters = [strategyPlugin, resourcesPlugin, gpuIslandPlugin] as const;

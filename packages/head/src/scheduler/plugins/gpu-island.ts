/**
 * NVLink islands. Tensor-parallel ranks exchange activations every layer, so
 * a TP bundle split across PCIe runs at a fraction of its speed: when the
 * `gpu-island` level is required, a node must have the whole bundle's GPUs
 * free inside one island; when it is not, nodes that can do so still score
 * above all that cannot (the top scoring tier), so "inside one island when
 * one exists" holds by default.
 */
import { OK, ReasonCode, reject, type FilterResult } from '../reasons.js';
import type { NodeHeadroom } from '../state.js';
import type { BundleContext, GangContext, SchedulerPlugin } from './types.js';

const NO_ISLAND = reject(ReasonCode.GPU_ISLAND);

export const gpuIslandPlugin = {
  name: 'gpu-island',
  filterBundle(node: NodeHeadroom, b: BundleContext, ctx: GangContext): FilterResult {
    if (!ctx.islandRequired || b.gpus < 2) return OK;
    return b.fit(node).bestIslandFree >= 0 ? OK : NO_ISLAND;
  },
  score(node: NodeHeadroom, b: BundleContext): number {
    if (b.gpus < 2) return 100;
    return b.fit(node).bestIslandFree >= 0 ? 100 : 0;
  },
} satisfies SchedulerPlugin;

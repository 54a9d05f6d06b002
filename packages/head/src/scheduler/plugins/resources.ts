/**
 * Resources: whole GPUs (with a minimum memory each), MIG slices of one
 * profile, CPU, memory and custom resources must all be free on the node.
 *
 * GPUs are checked first: on a GPU cluster they are what runs out, and the
 * first failing check is the one a node is counted under.
 *
 * The score is the last tie-breaker, best fit: among nodes equal on every
 * other count, take the one left fullest — first the fewest free GPUs left in
 * the island the bundle lands in, then on the node — so whole islands and
 * whole nodes stay free for the large gangs that need them. Bundles without
 * GPUs prefer nodes with no free GPUs, so they don't strand them.
 */
import { OK, ReasonCode, reject, type FilterResult } from '../reasons.js';
import type { NodeHeadroom } from '../state.js';
import type { BundleContext, SchedulerPlugin } from './types.js';

const NO_GPU = reject(ReasonCode.GPU, 'gpu');
const NO_CPU = reject(ReasonCode.CPU, 'cpu');
const NO_MEMORY = reject(ReasonCode.MEMORY, 'memory');

export const resourcesPlugin = {
  name: 'resources',
  filterBundle(node: NodeHeadroom, b: BundleContext): FilterResult {
    if (b.gpus > 0) {
      if (node.freeGpuCount() < b.gpus) return NO_GPU;
      if (b.fit(node).count < b.gpus) return reject(ReasonCode.GPU_MEMORY, `${b.bundle.gpuMemoryMiB}MiB`);
    }
    if (b.migSlices > 0 && (node.migFree.get(b.bundle.migProfile!) ?? 0) < b.migSlices) return reject(ReasonCode.MIG, b.bundle.migProfile!);
    if (node.freeCpu < b.bundle.cpuMillis) return NO_CPU;
    if (node.freeMem < b.bundle.memoryBytes) return NO_MEMORY;
    for (const [name, want] of b.custom) {
      if ((node.freeCustom.get(name) ?? 0) < want) return reject(ReasonCode.CUSTOM, name);
    }
    return OK;
  },
  score(node: NodeHeadroom, b: BundleContext): number {
    if (b.gpus > 0) {
      const fit = b.fit(node);
      const islandLeft = fit.bestIslandFree >= 0 ? fit.bestIslandFree - b.gpus : 32;
      const nodeLeft = fit.count - b.gpus;
      return 100 - ((islandLeft * 33 + nodeLeft) * 100) / 1200;
    }
    if (b.migSlices > 0) return 100 - Math.min(99, (node.migFree.get(b.bundle.migProfile!) ?? 0) - b.migSlices);
    const cap = node.node.capacity.cpuMillis;
    const cpuLeft = cap > 0 ? (node.freeCpu - b.bundle.cpuMillis) / cap : 0;
    return 100 - Math.min(90, node.freeGpuCount() * 3) - cpuLeft * 9;
  },
} satisfies SchedulerPlugin;

/**
 * The worker's GPU inventory: discovery (nvidia-smi, recorded files or a
 * simulated profile), the nvidia-smi parsers, the topology model and the
 * helpers the scheduler ranks GPU pairs with. See docs/inventory.md.
 */
export { checkInventoryLimits, inventoryLimitProblems } from './limits.js';
export { discoverInventory, DEFAULT_SMI_TIMEOUT_MS, type DiscoverOptions, type InventoryLog } from './discover.js';
export { runInventoryCommand, type InventoryCommandOptions } from './command.js';
export { inventoryToJson, formatInventory, summarizeInventory, nicsByGpu, indexSet, type InventoryJson } from './format.js';
export { profileNames, profileDescriptions, loadProfile, type Profile } from './profiles.js';
export {
  linkKind,
  parseLink,
  linkRank,
  compareLinks,
  isNvlink,
  linkMatrix,
  linkBetween,
  nvlinkIslands,
  nearestNics,
  nearestGpus,
  type LinkKind,
  type LinkInfo,
} from './topology.js';
export { parseTopo, type TopoResult, type TopoNic } from './parse-topo.js';
export { parseQueryGpu, QUERY_GPU_FIELDS, type QueryGpuRow } from './parse-query.js';
export { parseGpuList, type ListGpu, type ListMig } from './parse-list.js';
export { assembleInventory, parseSmiTexts, type SmiTexts, type ParsedSmi, type InventoryMeta, type Assembled } from './assemble.js';

/**
 * `muster-worker inventory`: discover and print, connecting to nothing.
 * main.ts owns the flags; this returns what to print so it can be tested
 * without a process.
 */
import { discoverInventory } from './discover.js';
import { formatInventory, inventoryToJson } from './format.js';

export interface InventoryCommandOptions {
  topo?: string;
  queryGpu?: string;
  list?: string;
  profile?: string;
  nvlinkDomain?: string;
  json?: boolean;
}

export async function runInventoryCommand(opts: InventoryCommandOptions): Promise<string> {
  const inventory = await discoverInventory({
    ...(opts.profile === undefined ? {} : { profile: opts.profile }),
    ...(opts.topo === undefined ? {} : { topoFile: opts.topo }),
    ...(opts.queryGpu === undefined ? {} : { queryGpuFile: opts.queryGpu }),
    ...(opts.list === undefined ? {} : { listFile: opts.list }),
    ...(opts.nvlinkDomain === undefined ? {} : { nvlinkDomain: opts.nvlinkDomain }),
  });
  return opts.json ? JSON.stringify(inventoryToJson(inventory), null, 2) : formatInventory(inventory);
}

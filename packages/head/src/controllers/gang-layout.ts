/**
 * One world of ranks on its bundles — the layout step a gang without roles
 * (gang-spec.ts `planLayout`) and each instance of a gang with roles
 * (gang-roles.ts `planRoleLayout`) share. Pure but for the ports it takes
 * from `LayoutPorts`.
 *
 * A world is `pp` stages of `tp` ranks; the caller says which placed bundle
 * is which stage (node by node for a plain gang, bundle index order for a
 * role instance). Within the world:
 *  - stage p's GPUs (its MIG UUIDs, if any) are split evenly over its TP
 *    ranks; RANK = firstRank + PP_RANK × TP + TP_RANK;
 *  - LOCAL_RANK counts the world's ranks on a node in rank order, and
 *    LOCAL_WORLD_SIZE is how many of them the node has;
 *  - each rank takes its template's ports in template order (a fixed port is
 *    claimed, port 0 allocated), then the rendezvous port is allocated on the
 *    first rank's host, whose address is MASTER_ADDR.
 */
import type { BundlePlacement } from '@muster/proto';
import type { LayoutPorts, NodeLookup } from './port-ledger.js';

/** Where one rank runs and what it holds, as a layout gives it. */
export interface RankSlot {
  rank: number;
  nodeId: string;
  tpRank: number;
  ppRank: number;
  localRank: number;
  localWorldSize: number;
  cudaVisibleDevices: string;
  ports: Record<string, number>;
}

/** A template's named ports: 0 = allocate one. */
export type TemplatePorts = readonly { name: string; port: number }[];

export interface WorldShape {
  pp: number;
  tp: number;
  /** The placed bundle of PP stage `ppRank`, asked for stage by stage as the layout reaches it. */
  stage: (ppRank: number) => BundlePlacement;
  ports: TemplatePorts;
  /** The gang rank of the world's rank 0. */
  firstRank: number;
}

export interface WorldLayout {
  ranks: RankSlot[];
  masterAddr: string;
  masterPort: number;
}

/**
 * Lays out one world and allocates its ports. A fixed port already taken on
 * its host throws `refuse(message)`: the caller names the field its spec
 * spells.
 */
export function layOutWorld(world: WorldShape, nodes: NodeLookup, ports: LayoutPorts, refuse: (message: string) => Error): WorldLayout {
  const rankPorts = (nodeId: string) => Object.fromEntries(world.ports.map((p) => {
    if (!p.port) return [p.name, ports.allocate(nodeId)];
    if (!ports.claim(nodeId, p.port)) throw refuse(`template.ports: port ${p.port} ("${p.name}") clashes on node ${nodeId} (another rank or gang there uses it); use port 0 to have one allocated`);
    return [p.name, p.port];
  }));
  const ranks: RankSlot[] = [];
  const perNode = new Map<string, number>();
  for (let ppRank = 0; ppRank < world.pp; ppRank++) {
    const b = world.stage(ppRank);
    const gpus = b.migUuids.length > 0 ? b.migUuids : b.gpuIndices.map(String);
    const k = gpus.length / world.tp;
    for (let tpRank = 0; tpRank < world.tp; tpRank++) {
      const localRank = perNode.get(b.nodeId) ?? 0;
      perNode.set(b.nodeId, localRank + 1);
      ranks.push({
        rank: world.firstRank + ppRank * world.tp + tpRank,
        nodeId: b.nodeId,
        tpRank,
        ppRank,
        localRank,
        localWorldSize: 0, // filled below
        cudaVisibleDevices: gpus.slice(tpRank * k, (tpRank + 1) * k).join(','),
        ports: rankPorts(b.nodeId),
      });
    }
  }
  for (const r of ranks) r.localWorldSize = perNode.get(r.nodeId)!;
  const first = ranks[0]!;
  return { ranks, masterAddr: nodes.get(first.nodeId)?.address || '127.0.0.1', masterPort: ports.allocate(first.nodeId) };
}

/**
 * What a gang's rank layout is made of — the plan of each rank, the port
 * ranges and port spaces, and the allocator that hands out free ports per
 * host — shared by the plain TP × PP layout (gang-spec.ts) and the layout of
 * a gang with roles (gang-roles.ts). Pure.
 */
import { ErrorCode, MusterError } from '@muster/common';
import type { RoleEndpoint } from '@muster/contracts';
import type { Node } from '@muster/proto';
import type { ValidShardTemplate } from './shard-template.js';

/**
 * A rank of a gang with roles: its role instance, which is its own TP × PP
 * world (RANK, WORLD_SIZE and the rendezvous are the instance's), and the
 * template the role runs.
 */
export interface RoleRank {
  name: string;
  /** The role instance (0 … count − 1). */
  index: number;
  count: number;
  /** Rank inside the instance: PP_RANK × TP + TP_RANK. */
  rank: number;
  tp: number;
  pp: number;
  masterAddr: string;
  masterPort: number;
  template: ValidShardTemplate;
}

export interface RankPlan {
  rank: number;
  nodeId: string;
  tpRank: number;
  ppRank: number;
  localRank: number;
  localWorldSize: number;
  cudaVisibleDevices: string;
  ports: Record<string, number>;
  /** Set in a gang with roles. */
  role?: RoleRank;
}

export interface LayoutPlan {
  ranks: RankPlan[];
  masterAddr: string;
  masterPort: number;
  /** A gang with roles: every role instance's first rank (their addresses go into each rank's environment). */
  endpoints?: RoleEndpoint[];
}

export interface PortRange {
  first: number;
  last: number;
}

/** Default rank port range; `--shard-port-range` changes it (it is Kubernetes' NodePort range: move it where NodePorts are used on GPU nodes). */
export const DEFAULT_PORT_RANGE: PortRange = { first: 30_000, last: 32_767 };

/** Node records by id: a Map, or the registry itself (no copy of 10,000 nodes per launch). */
export type NodeLookup = Pick<ReadonlyMap<string, Node>, 'get'>;

/**
 * Port spaces are per host address, not per node id: simulated nodes on one
 * machine (`muster up`, tests) share one.
 */
export function portSpace(nodes: NodeLookup, nodeId: string): string {
  return nodes.get(nodeId)?.address || nodeId;
}

/** Ports taken and handed out, per host (`portSpace`); allocation takes the lowest free port of `range`. */
export interface PortAllocator {
  taken(nodeId: string): Set<number>;
  allocate(nodeId: string): number;
  /** A rank's ports on `nodeId`: fixed ones taken as given (INVALID_ARGUMENT on a clash), the others allocated. */
  rankPorts(ports: readonly { name: string; port: number }[], nodeId: string): Record<string, number>;
}

export function portAllocator(nodes: NodeLookup, used: Map<string, Set<number>>, range: PortRange): PortAllocator {
  const taken = (nodeId: string) => {
    const space = portSpace(nodes, nodeId);
    let s = used.get(space);
    if (!s) used.set(space, (s = new Set()));
    return s;
  };
  const allocate = (nodeId: string): number => {
    const s = taken(nodeId);
    for (let p = range.first; p <= range.last; p++) {
      if (!s.has(p)) {
        s.add(p);
        return p;
      }
    }
    throw new MusterError(ErrorCode.RESOURCE_EXHAUSTED, `no free port left in ${range.first}-${range.last} on node ${nodeId}`);
  };
  const rankPorts = (spec: readonly { name: string; port: number }[], nodeId: string): Record<string, number> => {
    const ports: Record<string, number> = {};
    for (const p of spec) {
      if (p.port) {
        if (taken(nodeId).has(p.port)) {
          throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid gang spec: template.ports: port ${p.port} ("${p.name}") clashes on node ${nodeId} (another rank or gang there uses it); use port 0 to have one allocated`, { details: { field: 'template.ports' } });
        }
        taken(nodeId).add(p.port);
        ports[p.name] = p.port;
      } else ports[p.name] = allocate(nodeId);
    }
    return ports;
  };
  return { taken, allocate, rankPorts };
}

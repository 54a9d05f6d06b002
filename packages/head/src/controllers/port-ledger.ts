/**
 * Ports on hosts as a rank layout sees them — pure, no I/O.
 *
 * A port space is a host address (`portSpace`): ranks of two nodes on one
 * host (`muster up`, tests) share one space, ranks of two hosts do not. A
 * layout (gang-layout.ts `layOutWorld`, for `planLayout` and `planRoleLayout`) takes
 * the lowest free port of the range in the rank's space, reading two things
 * through `LayoutPorts`:
 *  - what the other live gangs hold (`PortsTaken`): the gang controller's
 *    index (port-index.ts), read in place — no copy of every gang's ports per
 *    layout, which is what a launch cost at thousands of gangs before;
 *  - what this layout took so far, and the ports the gang's own record says
 *    an agent found taken on a host (Gang.portsInUse, gang-plan.ts): kept in
 *    the layout's own small map, thrown away with it.
 *
 * `forEachGangPort` says which ports a record holds; the index files them
 * and the tests' full scan (port-scan.test-support.ts) collects them, so the
 * two cannot disagree on what "held" means.
 */
import { ErrorCode, MusterError } from '@muster/common';
import type { Gang, Node } from '@muster/proto';

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
 * machine (`muster up`, tests) share one. A node the registry does not know
 * (removed) is a space of its own, named by its id.
 */
export function portSpace(nodes: NodeLookup, nodeId: string): string {
  return nodes.get(nodeId)?.address || nodeId;
}

/** Every port a gang record holds: each rank's, the rendezvous port on rank 0's node, each role instance's rendezvous (gang-roles.ts). */
export function forEachGangPort(g: Pick<Gang, 'ranks' | 'masterPort'>, visit: (nodeId: string, port: number) => void): void {
  for (const r of g.ranks) for (const p of Object.values(r.ports)) visit(r.nodeId, p);
  if (g.masterPort && g.ranks[0]) visit(g.ranks[0].nodeId, g.masterPort);
  for (const r of g.ranks) if (r.masterPort) visit(r.nodeId, r.masterPort);
}

/** Whether a port is held in a port space (by gangs other than the one being laid out). */
export interface PortsTaken {
  has(space: string, port: number): boolean;
}

export const NO_PORTS_TAKEN: PortsTaken = { has: () => false };

/** A plain map read as `PortsTaken` (tests, and the dry run of a layout). */
export function portsTakenIn(used: ReadonlyMap<string, ReadonlySet<number>>): PortsTaken {
  return { has: (space, port) => used.get(space)?.has(port) ?? false };
}

/**
 * One layout's view of the ports: `taken` (the others', read in place) plus
 * what this layout holds itself (its allocations, its fixed ports, the ports
 * its record says are taken on a host). Lowest free port first, per space.
 */
export class LayoutPorts {
  private readonly mine = new Map<string, Set<number>>();

  constructor(
    readonly nodes: NodeLookup,
    private readonly taken: PortsTaken,
    readonly range: PortRange = DEFAULT_PORT_RANGE,
  ) {}

  /** Whether `port` is taken on `nodeId`'s host, by another gang or by this layout. */
  has(nodeId: string, port: number): boolean {
    const space = portSpace(this.nodes, nodeId);
    return this.holds(space, port) || this.taken.has(space, port);
  }

  /** This layout holds `port` on `nodeId`'s host (a fixed port, or one found taken there); false if it was taken already. */
  claim(nodeId: string, port: number): boolean {
    const free = !this.has(nodeId, port);
    this.hold(portSpace(this.nodes, nodeId), port);
    return free;
  }

  /** The lowest port of the range free on `nodeId`'s host, now held by this layout. */
  allocate(nodeId: string): number {
    const space = portSpace(this.nodes, nodeId);
    for (let p = this.range.first; p <= this.range.last; p++) {
      if (this.holds(space, p) || this.taken.has(space, p)) continue;
      this.hold(space, p);
      return p;
    }
    throw new MusterError(ErrorCode.RESOURCE_EXHAUSTED, `no free port left in ${this.range.first}-${this.range.last} on node ${nodeId}`);
  }

  private holds(space: string, port: number): boolean {
    return this.mine.get(space)?.has(port) ?? false;
  }

  private hold(space: string, port: number): void {
    let s = this.mine.get(space);
    if (!s) this.mine.set(space, (s = new Set()));
    s.add(port);
  }
}

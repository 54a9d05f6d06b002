/**
 * The ports the live gangs hold, indexed: port space → port → owner gang
 * ids, kept by the gang controller (gangs.ts) where its records change, so a
 * launch asks "is this port taken in this space?" in O(1) instead of
 * collecting the ports of every live gang (issue 15, point 4: at 10,000
 * nodes and thousands of gangs that scan, and its copy per plan, was the
 * launch's cost).
 *
 * What a gang holds (`file`, called by gangs.ts wherever a record changes):
 * the ports of its working record and of its last durable one, each while
 * LIVE. Both, because the
 * working record may be ahead of the store (a layout in flight: no other
 * gang may take its new ports before it is written) and the durable one is
 * what agents were told (its ports stay held until the newer record is
 * written). A commit that fails rolls nothing forward: the controller reads
 * its records back (`reset` with what the store holds).
 *
 * Owners are a list, not one id: two gangs can hold one port of a space when
 * a node's address changes under them (a re-registration from another host)
 * or was unknown when they were laid out. The index follows such changes by
 * the registry's change log (`NodeChanges`): before an answer it re-files
 * the ports of every node whose record changed since it last looked and
 * whose space is not the one its ports are filed under — the nodes that hold
 * ports only, never every node.
 *
 * The tests' oracle is the full scan (port-scan.test-support.ts): after any
 * sequence of launches, re-plans, stops, failures and removals the index
 * equals it (port-index.test.ts).
 */
import type { Gang } from '@muster/proto';
import { LIVE } from './gang-plan.js';
import { forEachGangPort, portSpace, type NodeLookup, type PortsTaken } from './port-ledger.js';

/** The registry's record versions (cluster/registry.ts): which nodes changed since a version, if still known. */
export interface NodeChanges {
  readonly version: number;
  changesSince(version: number): string[] | undefined;
}

interface Claim {
  nodeId: string;
  port: number;
}

export class PortIndex {
  /** space → port → the gangs holding it (one, but for the cases in the file comment). */
  private readonly spaces = new Map<string, Map<number, string[]>>();
  /** gang id → what it holds, as filed. */
  private readonly claims = new Map<string, Claim[]>();
  /** gang id → the attempts of the records its claims come from ("3/2": working, durable; "-": not live). */
  private readonly filedAs = new Map<string, string>();
  /** node id → the space its ports are filed under and the gangs holding ports there. */
  private readonly nodes = new Map<string, { space: string; gangs: Set<string> }>();
  private seen: number;

  constructor(
    private readonly lookup: NodeLookup,
    private readonly changes: NodeChanges = { version: 0, changesSince: () => [] },
  ) {
    this.seen = changes.version;
  }

  /**
   * `gangId` now holds the ports of its working record and of its last
   * durable one, each while LIVE (the file comment says why both), and no
   * others. A record's ports change only with a new layout (a new attempt)
   * or its state leaving LIVE, so a call that changes neither — a rank's
   * phase moved — files nothing.
   */
  file(gangId: string, working: Gang, durable: Gang | undefined): void {
    const live = (g: Gang | undefined) => (g && LIVE.has(g.state) ? g : undefined);
    const records = [live(working), live(durable)];
    const key = records.map((g) => g?.attempt ?? '-').join('/');
    if (this.filedAs.get(gangId) === key) return;
    this.drop(gangId);
    this.filedAs.set(gangId, key);
    const claims: Claim[] = [];
    const seen = new Set<string>();
    for (const g of records) {
      if (!g) continue;
      forEachGangPort(g, (nodeId, port) => {
        const k = `${nodeId}:${port}`;
        if (seen.has(k)) return;
        seen.add(k);
        claims.push({ nodeId, port });
      });
    }
    if (claims.length === 0) return;
    this.claims.set(gangId, claims);
    for (const c of claims) this.add(gangId, c);
  }

  /** `gangId` holds nothing any more (finished, collected). */
  drop(gangId: string): void {
    this.filedAs.delete(gangId);
    const claims = this.claims.get(gangId);
    if (!claims) return;
    this.claims.delete(gangId);
    for (const c of claims) this.remove(gangId, c);
    for (const c of claims) {
      const n = this.nodes.get(c.nodeId);
      if (n?.gangs.delete(gangId) && n.gangs.size === 0) this.nodes.delete(c.nodeId);
    }
  }

  /** Forgets everything (memory is about to be read back from the store). */
  reset(): void {
    this.filedAs.clear();
    this.spaces.clear();
    this.claims.clear();
    this.nodes.clear();
    this.seen = this.changes.version;
  }

  /** What a layout of `gangId` must not take: the ports every other gang holds. */
  others(gangId: string): PortsTaken {
    this.follow();
    return {
      has: (space, port) => {
        const owners = this.spaces.get(space)?.get(port);
        return owners !== undefined && owners.some((id) => id !== gangId);
      },
    };
  }

  /** The held ports by space, copied: for tests and diagnostics, never on a launch's path. */
  snapshot(): Map<string, Set<number>> {
    this.follow();
    return new Map([...this.spaces].map(([space, ports]) => [space, new Set(ports.keys())]));
  }

  /** How many gangs hold ports, and how many (space, port) pairs are held. */
  get size(): { gangs: number; ports: number } {
    let ports = 0;
    for (const s of this.spaces.values()) ports += s.size;
    return { gangs: this.claims.size, ports };
  }

  private add(gangId: string, c: Claim): void {
    let n = this.nodes.get(c.nodeId);
    if (!n) this.nodes.set(c.nodeId, (n = { space: portSpace(this.lookup, c.nodeId), gangs: new Set() }));
    n.gangs.add(gangId);
    let ports = this.spaces.get(n.space);
    if (!ports) this.spaces.set(n.space, (ports = new Map()));
    const owners = ports.get(c.port);
    if (owners) owners.push(gangId);
    else ports.set(c.port, [gangId]);
  }

  /** One owner less of a port, in the space its node's ports are filed under. */
  private remove(gangId: string, c: Claim): void {
    const space = this.nodes.get(c.nodeId)?.space;
    const ports = space === undefined ? undefined : this.spaces.get(space);
    const owners = ports?.get(c.port);
    if (!ports || !owners) return;
    const i = owners.indexOf(gangId);
    if (i >= 0) owners.splice(i, 1);
    if (owners.length === 0) ports.delete(c.port);
    if (ports.size === 0) this.spaces.delete(space!);
  }

  /** Re-files the ports of nodes whose space changed since the last look (see the file comment). */
  private follow(): void {
    const version = this.changes.version;
    if (version === this.seen) return;
    const changed = this.changes.changesSince(this.seen) ?? [...this.nodes.keys()];
    this.seen = version;
    const moved = new Set<string>();
    for (const nodeId of changed) {
      const n = this.nodes.get(nodeId);
      if (n && n.space !== portSpace(this.lookup, nodeId)) for (const g of n.gangs) moved.add(g);
    }
    // Every gang holding ports on a moved node leaves first, so the node's entry goes and comes back under its new space.
    const held = [...moved].map((gangId) => [gangId, this.claims.get(gangId)!, this.filedAs.get(gangId)!] as const);
    for (const [gangId] of held) this.drop(gangId);
    for (const [gangId, claims, key] of held) {
      this.filedAs.set(gangId, key);
      this.claims.set(gangId, claims);
      for (const c of claims) this.add(gangId, c);
    }
  }
}

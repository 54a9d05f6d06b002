/**
 * The full scan of the ports the live gangs hold, by port space: what the
 * gang controller computed per launch before it kept an index
 * (port-index.ts). Kept only as the tests' oracle — the index must equal it
 * after any sequence of gang changes (port-index.test.ts) — and for tests that
 * check a layout's ports. Written out as the controller had it, not through
 * port-ledger.ts `forEachGangPort`, so it is an independent account.
 * Test support only (`*.test-support.ts` is not compiled into dist).
 */
import type { Gang } from '@muster/proto';
import { portSpace, type NodeLookup } from './port-ledger.js';

/** The ports `gangs` hold (every rank's, and the rendezvous ports), by port space. */
export function portsInUse(gangs: Iterable<Pick<Gang, 'ranks' | 'masterPort'>>, nodes: NodeLookup): Map<string, Set<number>> {
  const used = new Map<string, Set<number>>();
  const add = (nodeId: string, port: number) => {
    const space = portSpace(nodes, nodeId);
    used.set(space, (used.get(space) ?? new Set()).add(port));
  };
  for (const g of gangs) {
    for (const r of g.ranks) for (const p of Object.values(r.ports)) add(r.nodeId, p);
    if (g.masterPort && g.ranks[0]) add(g.ranks[0].nodeId, g.masterPort);
    for (const r of g.ranks) if (r.masterPort) add(r.nodeId, r.masterPort); // a role instance's rendezvous (gang-roles.ts)
  }
  return used;
}

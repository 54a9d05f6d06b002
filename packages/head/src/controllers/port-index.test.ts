/**
 * The port index (port-index.ts) against the full scan it replaced
 * (port-scan.test-support.ts), as a property: after any sequence of gangs
 * filing records (working and durable, live or finished), filing the same
 * ones again, dropping them, the index being reset and refilled, and nodes
 * changing address (one host to another, to an unknown host, back), the
 * index holds exactly the scan's ports of the live records by space, and
 * `others(g)` answers exactly what the scan of every gang but g holds. The controller-level
 * property (real gang controller, real store) is gangs-ports.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GangState as G, type Gang, type Node, type RankStatus } from '@muster/proto';
import { LIVE } from './gang-plan.js';
import { LayoutPorts, portSpace, type PortsTaken } from './port-ledger.js';
import { PortIndex, type NodeChanges } from './port-index.js';
import { portsInUse } from './port-scan.test-support.js';

/** Nodes whose address can change, with the registry's change log (version, ids since). */
function nodeBook(addresses: Array<[string, string]>) {
  const nodes = new Map(addresses.map(([id, address]) => [id, { nodeId: id, address } as Node]));
  const log: string[] = [];
  const changes: NodeChanges = {
    get version() {
      return log.length;
    },
    changesSince: (v) => log.slice(v),
  };
  const move = (id: string, address: string | undefined) => {
    if (address === undefined) nodes.delete(id);
    else nodes.set(id, { nodeId: id, address } as Node);
    log.push(id);
  };
  return { nodes, changes, move };
}

const rank = (r: number, nodeId: string, ports: Record<string, number>, masterPort = 0) => ({ rank: r, nodeId, ports, masterPort }) as unknown as RankStatus;

const NODES = ['n1', 'n2', 'n3', 'n4'];
const ADDRESSES = ['10.0.0.1', '10.0.0.2', '10.0.0.3', undefined];
const layout = fc.record({
  ranks: fc.array(fc.record({ node: fc.constantFrom(...NODES), http: fc.integer({ min: 30_000, max: 30_006 }), rdv: fc.option(fc.integer({ min: 30_000, max: 30_006 }), { nil: 0 }) }), { minLength: 1, maxLength: 3 }),
  masterPort: fc.integer({ min: 30_000, max: 30_006 }),
  live: fc.boolean(),
});
type Layout = typeof layout extends fc.Arbitrary<infer T> ? T : never;
const op = fc.oneof(
  fc.record({ t: fc.constant('file' as const), gang: fc.integer({ min: 0, max: 4 }), working: layout, durable: fc.option(layout, { nil: undefined }) }),
  fc.record({ t: fc.constant('again' as const), gang: fc.integer({ min: 0, max: 4 }) }),
  fc.record({ t: fc.constant('drop' as const), gang: fc.integer({ min: 0, max: 4 }) }),
  fc.record({ t: fc.constant('move' as const), node: fc.constantFrom(...NODES), address: fc.constantFrom(...ADDRESSES) }),
  fc.record({ t: fc.constant('reset' as const) }),
);

function equalMaps(a: Map<string, Set<number>>, b: Map<string, Set<number>>): void {
  const sorted = (m: Map<string, Set<number>>) => [...m].map(([s, p]) => [s, [...p].sort()] as const).sort(([x], [y]) => (x < y ? -1 : 1));
  expect(sorted(a)).toEqual(sorted(b));
}

describe('port index', () => {
  it('equals the full scan of every filed record, and others(g) the scan without g, after any sequence of changes', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const book = nodeBook([['n1', '10.0.0.1'], ['n2', '10.0.0.1'], ['n3', '10.0.0.3'], ['n4', '10.0.0.4']]);
        const index = new PortIndex(book.nodes, book.changes);
        /** The model: each gang's records as last filed (a new layout is a new attempt, as in the controller). */
        const filed = new Map<string, { working: Gang; durable: Gang | undefined }>();
        let attempt = 0;
        const record = (l: Layout | undefined): Gang | undefined =>
          l && ({ attempt: ++attempt, state: l.live ? G.GANG_STATE_READY : G.GANG_STATE_STOPPED, masterPort: l.masterPort, ranks: l.ranks.map((r, i) => rank(i, r.node, { http: r.http }, r.rdv)) } as unknown as Gang);
        const held = () => [...filed].map(([id, f]) => [id, [f.working, f.durable].filter((g): g is Gang => g !== undefined && LIVE.has(g.state))] as const);
        for (const o of ops) {
          if (o.t === 'file') {
            const f = { working: record(o.working)!, durable: record(o.durable) };
            filed.set(`g${o.gang}`, f);
            index.file(`g${o.gang}`, f.working, f.durable);
          } else if (o.t === 'again') {
            const f = filed.get(`g${o.gang}`);
            if (f) index.file(`g${o.gang}`, f.working, f.durable); // the same attempts: a phase moved, nothing to file
          } else if (o.t === 'drop') {
            filed.delete(`g${o.gang}`);
            index.drop(`g${o.gang}`);
          } else if (o.t === 'move') {
            book.move(o.node, o.address);
          } else {
            index.reset();
            for (const [id, f] of filed) index.file(id, f.working, f.durable);
          }
          equalMaps(index.snapshot(), portsInUse(held().flatMap(([, r]) => r), book.nodes));
          const got: string[] = [];
          const want: string[] = [];
          for (const g of ['g0', 'g1', 'g2', 'g3', 'g4']) {
            const others = index.others(g);
            const scan = portsInUse(held().filter(([id]) => id !== g).flatMap(([, r]) => r), book.nodes);
            for (const space of new Set(NODES.map((n) => portSpace(book.nodes, n)))) {
              for (let p = 30_000; p <= 30_006; p++) {
                if (others.has(space, p)) got.push(`${g} ${space}:${p}`);
                if (scan.get(space)?.has(p)) want.push(`${g} ${space}:${p}`);
              }
            }
          }
          expect(got).toEqual(want);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('a layout takes the lowest free port of its host around what others hold and what it took, and refuses a taken fixed port', () => {
    const nodes = new Map([['a', { nodeId: 'a', address: 'h1' } as Node], ['b', { nodeId: 'b', address: 'h1' } as Node], ['c', { nodeId: 'c', address: 'h2' } as Node]]);
    const taken: PortsTaken = { has: (space, port) => space === 'h1' && (port === 30_000 || port === 30_002) };
    const ports = new LayoutPorts(nodes, taken, { first: 30_000, last: 30_003 });
    expect(ports.allocate('a')).toBe(30_001);
    expect(ports.allocate('b')).toBe(30_003); // same host as a: its 30001 is held by this layout
    expect(ports.allocate('c')).toBe(30_000); // another host: its own space
    expect(() => ports.allocate('a')).toThrow(/no free port left in 30000-30003 on node a/);
    expect(ports.claim('c', 30_001)).toBe(true);
    expect(ports.claim('c', 30_001)).toBe(false);
    expect(ports.claim('a', 30_002)).toBe(false); // another gang's
  });
});

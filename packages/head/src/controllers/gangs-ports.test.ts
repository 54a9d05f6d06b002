/**
 * The gang controller's port index (port-index.ts) against the full scan
 * (port-scan.test-support.ts), as a property over the real controller: a
 * real embedded store behind a FaultyStore, the real node registry and
 * placement group controller, and stub agents that acknowledge what they are
 * told (reservations; launches reported ready; stops reported exited). After
 * any sequence of launches, re-plans (a port found taken on a host), rank
 * failures, stops, node deaths and returns (with a new address: the ports
 * move to another space), collections of finished gangs and writes that
 * fail (the controller reads its records back), the index holds exactly the
 * ports of the live gangs by space, as the scan computes them.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { waitFor } from '@muster/common';
import type { Gang, GangSpec } from '@muster/proto';
import { NodeRegistry, type AgentConnection } from '../cluster/registry.js';
import { leaderOnFaultyStore } from '../state/leader-store.test-support.js';
import { LIVE } from './gang-plan.js';
import { GANGS_PREFIX, GangController } from './gangs.js';
import { gpuNodeRegistration } from './controllers.test-support.js';
import { PlacementGroupController } from './placement-groups.js';
import { portsInUse } from './port-scan.test-support.js';

const NODES = ['n1', 'n2', 'n3'];
const ADDRESSES = ['10.0.0.1', '10.0.0.3', '10.0.0.9'];
const GANGS = 5;

const spec = (i: number): GangSpec => ({
  name: `g${i}`, placementGroup: `pg${i}`, tp: 1, pp: i % 2 ? 2 : 1, logMaxBytes: 0, replicaGroup: '', replicaId: '',
  template: { command: 'serve', args: [], env: {}, cwd: '', ports: [{ name: 'http', port: 0 }], readiness: undefined, liveness: undefined, warmup: undefined },
  startup: { deadlineMs: 600_000, maxRestarts: 2, backoffInitialMs: 600_000, backoffMaxMs: 0, gracePeriodMs: 0 }, roles: [],
});

const op = fc.oneof(
  fc.record({ t: fc.constantFrom('launch' as const, 'stop' as const, 'fail' as const, 'portInUse' as const, 'faultyLaunch' as const, 'faultyStop' as const), gang: fc.integer({ min: 0, max: GANGS - 1 }) }),
  fc.record({ t: fc.constant('kill' as const), node: fc.constantFrom(...NODES) }),
  fc.record({ t: fc.constant('revive' as const), node: fc.constantFrom(...NODES), address: fc.constantFrom(...ADDRESSES) }),
  fc.record({ t: fc.constant('collect' as const) }),
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

async function harness() {
  const { store, writer, log, events, close } = await leaderOnFaultyStore('gang-ports');
  let clock = 0;
  const registry = new NodeRegistry(writer, events, log, 60_000, () => clock);
  const pgs = new PlacementGroupController(writer, registry, events, log);
  await pgs.load();
  /** The controller, once made (the stub agents answer it). */
  const made: { gangs?: GangController } = {};
  const ignore = () => undefined;
  /** What each stub agent runs: gang id → attempt and ranks. */
  const running = new Map<string, Map<string, { attempt: number; ranks: number[] }>>();
  const conns = new Map<string, AgentConnection>();
  let connIds = 0;
  const connect = (nodeId: string): AgentConnection => {
    const mine = new Map<string, { attempt: number; ranks: number[] }>();
    running.set(nodeId, mine);
    const report = (gangId: string, attempt: number, rank: number, phase: string) =>
      queueMicrotask(() => void made.gangs?.shardStatus(nodeId, { gangId, attempt, rank, phase, pid: 1, exitCode: phase === 'exited' ? 0 : undefined, signal: '', reason: '', stopped: phase === 'exited', logTail: '', portInUse: 0, warmupMs: 0 }).catch(ignore));
    const conn: AgentConnection = {
      id: ++connIds,
      send: (msg) => {
        const m = msg.msg;
        if (m?.$case === 'reserveBundles') queueMicrotask(() => pgs.acked(nodeId, m.value.groupId));
        else if (m?.$case === 'launchShards') {
          mine.set(m.value.gangId, { attempt: m.value.attempt, ranks: m.value.shards.map((s) => s.rank) });
          for (const s of m.value.shards) report(m.value.gangId, m.value.attempt, s.rank, 'ready');
        } else if (m?.$case === 'stopShards') {
          const r = mine.get(m.value.gangId);
          if (r && r.attempt <= m.value.attempt) for (const rank of r.ranks) report(m.value.gangId, r.attempt, rank, 'exited');
          mine.delete(m.value.gangId);
        }
      },
      close: ignore,
    };
    conns.set(nodeId, conn);
    return conn;
  };
  /** A (re)started agent of `nodeId` at `address` registers: a new incarnation on a new stream. */
  const join = (nodeId: string, address: string) => registry.register(gpuNodeRegistration(nodeId, { address, incarnation: crypto.randomUUID() }), connect(nodeId));
  await join('n1', '10.0.0.1');
  await join('n2', '10.0.0.1'); // one host, two nodes: one port space
  await join('n3', '10.0.0.3');
  for (let i = 0; i < GANGS; i++) {
    const bundles = Array.from({ length: i % 2 ? 2 : 1 }, () => ({ cpuMillis: 0, memoryBytes: 0, gpus: 1, gpuMemoryMib: 0, migProfile: '', custom: {} }));
    await pgs.create({ name: `pg${i}`, strategy: i % 2 ? 'SPREAD' : 'PACK', bundles, topology: [], matchLabels: {}, tolerations: [], priority: 0 });
  }
  const g = (made.gangs = new GangController(writer, registry, pgs, events, log, { first: 30_000, last: 30_011 }, { kept: 0, maxAgeMs: 0 }));
  await g.load();
  const alive = new Set(NODES);
  const byName = (i: number): Gang | undefined => g.list().filter((x) => x.spec?.name === `g${i}`).at(-1);

  async function run(o: Op): Promise<void> {
    const ignored = (p: Promise<unknown>) => p.then(ignore, ignore); // refusals (no such gang, exists already) are part of the game
    switch (o.t) {
      case 'launch':
        return ignored(g.launch(spec(o.gang)));
      case 'stop':
        return ignored(g.stop(`g${o.gang}`));
      case 'fail':
      case 'portInUse': {
        const x = byName(o.gang);
        const r = x?.ranks[0];
        if (!x || !r || !LIVE.has(x.state)) return;
        const portInUse = o.t === 'portInUse' ? (Object.values(r.ports)[0] ?? 0) : 0;
        return ignored(g.shardStatus(r.nodeId, { gangId: x.id, attempt: x.attempt, rank: r.rank, phase: 'exited', pid: 1, exitCode: 1, signal: '', reason: 'test', stopped: false, logTail: '', portInUse, warmupMs: 0 }));
      }
      case 'faultyLaunch':
      case 'faultyStop':
        store.failWrites({ prefix: GANGS_PREFIX });
        await ignored(o.t === 'faultyLaunch' ? g.launch(spec(o.gang)) : g.stop(`g${o.gang}`));
        store.heal();
        return;
      case 'kill': {
        if (!alive.has(o.node)) return;
        clock += 60_001;
        for (const n of alive) if (n !== o.node) registry.heartbeat(n, conns.get(n)!);
        alive.delete(o.node);
        running.get(o.node)?.clear();
        await registry.sweep();
        return;
      }
      case 'revive':
        if (alive.has(o.node)) return;
        await join(o.node, o.address);
        alive.add(o.node);
        return;
      case 'collect':
        return ignored(g.collect(Date.now() + 1_000));
    }
  }

  /** The index equals the scan of the live records, once what the op set off has settled. */
  async function agrees(): Promise<void> {
    const scan = () => portsInUse(g.list().filter((x) => LIVE.has(x.state)), registry);
    const text = (m: Map<string, Set<number>>) => JSON.stringify([...m].map(([s, p]) => [s, [...p].sort()]).sort());
    await waitFor('the port index equals the full scan', () => text(g.portsHeld()) === text(scan()), { timeoutMs: 5_000, intervalMs: 5 }).catch(() => {
      expect(text(g.portsHeld())).toBe(text(scan()));
    });
  }

  return { run, agrees, close: async () => (g.close(), await close()), live: () => g.list().filter((x) => LIVE.has(x.state)).length };
}

describe('gang controller: the port index', () => {
  it('equals the full scan of the live gangs after any sequence of launches, re-plans, failures, stops, deaths, moves, collections and failed writes', async () => {
    let busiest = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 25 }), async (ops) => {
        const h = await harness();
        try {
          for (const o of ops) {
            await h.run(o);
            await h.agrees();
            busiest = Math.max(busiest, h.live());
          }
        } finally {
          await h.close();
        }
      }),
      // A fixed seed: the same sequences every run, so the check below is about them, not luck.
      { numRuns: 12, seed: 20_261_205 },
    );
    expect(busiest).toBeGreaterThan(1); // the runs had several gangs live at once (a loaded machine may still hold some pending)
  }, 120_000);
});

/**
 * The placement group controller keeps one scheduling state from cycle to
 * cycle (pg-view.ts) and changes it by deltas. These tests drive the real
 * controller (real embedded store, event log and node registry; agents are
 * in-process stubs that acknowledge what they are told) through random
 * streams of creates, removes, node deaths and returns, and check after
 * every step what drift in that state would break:
 *   - a GPU booked by two groups (the state thought a used GPU free);
 *   - a PENDING group that fits the cluster as it really is (the state
 *     thought a free GPU used);
 *   - a group placed on a dead node (the state missed a node change).
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NodeState, PlacementGroup, PlacementGroupState as S, type HeadMessage, type PlacementGroupSpec } from '@muster/proto';
import { MusterError, waitFor } from '@muster/common';
import { NodeRegistry, type AgentConnection } from '../cluster/registry.js';
import { ClusterState, parsePlacementGroupSpec, placeGroup, type Reservation } from '../scheduler/index.js';
import { leaderOnFaultyStore } from '../state/leader-store.test-support.js';
import { gpuNodeRegistration } from './controllers.test-support.js';
import { corePlacement, schedulerView, specInput } from './pg-convert.js';
import { PGS_PREFIX, PlacementGroupController } from './placement-groups.js';

const DEAD_AFTER_MS = 1_000;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Uniform draws in [0, 1) from fast-check's generator: a seed replays a failing stream. */
function rng(seed: number): () => number {
  const draws = fc.sample(fc.noBias(fc.integer({ min: 0, max: 999_999 })), { seed, numRuns: 2_000 });
  let i = 0;
  return () => draws[i++ % draws.length]! / 1_000_000;
}

async function harness() {
  const { store, writer, log, events, close } = await leaderOnFaultyStore('pgc');
  cleanups.push(close);
  let clock = 0;
  const registry = new NodeRegistry(writer, events, log, DEAD_AFTER_MS, () => clock);
  const pgs = new PlacementGroupController(writer, registry, events, log);
  await pgs.load();

  let connIds = 0;
  const conns = new Map<string, AgentConnection>();
  /** Every reservation an agent was told of, as "node group". */
  const told: string[] = [];
  /** A stub agent: acknowledges every reservation it is told about, as the real one does. */
  const start = async (nodeId: string) => {
    const conn: AgentConnection = {
      id: ++connIds,
      send: (msg: HeadMessage) => {
        if (msg.msg?.$case === 'reserveBundles') {
          const groupId = msg.msg.value.groupId;
          told.push(`${nodeId} ${groupId}`);
          queueMicrotask(() => pgs.acked(nodeId, groupId));
        }
      },
      close: () => undefined,
    };
    conns.set(nodeId, conn);
    await registry.register(gpuNodeRegistration(nodeId, { gpus: 8, incarnation: `inc-${conn.id}` }), conn);
  };
  /** Every node but `nodeId` heartbeats; then the sweep finds `nodeId` silent past dead-after. */
  const kill = async (nodeId: string) => {
    clock += DEAD_AFTER_MS + 1;
    for (const [id, conn] of conns) if (id !== nodeId) registry.heartbeat(id, conn);
    conns.delete(nodeId);
    await registry.sweep();
  };
  return { pgs, registry, start, kill, store, events, told };
}

type Harness = Awaited<ReturnType<typeof harness>>;

/** What a drifted scheduling state would break, checked against the groups as they are. */
function check(h: Harness, step: string): { placed: number; pending: number } {
  const groups = h.pgs.list();
  const nodes = h.registry.list();
  const booked = new Map<string, string>();
  const alive = new Set(nodes.filter((n) => n.state === NodeState.NODE_STATE_ALIVE).map((n) => n.nodeId));
  for (const g of groups) {
    for (const p of g.placements) {
      expect(alive.has(p.nodeId), `${step}: ${g.spec!.name} placed on dead node ${p.nodeId}`).toBe(true);
      for (const i of p.gpuIndices) {
        const gpu = `${p.nodeId}/${i}`;
        expect(booked.get(gpu), `${step}: GPU ${gpu} booked by ${booked.get(gpu)} and ${g.id}`).toBeUndefined();
        booked.set(gpu, g.id);
      }
    }
  }
  const reservations: Reservation[] = groups.flatMap((g) => g.placements.map((p) => ({ groupId: g.id, ...corePlacement(p) })));
  const truth = ClusterState.from({ nodes: nodes.map((n) => schedulerView(n).node), reservations });
  const seen = { placed: 0, pending: 0 };
  for (const g of groups) {
    const parsed = parsePlacementGroupSpec(specInput(g.spec));
    if (!parsed.ok) throw new Error(parsed.message);
    if (g.state === S.PLACEMENT_GROUP_STATE_PENDING) {
      seen.pending++;
      expect(placeGroup(truth, parsed.spec).status, `${step}: ${g.spec!.name} is pending but fits the cluster as it is`).not.toBe('PLACED');
    } else if (g.state === S.PLACEMENT_GROUP_STATE_INFEASIBLE) {
      expect(placeGroup(truth.emptyTwin(), parsed.spec).status, `${step}: ${g.spec!.name} is infeasible but fits the cluster empty`).not.toBe('PLACED');
    } else if (g.placements.length > 0) seen.placed++;
  }
  return seen;
}

describe('placement group controller: the scheduling state kept between cycles', () => {
  it.each([1, 2, 3, 4, 5])('never double-books and never leaves a fitting group pending, over a random stream (seed %i)', async (seed) => {
    const random = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const h = await harness();
    const nodeIds = ['n1', 'n2', 'n3', 'n4'];
    for (const n of nodeIds) await h.start(n);
    const dead = new Set<string>();
    let names = 0;
    const seen = { placed: 0, pending: 0, kills: 0, returns: 0 };
    for (let step = 0; step < 150; step++) {
      const r = random();
      const live = h.pgs.list();
      let what: string;
      if (r < 0.5 || live.length === 0) {
        const bundles = Array.from({ length: 1 + Math.floor(random() * 3) }, () => ({ cpuMillis: 1_000, memoryBytes: 0, gpus: pick([1, 1, 2, 4, 8]), gpuMemoryMib: 0, migProfile: '', custom: {} }));
        const name = `g${names++}`;
        what = `create ${name} ${bundles.map((b) => b.gpus).join('+')} GPUs`;
        await h.pgs.create({ name, strategy: pick(['PACK', 'SPREAD', 'STRICT_PACK', '']), bundles, topology: [{ level: 'gpu-island', mode: '' }], matchLabels: {}, tolerations: [], priority: 0 });
      } else if (r < 0.85) {
        const g = pick(live);
        what = `remove ${g.spec!.name}`;
        await h.pgs.remove(g.id);
      } else if (r < 0.93 && dead.size < 2) {
        const n = pick(nodeIds.filter((x) => !dead.has(x)));
        what = `kill ${n}`;
        await h.kill(n);
        dead.add(n);
        seen.kills++;
      } else if (dead.size > 0) {
        const n = pick([...dead]);
        what = `return ${n}`;
        await h.start(n);
        dead.delete(n);
        seen.returns++;
      } else continue;
      // Let the cycles that the step set off (acks, node changes) run to the end.
      await h.pgs.sync();
      await h.pgs.sync();
      const now = check(h, `step ${step} (${what})`);
      seen.placed = Math.max(seen.placed, now.placed);
      seen.pending = Math.max(seen.pending, now.pending);
    }
    // The stream did what it is for: a full cluster with a queue, nodes dying and coming back.
    expect(seen.placed).toBeGreaterThan(5);
    expect(seen.pending).toBeGreaterThan(0);
    expect(seen.kills).toBeGreaterThan(2);
    expect(seen.returns).toBeGreaterThan(1);
  });

  it('places a group of a pending backlog in the first cycle after room appears, not a retry period later', async () => {
    const h = await harness();
    for (const n of ['n1', 'n2', 'n3', 'n4']) await h.start(n);
    const spec = (name: string, gpus: number) => ({ name, strategy: 'PACK', bundles: [{ cpuMillis: 0, memoryBytes: 0, gpus, gpuMemoryMib: 0, migProfile: '', custom: {} }], topology: [], matchLabels: {}, tolerations: [], priority: 0 });
    const fillers = [];
    for (let i = 0; i < 4; i++) fillers.push(await h.pgs.create(spec(`full-${i}`, 8)));
    const backlog = [];
    for (let i = 0; i < 50; i++) backlog.push(await h.pgs.create(spec(`wait-${i}`, 8)));
    await h.pgs.sync();
    expect(backlog.every((g) => h.pgs.get(g.id).state === S.PLACEMENT_GROUP_STATE_PENDING)).toBe(true);
    // The backlog was tried once and is skipped now (no room at all); a removal makes room.
    const t0 = Date.now();
    await h.pgs.remove(fillers[0]!.id);
    await h.pgs.sync();
    expect(Date.now() - t0).toBeLessThan(500); // well inside the 1 s retry period: it was not waiting for it
    const placed = backlog.filter((g) => h.pgs.get(g.id).placements.length > 0);
    expect(placed).toHaveLength(1); // one node's worth of room: one of the backlog
    check(h, 'after the removal');
  });
});

describe('placement group controller on a failing store', () => {
  it('a create whose write fails rejects and leaves nothing: no group, no agent told, no event; healed, the same create works', async () => {
    const h = await harness();
    await h.start('n1');
    const heard: string[] = [];
    const unsubscribe = h.events.subscribe((e) => heard.push(e.kind));
    const spec = { name: 'tp4', strategy: 'PACK', bundles: [{ cpuMillis: 0, memoryBytes: 0, gpus: 4, gpuMemoryMib: 0, migProfile: '', custom: {} }], topology: [], matchLabels: {}, tolerations: [], priority: 0 };

    h.store.failWrites({ prefix: PGS_PREFIX });
    await expect(h.pgs.create(spec)).rejects.toMatchObject({ code: 'MUSTER_UNAVAILABLE' });
    await h.pgs.sync(); // the recovery after the failed commit has run
    expect(h.store.failed).toBeGreaterThan(0);
    expect(h.pgs.list()).toEqual([]);
    expect(() => h.pgs.get('tp4')).toThrow(/no placement group/);
    expect(h.told).toEqual([]);
    expect(heard.filter((k) => k.startsWith('pg.'))).toEqual([]);
    expect((await h.store.range(PGS_PREFIX)).kvs).toEqual([]);

    h.store.heal();
    const pg = await h.pgs.create(spec);
    await h.pgs.sync();
    expect(h.pgs.get(pg.id).placements).toHaveLength(1);
    expect(h.told).toEqual([`n1 ${pg.id}`]);
    expect(heard).toContain('pg.reserved');
    unsubscribe();
  });
});

describe('placement group controller: batches (createMany, removeMany)', () => {
  const spec = (name: string, gpus = 1): PlacementGroupSpec => ({ name, strategy: 'PACK', bundles: [{ cpuMillis: 10, memoryBytes: 0, gpus, gpuMemoryMib: 0, migProfile: '', custom: {} }], topology: [], matchLabels: {}, tolerations: [], priority: 0 });
  const codeOf = (r: string | PlacementGroup | MusterError) => (r instanceof MusterError ? r.code : 'ok');
  /** Transactions that wrote placement group records. */
  const pgTxns = (h: Harness) => {
    const spy = vi.spyOn(h.store, 'txn');
    return () => spy.mock.calls.filter(([req]) => req.success.some((op) => op.type !== 'get' && (op.type === 'deletePrefix' ? op.prefix : op.key).startsWith(PGS_PREFIX))).length;
  };

  it('answers every item on its own: a bad spec, a taken name and a name twice in the batch fail only themselves; the rest are durable, in one commit, before it answers', async () => {
    const h = await harness();
    await h.start('n1');
    await h.pgs.create(spec('taken'));
    await h.pgs.sync();
    const txns = pgTxns(h);
    const out = await h.pgs.createMany([
      { spec: spec('a'), requestId: 'ra' },
      { spec: spec('bad', -1), requestId: '' },
      { spec: spec('taken'), requestId: '' },
      { spec: spec('b'), requestId: 'rb' },
      { spec: spec('a'), requestId: 'other' },
      { spec: spec('b'), requestId: 'rb' }, // the same create again (a retry): the same group
    ]);
    expect(out.map(codeOf)).toEqual(['ok', 'MUSTER_INVALID_ARGUMENT', 'MUSTER_ALREADY_EXISTS', 'ok', 'MUSTER_ALREADY_EXISTS', 'ok']);
    expect((out[1] as MusterError).message).toMatch(/gpus/);
    expect(out[5]).toBe(out[3]);
    // Durable when answered, and in one transaction (its records are reserved already: the cycle scheduled them before writing).
    expect(txns()).toBe(1);
    const stored = (await h.store.range(PGS_PREFIX)).kvs.map((kv) => PlacementGroup.decode(kv.value));
    for (const pg of [out[0], out[3]] as PlacementGroup[]) {
      expect(pg.spec?.name).toMatch(/^[ab]$/);
      expect(stored.find((x) => x.id === pg.id)?.state).toBe(S.PLACEMENT_GROUP_STATE_RESERVED);
    }
    expect(stored.map((pg) => pg.spec!.name).sort()).toEqual(['a', 'b', 'taken']);
  });

  it('a batch whose commit fails rejects whole and leaves nothing; sent again, it is made', async () => {
    const h = await harness();
    await h.start('n1');
    h.store.failWrites({ prefix: PGS_PREFIX });
    const items = [{ spec: spec('x'), requestId: 'rx' }, { spec: spec('y'), requestId: 'ry' }];
    await expect(h.pgs.createMany(items)).rejects.toMatchObject({ code: 'MUSTER_UNAVAILABLE' });
    await h.pgs.sync();
    expect(h.store.failed).toBeGreaterThan(0);
    expect(h.pgs.list()).toEqual([]);
    expect(h.told).toEqual([]);
    h.store.heal();
    expect((await h.pgs.createMany(items)).map(codeOf)).toEqual(['ok', 'ok']);
  });

  it('answers a group removed before the batch was durable with its record, even once the removed list forgot it', async () => {
    const h = await harness();
    await h.start('n1');
    const others = Array.from({ length: 1_001 }, (_, i) => ({ spec: spec(`o${i}`, 0), requestId: '' }));
    expect((await h.pgs.createMany(others)).every((r) => !(r instanceof MusterError))).toBe(true);
    // x is admitted, then removed and pushed out of the remembered removals, all before its commit is durable.
    const made = h.pgs.createMany([{ spec: spec('x', 0), requestId: 'rx' }]);
    const removed = h.pgs.removeMany(['x', ...others.map((o) => o.spec.name)]);
    const [x] = await made;
    expect(x).toMatchObject({ spec: { name: 'x' }, state: S.PLACEMENT_GROUP_STATE_REMOVED });
    expect((await removed).every((r) => !(r instanceof MusterError))).toBe(true);
  });

  it('removes each item on its own: an unknown group fails only itself, a group named twice is removed once, all durable when answered', async () => {
    const h = await harness();
    await h.start('n1');
    const [a] = await Promise.all([h.pgs.create(spec('a', 8)), h.pgs.create(spec('b'))]);
    await h.pgs.sync();
    const txns = pgTxns(h);
    const out = await h.pgs.removeMany([a!.id, 'nope', 'b', a!.id]);
    expect(out.map(codeOf)).toEqual(['ok', 'MUSTER_NOT_FOUND', 'ok', 'ok']);
    expect(out.map((r) => (r instanceof MusterError ? undefined : r.state))).toEqual([S.PLACEMENT_GROUP_STATE_REMOVED, undefined, S.PLACEMENT_GROUP_STATE_REMOVED, S.PLACEMENT_GROUP_STATE_REMOVED]);
    expect(txns()).toBe(1);
    expect((await h.store.range(PGS_PREFIX)).kvs).toEqual([]);
    // a's 8 GPUs are free again: a group that needs all of them is placed.
    const c = await h.pgs.create(spec('c', 8));
    expect(c.placements).toHaveLength(1);
  });
});

describe('placement group controller: the CREATED record', () => {
  const spec = (name: string): PlacementGroupSpec => ({ name, strategy: 'PACK', bundles: [{ cpuMillis: 10, memoryBytes: 0, gpus: 1, gpuMemoryMib: 0, migProfile: '', custom: {} }], topology: [], matchLabels: {}, tolerations: [], priority: 0 });
  const storedState = async (h: Harness, id: string) => {
    const kv = (await h.store.range(PGS_PREFIX)).kvs.find((x) => x.key === PGS_PREFIX + id);
    return kv && PlacementGroup.decode(kv.value).state;
  };

  it('is written by a cycle of its own, and its waiters are answered before', async () => {
    const h = await harness();
    await h.start('n1');
    const heard: string[] = [];
    h.events.subscribe((e) => heard.push(e.kind));
    const pg = await h.pgs.create(spec('alone'));
    expect((await h.pgs.wait(pg.id, 5_000)).state).toBe(S.PLACEMENT_GROUP_STATE_CREATED);
    await waitFor('the CREATED record', async () => (await storedState(h, pg.id)) === S.PLACEMENT_GROUP_STATE_CREATED || undefined, { timeoutMs: 5_000 });
    expect(heard.filter((k) => k.startsWith('pg.'))).toEqual(['pg.reserved', 'pg.created']);
  });
});

/**
 * Stored records this head cannot read are quarantined, never dropped
 * (quarantine.ts): a gang and a placement group whose stored spec breaks
 * today's validator (a name a stricter rule refuses, a priority past a new
 * bound), and values that do not decode at all, are written into a real
 * embedded store before the controllers load it (as a head upgrade would
 * find them). They must be shown, hold what they held (bundles, ports,
 * running ranks), be left alone by every path that would act on them, and
 * be deletable by hand through the commit path.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode } from '@muster/common';
import {
  Gang,
  GangState as G,
  PlacementGroup,
  PlacementGroupState as P,
  type BundlePlacement,
  type HeadMessage,
  type ShardStatusReport,
} from '@muster/proto';
import { NodeRegistry } from '../cluster/registry.js';
import { leaderOnFaultyStore } from '../state/leader-store.test-support.js';
import { GANGS_PREFIX, GangController } from './gangs.js';
import { ackingAgent, gpuNodeRegistration } from './controllers.test-support.js';
import { PGS_PREFIX, PlacementGroupController } from './placement-groups.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const bundle = (gpus: number) => ({ cpuMillis: 0, memoryBytes: 0, gpus, gpuMemoryMib: 0, migProfile: '', custom: {} });
const placement = (bundleIndex: number, gpuIndices: number[]): BundlePlacement => ({ bundleIndex, nodeId: 'n1', gpuIndices, migUuids: [], cpuMillis: 0, memoryBytes: 0, custom: {}, gpuUuids: [] });

/** A placement group stored by an older head: CREATED on n1's GPUs 0-3, its priority past today's bound (1,000,000). */
const heldPg: PlacementGroup = {
  ...PlacementGroup.decode(new Uint8Array(0)),
  id: 'pg-held', state: P.PLACEMENT_GROUP_STATE_CREATED, createdAtMs: 1, stateChangedAtMs: 1,
  spec: { name: 'held', strategy: 'PACK', bundles: [bundle(2), bundle(2)], topology: [], matchLabels: {}, tolerations: [], priority: 2_000_000 },
  placements: [placement(0, [0, 1]), placement(1, [2, 3])],
};

/** A READY gang on it whose name today's rule refuses (uppercase), its 4 ranks on n1 with a port each. */
const heldGang: Gang = {
  ...Gang.decode(new Uint8Array(0)),
  id: 'gang-held', state: G.GANG_STATE_READY, placementGroupId: 'pg-held', attempt: 1, createdAtMs: 2, stateChangedAtMs: 2,
  spec: {
    name: 'Old_Name', placementGroup: 'pg-held', tp: 2, pp: 2, logMaxBytes: 0, replicaGroup: '', replicaId: '', roles: [],
    template: { command: 'serve', args: [], env: {}, cwd: '', ports: [], readiness: undefined, liveness: undefined, warmup: undefined },
    startup: { deadlineMs: 60_000, maxRestarts: 3, backoffInitialMs: 1_000, backoffMaxMs: 0, gracePeriodMs: 0 },
  },
  ranks: [0, 1, 2, 3].map((rank) => ({
    rank, nodeId: 'n1', tpRank: rank % 2, ppRank: rank >> 1, localRank: rank, cudaVisibleDevices: String(rank), ports: { http: 31_000 + rank },
    phase: 'ready', pid: 100 + rank, exitCode: undefined, signal: '', reason: '', role: '', roleIndex: 0, masterPort: 0,
  })),
};

const UNDECODABLE = new Uint8Array([0xff, 0xff, 0xff]);

/** n1 registered (its agent records what it is told), the records of `seed` in the store, then the controllers load. */
async function harness(seed: Array<[key: string, value: Uint8Array]>) {
  const { inner, writer, log, events, close } = await leaderOnFaultyStore('quarantine');
  cleanups.push(close);
  let clock = 0;
  const registry = new NodeRegistry(writer, events, log, 60_000, () => clock);
  for (const [key, value] of seed) await inner.put(key, value);
  const pgs = new PlacementGroupController(writer, registry, events, log);
  const { conn, told } = ackingAgent(pgs, 'n1');
  await registry.register(gpuNodeRegistration('n1'), conn);
  await pgs.load();
  const gangs = new GangController(writer, registry, pgs, events, log);
  await gangs.load();
  cleanups.push(() => gangs.close());
  const history = async (prefix: string) => (await events.history()).filter((e) => e.kind.startsWith(prefix));
  /** n1 silent past dead-after: the sweep declares it dead. */
  const kill = async () => {
    clock += 60_001;
    await registry.sweep();
  };
  return { inner, registry, pgs, gangs, told, history, kill };
}

const report = (gangId: string, rank: number, phase = 'ready'): ShardStatusReport =>
  ({ gangId, attempt: 1, rank, phase, pid: 100 + rank, exitCode: undefined, signal: '', reason: '', stopped: false, logTail: '', portInUse: 0, warmupMs: 0 });
const stops = (told: HeadMessage[]) => told.flatMap((m) => (m.msg?.$case === 'stopShards' ? [m.msg.value] : []));

describe('a stored gang the head cannot read', () => {
  it('is shown as quarantined, its ranks are left running, its group cannot be reused; stopping it deletes it and stops its ranks', async () => {
    const h = await harness([[PGS_PREFIX + heldPg.id, PlacementGroup.encode({ ...heldPg, spec: { ...heldPg.spec!, priority: 0 } }).finish()], [GANGS_PREFIX + heldGang.id, Gang.encode(heldGang).finish()]]);
    const shown = h.gangs.get('gang-held');
    expect(shown).toMatchObject({ id: 'gang-held', state: G.GANG_STATE_READY, ranks: heldGang.ranks });
    expect(shown.message).toMatch(/^quarantined: .*\/muster\/gangs\/gang-held.*name.*delete it, or run a head version that accepts it/);
    expect(h.gangs.get('Old_Name').id).toBe('gang-held'); // by its stored name too
    expect(h.gangs.list().map((g) => g.id)).toEqual(['gang-held']);
    expect(h.gangs.isQuarantined('gang-held')).toBe(true);
    // Staged at load, written by the commit the load kicks.
    await vi.waitFor(async () => expect((await h.history('gang.')).map((e) => [e.kind, e.attributes.gang])).toEqual([['gang.quarantined', 'gang-held']]));

    // The agent re-reports its ranks (status, then its inventory with a shard of a gang nobody knows):
    // the unknown one is stopped — the marker that the inventory was decided — and the quarantined ones are not.
    await h.gangs.shardStatus('n1', report('gang-held', 0));
    await h.gangs.shardInventory('n1', [0, 1, 2, 3].map((r) => report('gang-held', r)).concat(report('gang-nobody', 0)));
    expect(stops(h.told).map((s) => s.gangId)).toEqual(['gang-nobody']);
    // Untouched in the store: the same bytes.
    expect((await h.inner.get(GANGS_PREFIX + 'gang-held'))!.value).toEqual(Gang.encode(heldGang).finish());

    // Its group and its ports stay taken: another gang on the group is refused.
    await expect(h.gangs.launch({ ...heldGang.spec!, name: 'newcomer', placementGroup: 'held' })).rejects.toMatchObject({ code: ErrorCode.ALREADY_EXISTS, message: expect.stringMatching(/quarantined gang Old_Name/) });

    h.told.length = 0;
    const stopped = await h.gangs.stop('gang-held');
    expect(stopped.message).toMatch(/deleted by hand/);
    expect(await h.inner.get(GANGS_PREFIX + 'gang-held')).toBeUndefined();
    expect(stops(h.told)).toEqual([{ gangId: 'gang-held', attempt: 0, reason: 'quarantined gang Old_Name deleted by hand' }]);
    expect(() => h.gangs.get('gang-held')).toThrow(/no gang "gang-held"/);
    expect((await h.history('gang.')).map((e) => e.kind)).toEqual(['gang.quarantined', 'gang.deleted']);
    // Deleted, it is an unknown gang: a rank still reported is stopped.
    h.told.length = 0;
    await h.gangs.shardStatus('n1', report('gang-held', 1));
    expect(stops(h.told).map((s) => s.gangId)).toEqual(['gang-held']);
  });

  it('one whose value does not decode is shown by its key; its ranks are left running; stopping it tells every live node', async () => {
    const h = await harness([[GANGS_PREFIX + 'gang-broken', UNDECODABLE]]);
    expect(h.gangs.get('gang-broken')).toMatchObject({ id: 'gang-broken', state: G.GANG_STATE_UNSPECIFIED, message: expect.stringMatching(/^quarantined: .*does not decode/) });
    await h.gangs.shardInventory('n1', [report('gang-broken', 0), report('gang-nobody', 0)]);
    expect(stops(h.told).map((s) => s.gangId)).toEqual(['gang-nobody']);
    h.told.length = 0;
    await h.gangs.stop('gang-broken');
    expect(stops(h.told).map((s) => s.gangId)).toEqual(['gang-broken']);
    expect(await h.inner.get(GANGS_PREFIX + 'gang-broken')).toBeUndefined();
  });
});

describe('a stored placement group the head cannot read', () => {
  it('keeps its bundles (scheduling, agents\' snapshots, node death), is shown as quarantined, and removing it releases them', async () => {
    const h = await harness([[PGS_PREFIX + heldPg.id, PlacementGroup.encode(heldPg).finish()]]);
    const shown = h.pgs.get('held');
    expect(shown).toMatchObject({ id: 'pg-held', state: P.PLACEMENT_GROUP_STATE_CREATED, placements: heldPg.placements, reason: { code: 'QUARANTINED', message: expect.stringMatching(/priority.*delete it, or run a head version/) } });
    expect(h.pgs.list().map((pg) => pg.id)).toEqual(['pg-held']);
    expect(h.pgs.snapshotFor('n1')).toEqual({ groups: [{ groupId: 'pg-held', bundles: heldPg.placements }], more: false });
    await h.pgs.sync(); // the load's event is written by the next cycle
    expect((await h.history('pg.')).map((e) => [e.kind, e.attributes.pg])).toEqual([['pg.quarantined', 'pg-held']]);
    // Its name stays taken, and a gang cannot be launched on it.
    await expect(h.pgs.create({ ...heldPg.spec!, priority: 0 })).rejects.toMatchObject({ code: ErrorCode.ALREADY_EXISTS });
    await expect(h.gangs.launch({ ...heldGang.spec!, name: 'newcomer', placementGroup: 'held' })).rejects.toMatchObject({ code: ErrorCode.FAILED_PRECONDITION, message: expect.stringMatching(/quarantined/) });

    // Its GPUs are not handed to another group: n1's 4 GPUs are all held.
    const other = await h.pgs.create({ name: 'other', strategy: 'PACK', bundles: [bundle(1)], topology: [], matchLabels: {}, tolerations: [], priority: 0 });
    await h.pgs.sync();
    expect(h.pgs.get(other.id)).toMatchObject({ placements: [] });
    expect([P.PLACEMENT_GROUP_STATE_PENDING, P.PLACEMENT_GROUP_STATE_INFEASIBLE]).toContain(h.pgs.get(other.id).state);

    // Its node dies: it is not rescheduled, nor its record rewritten.
    await h.kill();
    await h.pgs.sync();
    expect(h.pgs.get('pg-held')).toMatchObject({ state: P.PLACEMENT_GROUP_STATE_CREATED, placements: heldPg.placements });
    expect((await h.inner.get(PGS_PREFIX + 'pg-held'))!.value).toEqual(PlacementGroup.encode(heldPg).finish());
    expect((await h.history('pg.')).map((e) => e.kind)).not.toContain('pg.rescheduling');
  });

  it('removed by hand, its key goes, its bundles are released on its node, and its GPUs are placed again', async () => {
    const h = await harness([[PGS_PREFIX + heldPg.id, PlacementGroup.encode(heldPg).finish()]]);
    const other = await h.pgs.create({ name: 'other', strategy: 'PACK', bundles: [bundle(4)], topology: [], matchLabels: {}, tolerations: [], priority: 0 });
    await h.pgs.sync();
    expect(h.pgs.get(other.id).placements).toEqual([]);
    h.told.length = 0;
    const removed = await h.pgs.remove('held');
    expect(removed.state).toBe(P.PLACEMENT_GROUP_STATE_REMOVED);
    expect(await h.inner.get(PGS_PREFIX + 'pg-held')).toBeUndefined();
    expect(h.told.map((m) => m.msg?.$case === 'releaseBundles' && m.msg.value.groupId)).toEqual(['pg-held']);
    expect((await h.history('pg.')).map((e) => [e.kind, e.attributes.pg])).toEqual(expect.arrayContaining([['pg.quarantined', 'pg-held'], ['pg.removed', 'pg-held']]));
    expect((await h.pgs.wait(other.id, 5_000)).state).toBe(P.PLACEMENT_GROUP_STATE_CREATED);
  });

  it('one whose value does not decode is shown by its key and removable; a gang on it is not moved by its unknown placements', async () => {
    const h = await harness([
      [PGS_PREFIX + 'pg-broken', UNDECODABLE],
      [GANGS_PREFIX + heldGang.id, Gang.encode({ ...heldGang, placementGroupId: 'pg-broken', spec: { ...heldGang.spec!, name: 'valid', placementGroup: 'pg-broken' } }).finish()],
      // A marker: this one's `gang.quarantined` event is written by the commit the gangs' load kicks, with what the load decided.
      [GANGS_PREFIX + 'gang-marker', UNDECODABLE],
    ]);
    expect(h.pgs.get('pg-broken')).toMatchObject({ id: 'pg-broken', state: P.PLACEMENT_GROUP_STATE_UNSPECIFIED, placements: [], reason: { code: 'QUARANTINED' } });
    await vi.waitFor(async () => expect((await h.history('gang.')).map((e) => e.kind)).toContain('gang.quarantined'));
    // The valid gang on it was decided at load (its group's placements would have said "moved off n1"): it still runs.
    expect(h.gangs.get('gang-held')).toMatchObject({ state: G.GANG_STATE_READY, ranks: heldGang.ranks });
    expect(stops(h.told)).toEqual([]);
    h.told.length = 0;
    await h.pgs.remove('pg-broken');
    expect(await h.inner.get(PGS_PREFIX + 'pg-broken')).toBeUndefined();
    expect(h.told.map((m) => m.msg?.$case === 'releaseBundles' && m.msg.value.groupId)).toContain('pg-broken');
  });
});

/**
 * The replica group controller's stored layout (rg-store.ts) on a real
 * embedded store: one key per replica, a change of one replica writes its
 * key (and the group's, when the group's own fields move), nothing is left
 * behind by scale-down or deletion, an old inline record is read and
 * migrated, and a failed commit of group + replica keys changes nothing in
 * memory (split in two transactions, memory follows what the store kept).
 * The same layout on etcd: test/integration/rg-keys.test.ts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode } from '@muster/common';
import { GangState as G, Replica, ReplicaGroup, type ReplicaGroupSpec } from '@muster/proto';
import { clusterSummary } from '../api/summary.js';
import type { KeyValue } from '../state/store.js';
import type { ReplicaGroupController } from './replica-groups.js';
import { rgHarness } from './rg-controller.test-support.js';
import { RGS_PREFIX, groupKey, replicaKey, replicasPrefix } from './rg-store.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const spec = (initial: number): ReplicaGroupSpec => ({
  name: 'web', template: { command: 'node', args: [], env: {}, cwd: '', ports: [], readiness: undefined, liveness: undefined }, replicas: { min: 0, max: 200, initial },
}) as unknown as ReplicaGroupSpec;

type Inner = Awaited<ReturnType<typeof rgHarness>>['inner'];
const keysUnder = async (inner: Inner): Promise<Map<string, KeyValue>> => new Map((await inner.range(RGS_PREFIX)).kvs.map((kv) => [kv.key, kv]));
const placed = (rgs: ReplicaGroupController, n: number) =>
  vi.waitFor(() => expect(rgs.get('web').replicas.filter((r) => r.gangId && r.state === 'starting')).toHaveLength(n), { timeout: 10_000 });

describe('replica group layout in the store', () => {
  it('one key per replica and a group record without them; one replica turning READY rewrites its key and the group key only; a new leader reads the same group', async () => {
    const { inner, rgs, ready, restart } = await rgHarness(cleanups);
    await rgs.apply(spec(20));
    await placed(rgs, 20);
    const before = await keysUnder(inner);
    expect([...before.keys()].sort()).toEqual([groupKey('web'), ...rgs.get('web').replicas.map((r) => replicaKey('web', r.id))].sort());
    expect(ReplicaGroup.decode(before.get(groupKey('web'))!.value).replicas).toEqual([]);
    for (const r of rgs.get('web').replicas) expect(Replica.decode(before.get(replicaKey('web', r.id))!.value)).toEqual(r);

    const one = rgs.get('web').replicas[7]!;
    ready(one.gangId);
    await vi.waitFor(() => expect(rgs.get('web').replicas.find((r) => r.id === one.id)!.state).toBe('ready'), { timeout: 5_000 });
    const after = await keysUnder(inner);
    const rewritten = [...after].filter(([k, kv]) => kv.modRevision !== before.get(k)?.modRevision).map(([k]) => k);
    expect(rewritten.sort()).toEqual([groupKey('web'), replicaKey('web', one.id)].sort());

    const answer = rgs.get('web');
    const next = await restart();
    expect(next.get('web')).toEqual(answer);
    expect(next.list()).toEqual([answer]);
  });

  it('scale-down deletes the keys of the replicas that went; deleting the group leaves no key behind', async () => {
    const { inner, rgs, allReady } = await rgHarness(cleanups);
    await rgs.apply(spec(8));
    await placed(rgs, 8);
    allReady();
    await vi.waitFor(() => expect(rgs.get('web').replicas.filter((r) => r.state === 'ready')).toHaveLength(8), { timeout: 5_000 });
    await rgs.scale('web', 3);
    await vi.waitFor(() => expect(rgs.get('web').replicas).toHaveLength(3), { timeout: 10_000 });
    expect([...(await keysUnder(inner)).keys()].sort()).toEqual([groupKey('web'), ...rgs.get('web').replicas.map((r) => replicaKey('web', r.id))].sort());

    await rgs.delete('web');
    await vi.waitFor(() => expect(() => rgs.get('web')).toThrow(/no replica group/), { timeout: 10_000 });
    expect([...(await keysUnder(inner)).keys()]).toEqual([]);
  });

  it('replica keys of a group with no record (a deletion cut short) are deleted by the next leader', async () => {
    const { inner, rgs, restart } = await rgHarness(cleanups);
    await rgs.apply(spec(2));
    await placed(rgs, 2);
    const [stray] = rgs.get('web').replicas;
    await inner.put(replicaKey('gone', stray!.id), Replica.encode(stray!).finish());
    const next = await restart();
    await vi.waitFor(async () => expect(await inner.get(replicaKey('gone', stray!.id))).toBeUndefined(), { timeout: 5_000 });
    expect(next.list().map((g) => g.name)).toEqual(['web']);
    expect((await keysUnder(inner)).size).toBe(3);
  });

  it('a group whose record cannot be read is quarantined: shown, its replica keys kept (an event says so), orphans of other groups still go; delete lets go of its gangs and groups, then its keys', async () => {
    const { inner, rgs, restart, storedEvents, gangsPort, pgsPort } = await rgHarness(cleanups);
    await rgs.apply(spec(2));
    await placed(rgs, 2);
    const [stray] = rgs.get('web').replicas;
    const held = rgs.get('web').replicas;
    await inner.put(replicaKey('gone', stray!.id), Replica.encode(stray!).finish());
    await inner.put(groupKey('web'), new Uint8Array([0xff, 0xff, 0xff]));
    const kept = [...(await keysUnder(inner)).keys()].filter((k) => k.startsWith(replicasPrefix('web')));
    expect(kept).toHaveLength(2);
    const next = await restart();
    // The orphan's deletion is the marker that load() finished its clean-up.
    await vi.waitFor(async () => expect(await inner.get(replicaKey('gone', stray!.id))).toBeUndefined(), { timeout: 5_000 });
    expect(next.list().map((g) => g.name)).toEqual(['web']);
    expect(next.get('web')).toMatchObject({ name: 'web', replicas: held, message: expect.stringMatching(/^quarantined: .*does not decode.*delete it, or run a head version that accepts it/) });
    expect(next.isQuarantined('web')).toBe(true);
    // The cluster summary (muster status) counts it from the controller itself.
    expect(clusterSummary({ nodes: [], pgs: { list: () => [] }, gangs: { list: () => [] }, replicaGroups: next })).toMatchObject({ replicaGroups: 1, replicaGroupsQuarantined: 1 });
    // What it holds stays held: its gangs are not collected, its placement groups not moved by others.
    for (const r of held) {
      expect(next.holdsGang(r.gangId)).toBe(true);
      expect(next.owns(r.placementGroupId)).toBe(true);
    }
    await expect(next.scale('web', 3)).rejects.toMatchObject({ code: ErrorCode.FAILED_PRECONDITION, message: expect.stringMatching(/quarantined.*scale is refused/) });
    await expect(next.apply(spec(1))).rejects.toMatchObject({ code: ErrorCode.FAILED_PRECONDITION });
    expect([...(await keysUnder(inner)).keys()].filter((k) => k.startsWith(replicasPrefix('web'))).sort()).toEqual(kept.sort());
    expect(await storedEvents()).toContain('rg.quarantined');

    await next.delete('web');
    for (const r of held) {
      expect(gangsPort.get(r.gangId).state).toBe(G.GANG_STATE_STOPPED);
      expect(() => pgsPort.get(r.placementGroupId)).toThrow();
    }
    expect([...(await keysUnder(inner)).keys()]).toEqual([]);
    expect(() => next.get('web')).toThrow(/no replica group/);
    expect(await storedEvents()).toContain('rg.deleted');
  });

  it('a group whose stored spec a stricter head refuses is quarantined as stored, not reconciled, and a later head that accepts it runs it again', async () => {
    const { inner, rgs, restart, gangsPort } = await rgHarness(cleanups);
    await rgs.apply(spec(2));
    await placed(rgs, 2);
    const record = ReplicaGroup.decode((await inner.get(groupKey('web')))!.value);
    const bytes = ReplicaGroup.encode({ ...record, spec: { ...record.spec!, drainDeadlineMs: 7_200_000 }, desired: 0 }).finish();
    await inner.put(groupKey('web'), bytes);
    const next = await restart();
    expect(next.get('web')).toMatchObject({ desired: 0, replicas: rgs.get('web').replicas, message: expect.stringMatching(/^quarantined: .*drainDeadlineMs/) });
    // desired 0 would drain both replicas if it were reconciled: its gangs keep running, its keys are as they were.
    // Marker: another group applied after the restart is reconciled (placed) by the same controller.
    await next.apply({ ...spec(1), name: 'other' });
    await vi.waitFor(() => expect(next.get('other').replicas.filter((r) => r.gangId)).toHaveLength(1), { timeout: 10_000 });
    for (const r of rgs.get('web').replicas) expect(gangsPort.get(r.gangId).state).not.toBe(G.GANG_STATE_STOPPED);
    expect((await inner.get(groupKey('web')))!.value).toEqual(bytes);
    await inner.put(groupKey('web'), ReplicaGroup.encode(record).finish());
    const fixed = await restart();
    expect(fixed.isQuarantined('web')).toBe(false);
    expect(fixed.get('web').replicas).toEqual(rgs.get('web').replicas);
  });

  it('a group with a replica key that does not decode is quarantined whole (it would replace the replica it cannot see); delete removes that key too', async () => {
    const { inner, rgs, restart } = await rgHarness(cleanups);
    await rgs.apply(spec(2));
    await placed(rgs, 2);
    await inner.put(replicaKey('web', 'rbroken'), new Uint8Array([0xff, 0xff, 0xff]));
    const next = await restart();
    expect(next.get('web')).toMatchObject({ replicas: rgs.get('web').replicas, message: expect.stringMatching(/^quarantined: .*replica key \/muster\/rgs\/web\/replicas\/rbroken does not decode/) });
    await next.delete('web');
    expect([...(await keysUnder(inner)).keys()]).toEqual([]);
  });

  it('a new group does not inherit replica keys a deleted group of its name left: its first commit clears them', async () => {
    const { inner, rgs, restart } = await rgHarness(cleanups);
    const stray = { id: 'rstray', revision: 'old', state: 'ready', placementGroupId: 'pg-old', gangId: 'gang-old', subject: 's', message: '', createdAtMs: 1, replaces: '' } as Replica;
    await inner.put(replicaKey('web', stray.id), Replica.encode(stray).finish());
    await rgs.apply(spec(0));
    expect(await inner.get(replicaKey('web', stray.id))).toBeUndefined();
    expect((await restart()).get('web').replicas).toEqual([]);
  });

  it('a large scale-up is made a pass at a time: a scale of the group waits for one pass, not for every replica, and each pass stores its ids', async () => {
    const { rgs, pgsPort } = await rgHarness(cleanups);
    const create = pgsPort.create.bind(pgsPort);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let asked = 0;
    vi.spyOn(pgsPort, 'create').mockImplementation(async (...args) => {
      asked++;
      await gate;
      return create(...args);
    });
    await rgs.apply(spec(48));
    // The first pass is making its replicas (held at the gate); the scale queues behind it.
    await vi.waitFor(() => expect(asked).toBeGreaterThan(0), { timeout: 5_000 });
    const scaled = rgs.scale('web', 50).then(() => rgs.get('web').replicas.filter((r) => r.gangId).length);
    open();
    // Answered after one pass of at most 16, long before all 48 are made.
    expect(await scaled).toBeLessThanOrEqual(16);
    await placed(rgs, 50);
  });

  it('scale-down stops gangs together and frees their placement groups in one batched remove', async () => {
    const { rgs, allReady, removeBatches } = await rgHarness(cleanups);
    await rgs.apply(spec(8));
    await placed(rgs, 8);
    allReady();
    await vi.waitFor(() => expect(rgs.get('web').replicas.filter((r) => r.state === 'ready')).toHaveLength(8), { timeout: 5_000 });
    await rgs.scale('web', 3);
    await vi.waitFor(() => expect(rgs.get('web').replicas).toHaveLength(3), { timeout: 10_000 });
    expect(removeBatches).toEqual([5]);
  });

  it('an old record with its replicas inline is read as it is and migrated by its first write', async () => {
    const { inner, rgs, restart } = await rgHarness(cleanups);
    await rgs.apply(spec(3));
    await placed(rgs, 3);
    const answer = rgs.get('web');
    // The store as an older head left it: the replicas inside the group record, no replica keys.
    await inner.deletePrefix(replicasPrefix('web'));
    await inner.put(groupKey('web'), ReplicaGroup.encode(answer).finish());

    const next = await restart();
    expect(next.get('web')).toEqual(answer);
    await next.scale('web', 4);
    const record = ReplicaGroup.decode((await inner.get(groupKey('web')))!.value);
    expect(record).toMatchObject({ desired: 4, replicas: [] });
    const keyed = (await inner.range(replicasPrefix('web'))).kvs.map((kv) => Replica.decode(kv.value));
    expect(keyed.map((r) => r.id).sort()).toEqual(answer.replicas.map((r) => r.id).sort());
    await placed(next, 4);
    const migrated = next.get('web');
    expect((await restart()).get('web')).toEqual(migrated);
  });

  it('a failed commit of group and replica keys changes nothing in memory or in the store', async () => {
    const { inner, store, rgs, allReady } = await rgHarness(cleanups);
    await rgs.apply(spec(3));
    await placed(rgs, 3);
    const before = structuredClone(rgs.get('web'));
    const stored = await keysUnder(inner);

    store.failWrites({ prefix: RGS_PREFIX });
    const failedBefore = store.failed;
    const seen: unknown[] = [];
    // Three replicas turn READY: their keys and the group's (a new membership version) in one commit.
    allReady();
    await vi.waitFor(() => {
      seen.push(structuredClone(rgs.get('web')));
      expect(store.failed).toBeGreaterThan(failedBefore);
    }, { timeout: 5_000, interval: 1 });
    for (const rg of seen) expect(rg).toEqual(before);
    expect(rgs.get('web')).toEqual(before);
    expect(await keysUnder(inner)).toEqual(stored);

    store.heal();
    await vi.waitFor(() => expect(rgs.get('web').replicas.filter((r) => r.state === 'ready')).toHaveLength(3), { timeout: 5_000 });
    expect(rgs.get('web').membershipVersion).toBe(before.membershipVersion + 1);
  });

  it('a commit split in two transactions that fails half-way: memory takes what the store kept, and the group converges with no stray key', async () => {
    const { inner, store, rgs, restart } = await rgHarness(cleanups);
    await rgs.apply(spec(1));
    await placed(rgs, 1);
    await rgs.scale('web', 151);
    // The reconcile this kicked stores 150 new replica keys and the group key: two transactions
    // (100 ops each at most); the first goes through, the second fails.
    store.failWrites({ prefix: RGS_PREFIX, after: 1, times: 1 });
    await vi.waitFor(() => expect(store.failed).toBe(1), { timeout: 10_000 });
    // Never the 151 of the failed commit: the one replica before it, or the 101 the store kept (read back).
    expect([1, 101]).toContain(rgs.get('web').replicas.length);
    await placed(rgs, 151);
    const answer = rgs.get('web');
    expect(new Set(answer.replicas.map((r) => r.id)).size).toBe(151);
    expect([...(await keysUnder(inner)).keys()].sort()).toEqual([groupKey('web'), ...answer.replicas.map((r) => replicaKey('web', r.id))].sort());
    expect((await restart()).get('web')).toEqual(answer);
  });
});

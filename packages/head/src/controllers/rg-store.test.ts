/** The stored layout of a replica group (rg-store.ts): which keys a change writes, how a walk is read back, old inline records. */
import { describe, expect, it, vi } from 'vitest';
import { Replica, ReplicaGroup } from '@muster/proto';
import type { KeyValue } from '../state/store.js';
import { GROUP_MESSAGE_BYTES, REPLICA_MESSAGE_BYTES, assemble, bounded, cut, groupKey, parseKey, replicaKey, replicasPrefix, storeOps, type StoredGroup } from './rg-store.js';

const replica = (id: string, over: Partial<Replica> = {}): Replica => ({
  id, revision: 'rev1', state: 'starting', placementGroupId: `pg-${id}`, gangId: `gang-${id}`, subject: `muster.rg.g.${id}`, message: '', createdAtMs: 1, replaces: '', ...over,
});
const group = (replicas: Replica[], over: Partial<ReplicaGroup> = {}): ReplicaGroup => ({
  name: 'g', spec: undefined, desired: replicas.length, revision: 'rev1', stableRevision: '', replicas, membershipVersion: 0,
  message: 'ok', createdAtMs: 1, deleting: false, stableSpec: undefined, autoscaler: undefined, ...over,
});
const stored = (rg: ReplicaGroup, inline = false): StoredGroup => ({ rg, keyed: new Map(inline ? [] : rg.replicas.map((r) => [r.id, Replica.encode(r).finish()] as const)), inline });
const kv = (key: string, value: Uint8Array): KeyValue => ({ key, value, createRevision: 1, modRevision: 1, version: 1 });
const keys = (ops: ReturnType<typeof storeOps>) => ({ puts: ops.puts.map(([k]) => k), deletes: ops.deletes });

describe('keys', () => {
  it('one key for the group, one per replica under <group>/replicas/, and back', () => {
    expect(groupKey('web')).toBe('/muster/rgs/web');
    expect(replicaKey('web', 'r1')).toBe('/muster/rgs/web/replicas/r1');
    expect(parseKey('/muster/rgs/web')).toEqual({ group: 'web' });
    expect(parseKey('/muster/rgs/web/replicas/r1')).toEqual({ group: 'web', replica: 'r1' });
    for (const bad of ['/muster/rgs/', '/muster/rgs/web/other/r1', '/muster/rgs/web/replicas/', '/muster/pgs/x']) expect(parseKey(bad)).toBeUndefined();
  });
});

describe('storeOps', () => {
  const three = group([replica('a'), replica('b'), replica('c')]);

  it('a new group: every replica key, then the group key, whose value carries no replicas', () => {
    const ops = storeOps(undefined, three);
    expect(keys(ops)).toEqual({ puts: [replicaKey('g', 'a'), replicaKey('g', 'b'), replicaKey('g', 'c'), groupKey('g')], deletes: [] });
    expect(ReplicaGroup.decode(ops.puts.at(-1)![1]).replicas).toEqual([]);
    expect([...ops.keyed.keys()]).toEqual(['a', 'b', 'c']);
    expect(ops.clear).toBe(replicasPrefix('g'));
  });

  it('one replica changed: its key only; the group key is left alone', () => {
    const next = { ...three, replicas: [three.replicas[0]!, { ...three.replicas[1]!, state: 'ready' }, three.replicas[2]!] };
    const ops = storeOps(stored(three), next);
    expect(keys(ops)).toEqual({ puts: [replicaKey('g', 'b')], deletes: [] });
    expect(Replica.decode(ops.puts[0]![1]).state).toBe('ready');
  });

  it('an equal copy of a replica is no change; nothing to write', () => {
    expect(keys(storeOps(stored(three), { ...three, replicas: three.replicas.map((r) => ({ ...r })) }))).toEqual({ puts: [], deletes: [] });
  });

  it('a replica gone: its key deleted; a group field changed: the group key', () => {
    const ops = storeOps(stored(three), { ...three, desired: 2, replicas: three.replicas.slice(0, 2) });
    expect(keys(ops)).toEqual({ puts: [groupKey('g')], deletes: [replicaKey('g', 'c')] });
    expect([...ops.keyed.keys()]).toEqual(['a', 'b']);
    expect(ops.clear).toBeUndefined();
  });

  it("the autoscaler's soft timers alone do not rewrite the group key", () => {
    expect(keys(storeOps(stored(three), { ...three, autoscaler: { aboveSinceMs: 5, belowSinceMs: 0, idleSinceMs: 0, lastChangeMs: 0, lastReason: 'x', otherMetrics: {}, belowPeaks: [] } }))).toEqual({ puts: [], deletes: [] });
  });

  it('an old inline record: every replica to its key, stray keys deleted, the group rewritten without them', () => {
    const old: StoredGroup = { rg: three, keyed: new Map(['a', 'zz'].map((id) => [id, Replica.encode(replica(id)).finish()] as const)), inline: true };
    const ops = storeOps(old, three);
    expect(keys(ops)).toEqual({ puts: [replicaKey('g', 'a'), replicaKey('g', 'b'), replicaKey('g', 'c'), groupKey('g')], deletes: [replicaKey('g', 'zz')] });
    expect(ReplicaGroup.decode(ops.puts.at(-1)![1]).replicas).toEqual([]);
  });

  it('a group message over its bound, as the planner makes it again each pass, is no change once bounded', () => {
    const long = 'x'.repeat(GROUP_MESSAGE_BYTES * 2);
    const kept = stored(bounded(group([replica('a')], { message: long })));
    expect(keys(storeOps(kept, bounded(group([replica('a')], { message: long }))))).toEqual({ puts: [], deletes: [] });
  });

  it('encodes each replica at most once per write, and not at all when it is the object last stored; keeps the bytes stored', () => {
    const s = stored(three);
    const encode = vi.spyOn(Replica, 'encode');
    try {
      const copies = storeOps(s, { ...three, replicas: three.replicas.map((r) => (r.id === 'b' ? { ...r, state: 'ready' } : { ...r })) });
      expect(encode).toHaveBeenCalledTimes(3);
      expect(keys(copies).puts).toEqual([replicaKey('g', 'b')]);
      expect(copies.keyed.get('b')).toBe(copies.puts[0]![1]);
      expect(copies.keyed.get('a')).toBe(s.keyed.get('a'));
      encode.mockClear();
      storeOps(s, { ...three, replicas: three.replicas.map((r) => (r.id === 'b' ? { ...r, state: 'ready' } : r)) });
      expect(encode).toHaveBeenCalledTimes(1);
    } finally {
      encode.mockRestore();
    }
  });
});

describe('assemble', () => {
  const rec = (rg: ReplicaGroup) => kv(groupKey(rg.name), ReplicaGroup.encode(rg).finish());
  const rep = (g: string, r: Replica) => kv(replicaKey(g, r.id), Replica.encode(r).finish());

  it('a group from its keys, replicas in creation order (ties by id), in any key order', () => {
    const [x, y, z] = [replica('x', { createdAtMs: 3 }), replica('y', { createdAtMs: 1 }), replica('w', { createdAtMs: 1 })];
    const { groups, orphans, skipped } = assemble([rep('g', x), rec(group([])), rep('g', y), rep('g', z)]);
    expect(groups).toHaveLength(1);
    expect(groups[0]!.rg.replicas.map((r) => r.id)).toEqual(['w', 'y', 'x']);
    expect(groups[0]!.inline).toBe(false);
    expect([...groups[0]!.keyed.keys()].sort()).toEqual(['w', 'x', 'y']);
    expect(Replica.decode(groups[0]!.keyed.get('x')!)).toEqual(x);
    expect([orphans, skipped]).toEqual([[], []]);
  });

  it('an inline record is the truth over keys a cut-short migration left; those keys are known (to be deleted)', () => {
    const inline = group([replica('a'), replica('b')]);
    const { groups } = assemble([rec(inline), rep('g', replica('a', { state: 'ready' })), rep('g', replica('old'))]);
    expect(groups[0]!.rg.replicas).toEqual(inline.replicas);
    expect(groups[0]!.inline).toBe(true);
    expect([...groups[0]!.keyed.keys()].sort()).toEqual(['a', 'old']);
  });

  it('replica keys without a group record are orphans; unreadable keys are skipped', () => {
    const { groups, orphans, skipped } = assemble([rep('gone', replica('a')), kv('/muster/rgs/g/replicas/a', Replica.encode(replica('b')).finish()), kv('/muster/rgs/g/x/y', new Uint8Array())]);
    expect(groups).toEqual([]);
    expect(orphans).toEqual([replicaKey('gone', 'a')]);
    expect(skipped).toEqual(['/muster/rgs/g/replicas/a', '/muster/rgs/g/x/y']);
  });

  it('replica keys of a group whose record cannot be read are no orphans: they are kept, the group named unreadable', () => {
    const { groups, orphans, skipped, unreadable, strays } = assemble([kv(groupKey('g'), new Uint8Array([0xff, 0xff, 0xff])), rep('g', replica('a')), rep('gone', replica('b'))]);
    expect(groups).toEqual([]);
    expect(skipped).toEqual([groupKey('g')]);
    expect(unreadable).toEqual(['g']);
    expect(orphans).toEqual([replicaKey('gone', 'b')]);
    // What is known of it, for the controller to quarantine: its name and its readable replicas.
    expect(strays.map((g) => ({ name: g.rg.name, replicas: g.rg.replicas.map((r) => r.id), keyed: [...g.keyed.keys()] }))).toEqual([{ name: 'g', replicas: ['a'], keyed: ['a'] }]);
  });
});

describe('size bounds', () => {
  it('messages are cut to their byte bounds (on a code point), objects kept when nothing is cut', () => {
    const long = 'é'.repeat(REPLICA_MESSAGE_BYTES);
    const rg = group([replica('a', { message: long }), replica('b')], { message: 'x'.repeat(GROUP_MESSAGE_BYTES + 1) });
    const b = bounded(rg);
    expect(Buffer.byteLength(b.replicas[0]!.message)).toBeLessThanOrEqual(REPLICA_MESSAGE_BYTES);
    expect(b.replicas[0]!.message).toMatch(/^é+…$/);
    expect(b.replicas[1]).toBe(rg.replicas[1]);
    expect(Buffer.byteLength(b.message)).toBeLessThanOrEqual(GROUP_MESSAGE_BYTES);
    const small = group([replica('a')]);
    expect(bounded(small)).toBe(small);
    expect(cut('abc', 3)).toBe('abc');
  });

  it('a replica key stays under 2 KiB with the longest message and long ids', () => {
    const r = replica('r'.repeat(16), { message: 'm'.repeat(10_000), subject: 's'.repeat(300), placementGroupId: 'p'.repeat(64), gangId: 'g'.repeat(64), revision: 'v'.repeat(64), replaces: 'q'.repeat(16) });
    const [[key, value]] = storeOps(undefined, bounded(group([r]))).puts as [[string, Uint8Array]];
    expect(key.length + value.byteLength).toBeLessThan(2048);
  });
});

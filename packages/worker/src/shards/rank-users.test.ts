/**
 * Who ranks run as (rank-users.ts) for each combination of flags and host,
 * on injected host facts: root gets a uid per gang from the default range,
 * a worker that cannot switch users runs ranks as itself (warned once) and
 * refuses a --shard-user it cannot honour, naming the flag; ids outside the
 * user namespace's map are refused at start. And the uid allocation of
 * rank-homes.ts: stable per gang, distinct between gangs, never a uid some
 * process already runs as.
 */
import { chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HomeIndex } from './home-index.js';
import { cachedUidInUse, userForGang } from './rank-homes.js';
import { covered, DEFAULT_SHARD_UID_RANGE, resolveRankUsers, type HostFacts, type RankUserFlags } from './rank-users.js';

const FULL_MAP = '         0          0 4294967295\n';
const root: HostFacts = { uid: 0, gid: 0, canSwitch: true, uidMap: FULL_MAP, gidMap: FULL_MAP, lookupUser: async (n) => (n === 'muster-rank' ? { uid: 991, gid: 992 } : undefined) };
const plain: HostFacts = { ...root, uid: 1000, gid: 1000, canSwitch: false };

async function resolve(flags: RankUserFlags, host: HostFacts) {
  const warnings: string[] = [];
  try {
    return { policy: await resolveRankUsers(flags, host, (m) => warnings.push(m)), warnings };
  } catch (e) {
    return { error: e as Error & { code: string; details: { field?: string } }, warnings };
  }
}

describe('resolveRankUsers', () => {
  it.each<[string, RankUserFlags, HostFacts, object]>([
    ['root, no flags: a uid per gang from the default range', {}, root, { policy: { kind: 'per-gang', ...DEFAULT_SHARD_UID_RANGE } }],
    ['root, --shard-uid-range', { shardUidRange: '5000-5999' }, root, { policy: { kind: 'per-gang', first: 5000, last: 5999 } }],
    ['root, --shard-user uid', { shardUser: '4242' }, root, { policy: { kind: 'fixed', user: { uid: 4242, gid: 4242 } } }],
    ['root, --shard-user uid:gid', { shardUser: '4242:100' }, root, { policy: { kind: 'fixed', user: { uid: 4242, gid: 100 } } }],
    ['root, --shard-user name', { shardUser: 'muster-rank' }, root, { policy: { kind: 'fixed', user: { uid: 991, gid: 992 } } }],
    ['not root, --shard-user its own uid', { shardUser: '1000' }, plain, { policy: { kind: 'fixed', user: { uid: 1000, gid: 1000 } } }],
  ])('%s', async (_what, flags, host, want) => {
    const r = await resolve(flags, host);
    expect(r).toMatchObject(want);
    expect(r.warnings).toEqual([]);
  });

  it('root, --shard-user 0: ranks run as root, with a warning that says so', async () => {
    const r = await resolve({ shardUser: '0:0' }, root);
    expect(r.policy).toEqual({ kind: 'fixed', user: { uid: 0, gid: 0 } });
    expect(r.warnings).toEqual(['--shard-user 0:0: ranks run as root and can read every credential of this node']);
  });

  it('not root, no flags: ranks run as the worker, with one warning that says what that exposes', async () => {
    const r = await resolve({}, plain);
    expect(r.policy).toEqual({ kind: 'worker' });
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(/ranks run as the worker's own uid 1000.*can read this worker's token/);
  });

  it.each<[string, RankUserFlags, HostFacts, string, RegExp]>([
    ['not root, --shard-user another uid', { shardUser: '2000' }, plain, 'shardUser', /--shard-user 2000 \(uid 2000, gid 2000\): this worker runs as uid 1000, not root, and cannot switch ranks to it; run the worker as root/],
    ['not root, --shard-uid-range', { shardUidRange: '5000-5999' }, plain, 'shardUidRange', /--shard-uid-range 5000-5999: this worker runs as uid 1000/],
    ['both flags', { shardUser: '4242', shardUidRange: '5000-5999' }, root, 'shardUser', /exclude each other/],
    ['an unknown user name', { shardUser: 'nobody-here' }, root, 'shardUser', /--shard-user nobody-here: no such user on this host/],
    ['a malformed user', { shardUser: 'a b' }, root, 'shardUser', /expected a user name or uid\[:gid\]/],
    ['a range backwards', { shardUidRange: '6000-5000' }, root, 'shardUidRange', /expected FIRST-LAST with 1 ≤ FIRST ≤ LAST/],
    ['a range from uid 0', { shardUidRange: '0-10' }, root, 'shardUidRange', /1 ≤ FIRST/],
    ['a range outside the user namespace', { shardUidRange: '70000-70010' }, { ...root, uidMap: '0 100000 65536\n' }, 'shardUidRange', /uids 70000-70010 are not all mapped in \/proc\/self\/uid_map/],
    ['the default range outside the user namespace', {}, { ...root, uidMap: '0 100000 65536\n', gidMap: '0 100000 65536\n' }, 'shardUidRange', /the default per-gang uid range: uids 200000-299999 are not all mapped.*gids 200000-299999/],
  ])('refuses %s, naming the flag', async (_what, flags, host, field, message) => {
    const r = await resolve(flags, host);
    expect(r.error).toMatchObject({ code: 'MUSTER_INVALID_ARGUMENT', details: { field } });
    expect(r.error?.message).toMatch(message);
  });
});

describe('covered', () => {
  it.each<[string | undefined, number, number, boolean]>([
    [undefined, 0, 4294967294, true],
    [FULL_MAP, 200000, 299999, true],
    ['0 100000 65536', 1000, 65535, true],
    ['0 100000 65536', 1000, 65536, false],
    ['0 1000 1\n1 100000 65536', 0, 65536, true], // two adjoining lines
    ['0 1000 1\n5 100000 10', 0, 7, false], // a hole at 1-4
    ['', 0, 0, false],
  ])('map %j covers %d-%d: %s', (map, first, last, want) => {
    expect(covered(map, first, last)).toBe(want);
  });
});

describe('userForGang', () => {
  const perGang = { kind: 'per-gang', first: 300, last: 309 } as const;
  const none = () => false;

  it('gives a gang the uid it already runs under, and another gang another uid', () => {
    const a = userForGang(perGang, 'gang-a', new Map(), none)!;
    expect(a.gid).toBe(a.uid);
    expect(a.uid).toBeGreaterThanOrEqual(300);
    expect(a.uid).toBeLessThanOrEqual(309);
    const live = new Map([['gang-a', a]]);
    expect(userForGang(perGang, 'gang-a', live, none)).toEqual(a);
    for (let i = 0; i < 9; i++) {
      const other = userForGang(perGang, `gang-${i}`, live, none)!;
      expect(other.uid).not.toBe(a.uid);
      live.set(`gang-${i}`, other);
    }
  });

  it('the same gang id starts its search at the same uid (a restarted gang gets its home back)', () => {
    expect(userForGang(perGang, 'gang-x', new Map(), none)).toEqual(userForGang(perGang, 'gang-x', new Map(), none));
  });

  it('never picks a uid some process runs as, and says so when none is left', () => {
    const first = userForGang(perGang, 'gang-a', new Map(), none)!.uid;
    expect(userForGang(perGang, 'gang-a', new Map(), (u) => u === first)?.uid).not.toBe(first);
    expect(() => userForGang(perGang, 'gang-a', new Map(), () => true)).toThrow(/no free rank uid in 300-309.*widen --shard-uid-range/);
  });

  it('fixed and worker policies', () => {
    expect(userForGang({ kind: 'fixed', user: { uid: 7, gid: 8 } }, 'g', new Map(), none)).toEqual({ uid: 7, gid: 8 });
    expect(userForGang({ kind: 'worker' }, 'g', new Map(), none)).toBeUndefined();
  });
});

describe('HomeIndex', () => {
  it('names the uids that own other gangs\' homes, not this gang\'s, so a kept home keeps its uid to itself', () => {
    const homes = mkdtempSync(join(tmpdir(), 'muster-homes-'));
    try {
      expect(HomeIndex.scan(join(homes, 'none')).size).toBe(0);
      mkdirSync(join(homes, 'gang-old'));
      mkdirSync(join(homes, 'gang-me'));
      const isRoot = process.getuid?.() === 0;
      if (isRoot) chownSync(join(homes, 'gang-old'), 200_123, 200_123);
      const index = HomeIndex.scan(homes);
      expect(index.heldByOther(isRoot ? 200_123 : process.getuid!(), 'gang-me')).toBe(true);
      if (isRoot) expect(index.heldByOther(0, 'gang-me')).toBe(false); // gang-me (owned by root here) is this gang's own
      // A uid held by a kept home is skipped like one a process runs as.
      const perGangOne = { kind: 'per-gang' as const, first: 200_123, last: 200_124 };
      expect(userForGang(perGangOne, 'gang-new', new Map(), (uid) => index.heldByOther(uid, 'gang-new'))?.uid).toBe(isRoot ? 200_124 : 200_123);
    } finally {
      rmSync(homes, { recursive: true, force: true });
    }
  });

  it('follows homes made, re-owned and removed without reading the disk again', () => {
    const index = new HomeIndex();
    index.set('a', 7);
    index.set('b', 7);
    expect(index.heldByOther(7, 'a')).toBe(true); // b holds it too
    index.set('b', 8); // b's home re-made for another uid
    expect(index.heldByOther(7, 'a')).toBe(false);
    expect(index.heldByOther(8, 'a')).toBe(true);
    index.delete('b');
    index.delete('b'); // twice: no-op
    expect(index.heldByOther(8, 'a')).toBe(false);
    expect(index.size).toBe(1);
  });
});

describe('cachedUidInUse', () => {
  it('scans once per ttl, only when asked, and again once the ttl passed', () => {
    let now = 0;
    let scans = 0;
    const snapshots = cachedUidInUse(1_000, () => now, () => (scans++, new Set([7])));
    const first = snapshots();
    expect(scans).toBe(0); // lazily: a launch that needs no check scans nothing
    expect(first(7)).toBe(true);
    expect(first(8)).toBe(false);
    now = 999;
    expect(snapshots()(7)).toBe(true);
    expect(scans).toBe(1);
    now = 1_000;
    expect(snapshots()(8)).toBe(false);
    expect(scans).toBe(2);
  });

  it('reads real uids from /proc: this process runs as its own', () => {
    expect(cachedUidInUse()()(process.getuid?.() ?? 0)).toBe(true);
  });
});

/** Membership versions only grow: stored before announced, and a version read back from the store is numbered on from. */
import { describe, expect, it } from 'vitest';
import type { Membership, ReplicaGroup } from '@muster/proto';
import { MembershipFeed } from './rg-membership.js';

const rg = (ready: string[]): ReplicaGroup => ({
  name: 'g', spec: undefined, desired: ready.length, revision: 'r1', stableRevision: '', membershipVersion: 0, message: '', createdAtMs: 0, deleting: false, stableSpec: undefined, autoscaler: undefined,
  replicas: ready.map((id) => ({ id, revision: 'r1', state: 'ready', placementGroupId: '', gangId: '', subject: `s.${id}`, message: '', createdAtMs: 0, replaces: '' })),
});

describe('MembershipFeed', () => {
  it('proposes the next version only when the members change, and announces only what is committed', async () => {
    const feed = new MembershipFeed('g', 4);
    const heard: Membership[] = [];
    const abort = new AbortController();
    const watching = (async () => {
      for await (const m of feed.watch(abort.signal)) heard.push(m);
    })();
    const next = feed.propose(rg(['a']), 0)!;
    expect(next.version).toBe(5);
    expect(feed.propose(rg([]), 0)).toBeUndefined();
    // Not committed (its write failed): the next proposal reuses the number, nobody heard 5.
    expect(feed.propose(rg(['a']), 0)!.version).toBe(5);
    feed.commit(next);
    await new Promise((r) => setImmediate(r));
    expect(heard.map((m) => m.version)).toEqual([4, 5]);
    abort.abort();
    await watching;
  });

  it('numbers on from a higher stored version without announcing it, and never goes back', () => {
    const feed = new MembershipFeed('g', 4);
    feed.observeStored(9);
    expect(feed.version).toBe(9);
    feed.observeStored(2);
    expect(feed.version).toBe(9);
    expect(feed.propose(rg(['a']), 0)!.version).toBe(10);
  });
});

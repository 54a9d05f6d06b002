import { describe, expect, it } from 'vitest';
import { ErrorCode, isMusterError } from '@muster/common';
import { Balancer, type ReplicaState } from './balancer.js';
import type { Membership } from './types.js';

const group = 'g';
const members = (version: number, spec: Record<string, string[]>, revisionWeights?: Record<string, number>): Membership => ({
  group,
  version,
  replicas: Object.entries(spec).flatMap(([rev, ids]) => ids.map((id) => ({ replicaId: id, revision: rev, subject: `muster.rg.g.${id}` }))),
  ...(revisionWeights ? { revisionWeights } : {}),
});
const balancer = (o: Partial<ConstructorParameters<typeof Balancer>[0]> = {}) => new Balancer({ group, maxOngoing: 4, maxQueued: 2, reportFreshMs: 3_000, ...o });

function countPicks(b: Balancer, n: number): Map<string, number> {
  const seen = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const r = b.tryAcquire()!;
    seen.set(r.info.replicaId, (seen.get(r.info.replicaId) ?? 0) + 1);
    b.release(r);
  }
  return seen;
}

describe('Balancer', () => {
  it('keeps the newest membership and ignores older, equal or foreign ones', () => {
    const b = balancer();
    expect(b.update(members(2, { r1: ['a'] }))).toBe(true);
    expect(b.update(members(1, { r1: ['a', 'b'] }))).toBe(false);
    expect(b.update(members(2, { r1: ['a', 'b'] }))).toBe(false);
    expect(b.update({ ...members(3, { r1: ['x'] }), group: 'other' })).toBe(false);
    expect(b.membership?.version).toBe(2);
    expect(b.stats().map((s) => s.replicaId)).toEqual(['a']);
  });

  it('splits traffic by revision weight, and by replica count without weights', () => {
    const b = balancer();
    b.update(members(1, { stable: ['a', 'b'], canary: ['c'] }, { stable: 0.8, canary: 0.2 }));
    const w = countPicks(b, 1_000);
    // Smooth weighted round robin: exact shares, no sampling noise.
    expect(w.get('c')).toBe(200);
    expect(Math.abs((w.get('a') ?? 0) - 400)).toBeLessThan(80);
    b.update(members(2, { stable: ['a', 'b'], canary: ['c'] }));
    const n = countPicks(b, 9_000);
    for (const id of ['a', 'b', 'c']) expect(Math.abs((n.get(id) ?? 0) - 3_000)).toBeLessThan(300);
  });

  it('gives a revision of weight 0 no traffic (blue/green before the switch)', () => {
    const b = balancer();
    b.update(members(1, { blue: ['a'], green: ['b'] }, { blue: 1, green: 0 }));
    expect([...countPicks(b, 500).keys()]).toEqual(['a']);
  });

  it('prefers the less loaded of two candidates, counting fresh reported queues', () => {
    const b = balancer({ maxOngoing: 100 });
    b.update(members(1, { r: ['a', 'b'] }));
    b.report({ v: 1, replicaId: 'a', inFlight: 0, queued: 50, timeMs: Date.now() });
    // With two replicas both are always compared: the one with the reported queue never wins.
    expect([...countPicks(b, 200).keys()]).toEqual(['b']);
    const held: ReplicaState[] = [];
    for (let i = 0; i < 60; i++) held.push(b.tryAcquire()!);
    // b now carries 50 in flight + a's 50 queued: they alternate.
    expect(new Set(held.map((r) => r.info.replicaId))).toEqual(new Set(['a', 'b']));
  });

  it('ignores stale load reports', () => {
    let now = 1_000_000;
    const realNow = Date.now;
    Date.now = () => now;
    try {
      const b = balancer({ maxOngoing: 100 });
      b.update(members(1, { r: ['a', 'b'] }));
      b.report({ v: 1, replicaId: 'a', inFlight: 0, queued: 50, timeMs: now });
      now += 5_000;
      expect(countPicks(b, 400).get('a')).toBeGreaterThan(100);
    } finally {
      Date.now = realNow;
    }
  });

  it('queues when every replica is full, hands freed slots out in FIFO order, and refuses beyond maxQueued', () => {
    const b = balancer({ maxOngoing: 1, maxQueued: 2 });
    b.update(members(1, { r: ['a'] }));
    const first = b.tryAcquire()!;
    expect(b.tryAcquire()).toBeUndefined();
    const order: string[] = [];
    b.enqueue(undefined, () => order.push('w1'));
    b.enqueue(undefined, () => order.push('w2'));
    let err: unknown;
    try {
      b.enqueue(undefined, () => order.push('w3'));
    } catch (e) {
      err = e;
    }
    expect(isMusterError(err) && err.code).toBe(ErrorCode.BACKPRESSURE);
    expect((err as Error).message).toMatch(/replica group "g" is saturated.*maxOngoingPerReplica=1.*2 more \(maxQueued\).*scale the group up/);
    b.release(first);
    expect(order).toEqual(['w1']);
    expect(b.queued).toBe(1);
  });

  it('lets a waiter that already tried the free replica not block the next one', () => {
    const b = balancer({ maxOngoing: 1, maxQueued: 10 });
    b.update(members(1, { r: ['a'] }));
    const held = b.tryAcquire()!;
    const got: string[] = [];
    b.enqueue(new Set(['a']), () => got.push('tried-a'));
    b.enqueue(undefined, () => got.push('fresh'));
    b.release(held);
    expect(got).toEqual(['fresh']);
  });

  it('wakes waiters when a membership brings replicas, and skips an unreachable one across versions until its next load report', () => {
    const b = balancer();
    const got: string[] = [];
    b.enqueue(undefined, (r) => got.push(r.info.replicaId));
    expect(b.waitError(undefined, 10).code).toBe(ErrorCode.NO_REPLICAS);
    b.update(members(1, { r: ['a'] }));
    expect(got).toEqual(['a']);
    const a = b.tryAcquire()!;
    b.markUnreachable(a);
    b.release(a);
    expect(b.tryAcquire()).toBeUndefined();
    expect(b.waitError(undefined, 10).message).toMatch(/no ready replica/);
    b.update(members(2, { r: ['a'] }));
    expect(b.tryAcquire()).toBeUndefined();
    b.report({ v: 1, replicaId: 'a', inFlight: 0, queued: 0, timeMs: Date.now() });
    expect(b.tryAcquire()?.info.replicaId).toBe('a');
  });

  it('makes an unreachable replica a candidate again on its next load report, unless it is draining, and wakes a waiter', () => {
    // After a NATS outage the router may be back before a replica is: "no responders" until the replica's first report.
    const b = balancer();
    b.update(members(1, { r: ['a'] }));
    const a = b.tryAcquire()!;
    b.markUnreachable(a);
    b.release(a);
    const got: string[] = [];
    b.enqueue(undefined, (r) => got.push(r.info.replicaId));
    b.report({ v: 1, replicaId: 'a', inFlight: 0, queued: 0, timeMs: Date.now(), draining: true });
    expect(got).toEqual([]);
    expect(b.tryAcquire()).toBeUndefined();
    b.report({ v: 1, replicaId: 'a', inFlight: 0, queued: 0, timeMs: Date.now() });
    expect(got).toEqual(['a']);
  });
});

describe('a replica restarted under the same id', () => {
  const load = (incarnation: string | undefined) => ({ v: 1 as const, replicaId: 'r1', inFlight: 0, queued: 0, timeMs: Date.now(), ...(incarnation ? { incarnation } : {}) });

  it('is replaced when a report with a new incarnation follows one with another, not before', () => {
    const b = balancer();
    b.update(members(1, { rev: ['r1'] }));
    b.report(load('a'));
    b.report(load('a'));
    expect(b.replacedAt('r1')).toBeUndefined();
    const before = Date.now();
    b.report(load('b'));
    expect(b.replacedAt('r1')).toBeGreaterThanOrEqual(before);
    const at = b.replacedAt('r1');
    b.report(load('b'));
    expect(b.replacedAt('r1')).toBe(at);
  });

  it('is never replaced by reports without an incarnation (an older serve())', () => {
    const b = balancer();
    b.update(members(1, { rev: ['r1'] }));
    b.report(load(undefined));
    b.report(load('a'));
    b.report(load(undefined));
    expect(b.replacedAt('r1')).toBeUndefined();
  });

  it('keeps no report of a replica it does not know (the map is bounded by the membership)', () => {
    const b = balancer();
    b.update(members(1, { rev: ['r1'] }));
    b.report({ ...load('a'), replicaId: 'made-up' });
    expect(b.lastReportAt('made-up')).toBeUndefined();
    b.report(load('a'));
    expect(b.lastReportAt('r1')).toBeDefined();
  });

  it('takes the per-replica limit from the group (membership) unless the caller set one', () => {
    const hold = (b: Balancer) => {
      let n = 0;
      while (b.tryAcquire()) n++;
      return n;
    };
    const fromGroup = balancer({ maxOngoing: undefined });
    fromGroup.update(members(1, { r: ['a'] }));
    expect(hold(fromGroup)).toBe(32); // an older head sends no limit: the router's default
    fromGroup.update({ ...members(2, { r: ['a'] }), maxInFlightPerReplica: 1024 });
    expect(hold(fromGroup)).toBe(1024 - 32);
    const own = balancer({ maxOngoing: 4 });
    own.update({ ...members(1, { r: ['a'] }), maxInFlightPerReplica: 1024 });
    expect(hold(own)).toBe(4);
  });

  it('a raised group limit hands free slots to waiting calls at once', () => {
    const b = balancer({ maxOngoing: undefined, maxQueued: 10 });
    b.update({ ...members(1, { r: ['a'] }), maxInFlightPerReplica: 1 });
    expect(b.tryAcquire()).toBeDefined();
    const granted: string[] = [];
    b.enqueue(undefined, (r) => granted.push(r.info.replicaId));
    expect(granted).toEqual([]);
    b.update({ ...members(2, { r: ['a'] }), maxInFlightPerReplica: 2 });
    expect(granted).toEqual(['a']);
  });
});

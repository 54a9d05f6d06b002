/**
 * The prefix routing policy: rendezvous hashing with bounded loads
 * (prefix-policy.ts), where its keys come from (route-key.ts), and the
 * balancer's hook that applies it to one revision's replicas.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Balancer, type ReplicaState } from './balancer.js';
import { hashKey, PrefixPicker, type PrefixCandidate } from './prefix-policy.js';
import { routeKeyOf, routeTextOf, type RouteHint } from './route-key.js';
import type { Membership } from './types.js';

const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `r${from + i}`);
const idle = (names: string[]): PrefixCandidate[] => names.map((id) => ({ id, load: 0, usable: true }));
const keys = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

/** Where each key goes among idle replicas. */
function assign(p: PrefixPicker, names: string[]): Map<string, string> {
  const c = idle(names);
  return new Map(keys.map((k) => [k, names[p.pick(hashKey(k), c, 1.25)!.index]!]));
}

describe('PrefixPicker', () => {
  it('sends the same key to the same replica, in every router, whatever the order of the membership', () => {
    const names = ids(5);
    const a = new PrefixPicker();
    const b = new PrefixPicker();
    for (const k of keys.slice(0, 200)) {
      const first = names[a.pick(hashKey(k), idle(names), 1.25)!.index];
      expect(names[a.pick(hashKey(k), idle(names), 1.25)!.index]).toBe(first);
      const reversed = [...names].reverse();
      expect(reversed[b.pick(hashKey(k), idle(reversed), 1.25)!.index]).toBe(first);
    }
  });

  it('spreads different keys evenly over the replicas', () => {
    const counts = new Map<string, number>();
    for (const r of assign(new PrefixPicker(), ids(5)).values()) counts.set(r, (counts.get(r) ?? 0) + 1);
    expect(counts.size).toBe(5);
    for (const n of counts.values()) {
      expect(n / keys.length).toBeGreaterThan(0.17);
      expect(n / keys.length).toBeLessThan(0.23);
    }
  });

  it('moves only the keys of an added or removed replica (~1/n of them)', () => {
    const p = new PrefixPicker();
    const four = assign(p, ids(4));
    const five = assign(p, ids(5));
    const moved = keys.filter((k) => four.get(k) !== five.get(k));
    expect(moved.every((k) => five.get(k) === 'r4')).toBe(true); // all to the new one
    expect(moved.length / keys.length).toBeGreaterThan(0.17);
    expect(moved.length / keys.length).toBeLessThan(0.23);
    // Removing r1: only r1's keys move, and they spread over the rest.
    const without = assign(p, ['r0', 'r2', 'r3', 'r4']);
    for (const k of keys) if (five.get(k) !== 'r1') expect(without.get(k)).toBe(five.get(k));
    expect(new Set(keys.filter((k) => five.get(k) === 'r1').map((k) => without.get(k))).size).toBe(4);
  });

  it('keeps every pick within the bound ceil(c × (L + 1) / n), or on the least loaded usable replica', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ load: fc.nat(50), usable: fc.boolean() }), { minLength: 1, maxLength: 8 }), fc.double({ min: 1, max: 3, noNaN: true }), fc.string(), (cs, c, key) => {
        const all = cs.map((x, i) => ({ id: `r${i}`, ...x }));
        const picked = new PrefixPicker().pick(hashKey(key), all, c);
        const usable = all.filter((x) => x.usable);
        if (usable.length === 0) return picked === undefined;
        const chosen = all[picked!.index]!;
        const cap = Math.ceil((c * (all.reduce((n, x) => n + x.load, 0) + 1)) / all.length);
        return chosen.usable && (chosen.load + 1 <= cap || chosen.load === Math.min(...usable.map((x) => x.load)));
      }),
    );
  });
});

const prefixMembership = (n: number, loadFactor = 1.25): Membership => ({
  group: 'g',
  version: 1,
  replicas: ids(n).map((id) => ({ replicaId: id, revision: 'v1', subject: `muster.rg.g.${id}` })),
  routing: { policy: 'prefix', prefixChars: 8, loadFactor },
});
const hint = (key?: string, text?: string, payload?: unknown): RouteHint => ({ key, text, payload });

describe('Balancer with the prefix policy', () => {
  it('sends a hot key to its replica while load is balanced, then spills to its next choices within c × the average', () => {
    const b = new Balancer({ group: 'g', maxQueued: 10, reportFreshMs: 3_000, maxOngoing: 1_000 });
    b.update(prefixMembership(4));
    const held: ReplicaState[] = [];
    const first = b.tryAcquire(undefined, hint('hot'))!;
    b.release(first);
    for (let i = 0; i < 100; i++) held.push(b.tryAcquire(undefined, hint('hot'))!);
    const per = new Map<string, number>();
    for (const r of held) per.set(r.info.replicaId, (per.get(r.info.replicaId) ?? 0) + 1);
    expect(per.get(first.info.replicaId)).toBe(Math.max(...per.values())); // the preferred one holds the most
    expect(Math.max(...per.values())).toBeLessThanOrEqual(Math.ceil((1.25 * 100) / 4));
    expect(per.size).toBe(4); // spilled
    expect(b.prefixRoutes.hit).toBeGreaterThan(0);
    expect(b.prefixRoutes.fallback).toBeGreaterThan(0);
    expect(b.prefixRoutes.hit + b.prefixRoutes.fallback).toBe(101);
    // Released, the key goes home again.
    for (const r of held) b.release(r);
    expect(b.tryAcquire(undefined, hint('hot'))!.info.replicaId).toBe(first.info.replicaId);
  });

  it('keys on the first prefixChars characters of a prompt, a retry goes to another replica, and an unkeyed call is p2c', () => {
    const b = new Balancer({ group: 'g', maxQueued: 10, reportFreshMs: 3_000 });
    b.update(prefixMembership(3));
    const a = b.tryAcquire(undefined, hint(undefined, 'SYSTEM: one user question'))!;
    b.release(a);
    const same = b.tryAcquire(undefined, hint(undefined, undefined, { prompt: 'SYSTEM: another question' }))!;
    expect(same.info.replicaId).toBe(a.info.replicaId); // same first 8 characters
    b.release(same);
    const retry = b.tryAcquire(new Set([a.info.replicaId]), hint(undefined, 'SYSTEM: x'))!;
    expect(retry.info.replicaId).not.toBe(a.info.replicaId);
    b.release(retry);
    b.tryAcquire(undefined, hint(undefined, undefined, { no: 'prompt' }));
    expect(b.prefixRoutes).toEqual({ hit: 2, fallback: 1, unkeyed: 1 });
  });

  it("computes a call's key once, on first use: its retries and turns in the queue reuse it", () => {
    const b = new Balancer({ group: 'g', maxQueued: 10, reportFreshMs: 3_000, maxOngoing: 1 });
    b.update(prefixMembership(2));
    let computed = 0;
    const route: RouteHint = { key: undefined, text: () => (computed++, 'SYSTEM: same'), payload: undefined };
    const first = b.tryAcquire(undefined, route)!;
    const retry = b.tryAcquire(new Set([first.info.replicaId]), route)!;
    expect(retry.info.replicaId).not.toBe(first.info.replicaId);
    let granted: ReplicaState | undefined;
    b.enqueue(undefined, (r) => (granted = r), route);
    b.release(first);
    expect(granted?.info.replicaId).toBe(first.info.replicaId);
    expect(computed).toBe(1);
  });

  it('ignores keys under p2c', () => {
    const b = new Balancer({ group: 'g', maxQueued: 10, reportFreshMs: 3_000, random: () => 0.4 });
    b.update({ ...prefixMembership(3), routing: { policy: 'p2c', prefixChars: 256, loadFactor: 1.25 } });
    b.tryAcquire(undefined, hint('k'));
    // A caller's text given as a function (the gateway's) is not even computed.
    let computed = 0;
    b.tryAcquire(undefined, { key: undefined, text: () => (computed++, 'SYSTEM: x'), payload: undefined });
    expect(computed).toBe(0);
    expect(b.prefixRoutes).toEqual({ hit: 0, fallback: 0, unkeyed: 0 });
  });
});

describe('route keys', () => {
  it('reads prompts, messages and bridge payloads; a caller key wins and never equals a prompt key', () => {
    expect(routeTextOf({ prompt: 'hello' })).toBe('hello');
    expect(routeTextOf({ prompt: ['a', 'b'] })).toBe('a\nb');
    expect(routeTextOf({ prompt: [1, 2, 3] })).toBe('1,2,3');
    expect(routeTextOf({ messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: [{ type: 'text', text: 'hi' }] }] })).toBe('system\nbe brief\nuser\nhi');
    expect(routeTextOf({ method: 'POST', path: '/v1/completions', body: { prompt: 'p' } })).toBe('p');
    expect(routeTextOf({ messages: [{ role: 'system', content: 'x'.repeat(100) }, { role: 'user', content: 'y' }] }, 10)).toBe('system\nxxx');
    expect(routeTextOf('text')).toBeUndefined();
    expect(routeTextOf({ prompt: '' })).toBeUndefined();
    expect(routeKeyOf(hint('abc', 'abc'), 3)).not.toBe(routeKeyOf(hint(undefined, 'abc'), 3));
    expect(routeKeyOf(hint(undefined, 'abcdef'), 3)).toBe(routeKeyOf(hint(undefined, 'abcxyz'), 3));
    expect(routeKeyOf({ key: undefined, text: () => 'abcdef', payload: undefined }, 3)).toBe(routeKeyOf(hint(undefined, 'abc'), 3));
  });

  it('stops reading a message\'s parts once the limit is reached', () => {
    const unread = { type: 'text', get text(): string { throw new Error('read past the limit'); } };
    expect(routeTextOf({ messages: [{ role: 'user', content: [{ type: 'text', text: 'x'.repeat(20) }, unread] }] }, 10)).toBe('user\nxxxxx');
    expect(routeTextOf({ prompt: Array.from({ length: 100_000 }, (_, i) => i) }, 9)).toBe('0,1,2,3,4');
  });
});

/**
 * Overflow's decision (pure, table-driven), the pressure the balancer reports
 * for it, and the Overflow runtime against fake overflow routers: where a
 * call goes, that it goes to exactly one place, one hop only, refusals with
 * back-pressure naming both groups, and an overflow router opened, replaced
 * and reopened as the membership and its feed say.
 */
import { describe, expect, it, vi } from 'vitest';
import { ErrorCode, isMusterError } from '@muster/common';
import { Balancer } from './balancer.js';
import { decideOverflow, isOverflowHop, Overflow, saturation, type GroupPressure, type OverflowTarget } from './overflow.js';
import type { CallOptions, Membership, OverflowRule } from './types.js';
import { recordRouterCall } from './metrics.js';

vi.mock('./metrics.js', async (original) => ({ ...(await original<typeof import('./metrics.js')>()), recordRouterCall: vi.fn() }));

const idle: GroupPressure = { readyReplicas: 1, freeSlot: true, waiting: 0, reportedQueued: 0, queueFull: false };
const p = (o: Partial<GroupPressure>): GroupPressure => ({ ...idle, ...o });
const queueRule: OverflowRule = { group: 'small', queuePerReplicaAbove: 1 };
const bpRule: OverflowRule = { group: 'small', onBackPressure: true };

describe('saturation', () => {
  it.each([
    ['a free slot and nothing waiting', queueRule, idle, false],
    ['one waiting with the new call: 1 per replica, not above 1', queueRule, p({ freeSlot: false }), false],
    ['two waiting with the new call: above 1', queueRule, p({ freeSlot: false, waiting: 1 }), true],
    ['reported queues count, a free slot here or not', queueRule, p({ reportedQueued: 2 }), true],
    ['spread over replicas: 3 waiting over 2 is 1.5', queueRule, p({ readyReplicas: 2, freeSlot: false, waiting: 2 }), true],
    ['4 waiting over 4 replicas is 1', queueRule, p({ readyReplicas: 4, freeSlot: false, waiting: 3 }), false],
    ['no ready replica counts as one: the new call waits alone', queueRule, p({ readyReplicas: 0, freeSlot: false }), false],
    ['0: any call that would wait', { group: 's', queuePerReplicaAbove: 0 }, p({ freeSlot: false }), true],
    ['0: not a call that is sent at once', { group: 's', queuePerReplicaAbove: 0 }, idle, false],
    ['back-pressure: queue full and no slot', bpRule, p({ freeSlot: false, queueFull: true, waiting: 5 }), true],
    ['back-pressure: a free slot wins over a full queue', bpRule, p({ queueFull: true }), false],
    ['back-pressure: no slot but room to wait', bpRule, p({ freeSlot: false, waiting: 4 }), false],
    ['both rules: either one', { group: 's', queuePerReplicaAbove: 100, onBackPressure: true }, p({ freeSlot: false, queueFull: true }), true],
  ] as const)('%s', (_name, rule, pressure, saturated) => {
    expect(saturation(pressure, rule) !== undefined).toBe(saturated);
  });

  it('says why, with the numbers', () => {
    expect(saturation(p({ freeSlot: false, waiting: 2 }), queueRule)).toBe('3 calls would wait per ready replica (3 over 1), above queuePerReplicaAbove=1');
  });
});

describe('decideOverflow', () => {
  const busy = p({ freeSlot: false, waiting: 3 });
  const full = p({ freeSlot: false, waiting: 3, queueFull: true });
  it.each([
    ['no rule: always the primary', undefined, busy, idle, 'primary'],
    ['primary not saturated', queueRule, idle, idle, 'primary'],
    ['saturated, overflow group idle', queueRule, busy, idle, 'overflow'],
    // A threshold, not a limit: a call the overflow group cannot take waits in the primary while its queue has room.
    ['saturated, overflow group saturated by the same rule: waits in the primary', queueRule, busy, busy, 'primary'],
    ['saturated, overflow group with no ready replica: waits in the primary', queueRule, busy, p({ readyReplicas: 0 }), 'primary'],
    ['saturated, overflow router not open: waits in the primary', queueRule, busy, { unavailable: 'its router is still opening' }, 'primary'],
    ['primary full, overflow group saturated', queueRule, full, busy, 'refuse'],
    ['primary full, overflow group with no ready replica', queueRule, full, p({ readyReplicas: 0 }), 'refuse'],
    ['primary full, overflow router not open', queueRule, full, { unavailable: 'its router is still opening' }, 'refuse'],
    ['primary full but a free slot: sent there', queueRule, p({ waiting: 3, queueFull: true }), busy, 'primary'],
    ['back-pressure rule: the overflow group may still queue', bpRule, p({ freeSlot: false, queueFull: true }), p({ freeSlot: false, waiting: 10 }), 'overflow'],
    ['back-pressure rule, overflow group unavailable: refused', bpRule, p({ freeSlot: false, queueFull: true }), { unavailable: 'x' }, 'refuse'],
  ] as const)('%s', (_name, rule, primary, target, route) => {
    expect(decideOverflow(rule, primary, target).route).toBe(route);
  });

  it('a refusal names the overflow group and why it could not take the call', () => {
    const d = decideOverflow(queueRule, full, p({ readyReplicas: 0 }));
    expect(d).toEqual({ route: 'refuse', why: expect.stringContaining('its overflow group "small" has no ready replica') });
  });
});

describe('Balancer.pressure', () => {
  const m: Membership = { group: 'g', version: 1, replicas: ['a', 'b'].map((id) => ({ replicaId: id, revision: 'r', subject: `muster.rg.g.${id}` })) };
  it('counts ready replicas, free slots, waiting calls and fresh reported queues', () => {
    const b = new Balancer({ group: 'g', maxOngoing: 1, maxQueued: 1, reportFreshMs: 3_000 });
    expect(b.pressure()).toEqual({ readyReplicas: 0, freeSlot: false, waiting: 0, reportedQueued: 0, queueFull: false });
    b.update(m);
    b.report({ v: 1, replicaId: 'a', inFlight: 1, queued: 4, timeMs: Date.now() });
    expect(b.pressure()).toEqual({ readyReplicas: 2, freeSlot: true, waiting: 0, reportedQueued: 4, queueFull: false });
    b.tryAcquire();
    b.tryAcquire();
    b.enqueue(undefined, () => undefined);
    expect(b.pressure()).toEqual({ readyReplicas: 2, freeSlot: false, waiting: 1, reportedQueued: 4, queueFull: true });
  });

  it("counts an HTTP replica's engine queue (its report's engine.waiting) with its bridge's", () => {
    const b = new Balancer({ group: 'g', maxOngoing: 1, maxQueued: 1, reportFreshMs: 3_000 });
    b.update(m);
    b.report({ v: 1, replicaId: 'a', inFlight: 1, queued: 1, timeMs: Date.now(), engine: { waiting: 7, running: 8 } });
    b.report({ v: 1, replicaId: 'b', inFlight: 1, queued: 0, timeMs: Date.now(), engine: { running: 3 } });
    expect(b.pressure().reportedQueued).toBe(8);
    // A report with no engine part replaces one with it: its waiting count is not kept.
    b.report({ v: 1, replicaId: 'a', inFlight: 1, queued: 1, timeMs: Date.now() });
    expect(b.pressure().reportedQueued).toBe(1);
  });
});

/** A fake overflow router: records calls; its pressure and feed error are set by the test. */
function fakeTarget(pressure: GroupPressure = idle) {
  const calls: { payload: unknown; opts: CallOptions | undefined }[] = [];
  const t: OverflowTarget & { calls: typeof calls; released: number; wants: number; pressureNow: GroupPressure; feedError: unknown } = {
    calls,
    released: 0,
    wants: 0,
    wanted: () => void t.wants++,
    pressureNow: pressure,
    feedError: undefined,
    pressure: () => t.pressureNow,
    call: (payload, opts) => {
      calls.push({ payload, opts });
      return Promise.resolve({ from: 'small', payload });
    },
    stream: async function* (payload) {
      yield { from: 'small', payload };
    },
  };
  return t;
}

describe('Overflow', () => {
  const busy = () => p({ freeSlot: false, waiting: 3 });
  const full = () => p({ freeSlot: false, waiting: 3, queueFull: true });
  const opened = async (o: Overflow) => {
    for (let i = 0; i < 10 && o.stats()?.readyReplicas !== 1 && o.stats()?.unavailable === undefined; i++) await Promise.resolve();
  };

  it('sends a saturated call to the overflow group once, marked so that it is not overflowed again, and counts it', async () => {
    const t = fakeTarget();
    const o = new Overflow('big', async () => ({ target: t, release: () => t.released++ }));
    o.update(queueRule);
    await opened(o);
    expect(o.call('x', undefined, () => idle)).toBeUndefined();
    await expect(o.call('y', { timeoutMs: 5 }, busy)).resolves.toEqual({ from: 'small', payload: 'y' });
    expect(t.calls).toHaveLength(1);
    expect(t.calls[0]!.opts).toEqual({ timeoutMs: 5 });
    expect(isOverflowHop(t.calls[0]!.opts)).toBe(true);
    // The overflow group's router, asked with those options, does not overflow them again.
    expect(o.call('z', t.calls[0]!.opts, busy)).toBeUndefined();
    expect(o.stats()).toEqual({ group: 'small', readyReplicas: 1, sent: 1, refused: 0 });
  });

  it("gives the overflow group the payload as the caller's overflowPayload writes it, and only when the call overflows", async () => {
    const t = fakeTarget();
    const o = new Overflow('big', async () => ({ target: t, release: () => undefined }));
    o.update(queueRule);
    await opened(o);
    const asked: string[] = [];
    const overflowPayload = (to: string, payload: unknown) => (asked.push(to), { for: to, payload });
    expect(o.call('x', { overflowPayload }, () => idle)).toBeUndefined();
    await expect(o.call('y', { overflowPayload }, busy)).resolves.toEqual({ from: 'small', payload: { for: 'small', payload: 'y' } });
    expect(asked).toEqual(['small']);
    expect(t.calls[0]!.opts).toEqual({});
  });

  it('refuses with back-pressure naming both groups when the overflow group is saturated too', async () => {
    const t = fakeTarget(p({ freeSlot: false, waiting: 9 }));
    const o = new Overflow('big', async () => ({ target: t, release: () => undefined }));
    o.update(queueRule);
    await opened(o);
    expect(o.call('w', undefined, busy)).toBeUndefined(); // room to wait in the primary: it stays there
    const err = await o.call('y', undefined, full)!.catch((e: unknown) => e);
    expect(isMusterError(err) && err.code).toBe(ErrorCode.BACKPRESSURE);
    expect((err as Error).message).toMatch(/replica group "big" is saturated: .*its overflow group "small" is saturated too/);
    expect(() => o.stream('s', undefined, full)).toThrow(expect.objectContaining({ code: ErrorCode.BACKPRESSURE }));
    expect(t.calls).toHaveLength(0);
    expect(o.stats()).toMatchObject({ sent: 0, refused: 2 });
    // Each refusal is one of the group's router calls too (muster_router_requests_total), with its code.
    expect(vi.mocked(recordRouterCall).mock.calls.filter(([g, , code]) => g === 'big' && code === ErrorCode.BACKPRESSURE)).toHaveLength(2);
  });

  it('tells an overflow group at zero replicas about the calls it could have taken (its demand), and keeps them on the primary', async () => {
    const t = fakeTarget(p({ readyReplicas: 0, freeSlot: false }));
    const o = new Overflow('big', async () => ({ target: t, release: () => undefined }));
    o.update(queueRule);
    await opened(o);
    expect(o.call('x', undefined, () => idle)).toBeUndefined();
    expect(t.wants).toBe(0); // not saturated: nothing wanted it
    expect(o.call('y', undefined, busy)).toBeUndefined();
    await expect(o.call('z', undefined, full)).rejects.toThrow(/overflow group "small" has no ready replica/);
    expect(t.wants).toBe(2);
    expect(t.calls).toHaveLength(0);
  });

  it('streams through the overflow group', async () => {
    const t = fakeTarget();
    const o = new Overflow('big', async () => ({ target: t, release: () => undefined }));
    o.update(bpRule);
    await opened(o);
    const s = o.stream('s', undefined, () => p({ freeSlot: false, queueFull: true }))!;
    expect((await s.next()).value).toEqual({ from: 'small', payload: 's' });
  });

  it('closes the old router when the overflow group changes or goes, and opens none without an opener or to itself', async () => {
    const made: string[] = [];
    const released: string[] = [];
    const o = new Overflow('big', async (g) => {
      made.push(g);
      return { target: fakeTarget(), release: () => released.push(g) };
    });
    o.update(queueRule);
    await opened(o);
    o.update(queueRule); // same group: kept
    o.update({ group: 'other', onBackPressure: true });
    await opened(o);
    o.update(undefined);
    o.update({ group: 'big', queuePerReplicaAbove: 0 });
    expect(made).toEqual(['small', 'other']);
    expect(released).toEqual(['small', 'other']);
    expect(o.stats()).toBeUndefined();
    const none = new Overflow('big', undefined);
    none.update(queueRule);
    expect(none.call('x', undefined, busy)).toBeUndefined();
  });

  it('refuses while the overflow router cannot be opened, saying why, and tries again later', async () => {
    let fail = true;
    let opens = 0;
    const t = fakeTarget();
    const now = Date.now();
    const o = new Overflow('big', async () => {
      opens++;
      if (fail) throw new Error('this client may not call replica group "small"');
      return { target: t, release: () => undefined };
    });
    o.update(queueRule);
    await opened(o);
    expect(o.call('y', undefined, busy)).toBeUndefined();
    await expect(o.call('y', undefined, full)).rejects.toThrow(/overflow group "small" cannot take it: this client may not call/);
    expect(opens).toBe(1);
    fail = false;
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(now + 60_000);
    try {
      expect(o.stats()).toMatchObject({ unavailable: expect.stringContaining('may not call') }); // a read: no reopen
      expect(opens).toBe(1);
      await expect(o.call('y', undefined, full)).rejects.toThrow(/cannot take it/); // the reopen has started
      await opened(o);
      expect(opens).toBe(2);
      await expect(o.call('y', undefined, busy)).resolves.toEqual({ from: 'small', payload: 'y' });
    } finally {
      vi.useRealTimers();
    }
  });
});

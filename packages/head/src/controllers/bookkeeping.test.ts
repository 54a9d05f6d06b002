/**
 * The head's in-memory bookkeeping stays bounded under churn: load and
 * demand reports (load-reports.ts) by count, staleness and when replicas or
 * groups go; a replica group's failure times and drain starts
 * (replica-groups.ts `pruneMemory`).
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '@muster/common/log';
import type { ReplicaGroup } from '@muster/proto';
import { LoadReports, MAX_REPLICAS, MAX_ROUTERS_PER_GROUP, RecentMap, STALE_MS } from './load-reports.js';
import { pruneMemory } from './replica-groups.js';
import type { ValidRgSpec } from './rg-spec.js';
import { FAILURE_WINDOW_MS } from './rg-plan.js';

const load = (replicaId: string) => ({ v: 1, replicaId, inFlight: 1, queued: 0, timeMs: 1 });
const demand = (routerId: string) => ({ v: 1, routerId, waiting: 2, timeMs: 1 });

describe('RecentMap', () => {
  it('keeps at most max entries, the most recently heard', () => {
    const m = new RecentMap<string, number>(3);
    for (let i = 0; i < 10; i++) m.set(`k${i}`, i, i);
    m.set('k7', 70, 11); // heard again: now the newest
    expect([...m.entries()].map(([k]) => k)).toEqual(['k8', 'k9', 'k7']);
  });

  it('drops entries not heard for STALE_MS', () => {
    const m = new RecentMap<string, number>(100);
    m.set('old', 1, 0);
    m.set('new', 2, STALE_MS - 1);
    m.prune(STALE_MS);
    expect([...m.entries()].map(([k]) => k)).toEqual(['new']);
  });
});

describe('LoadReports', () => {
  it('under a flood of replica ids never holds more than MAX_REPLICAS; stale ones go', () => {
    let now = 0;
    const r = new LoadReports(undefined, createLogger('test', { level: 'silent' }), () => now);
    for (let i = 0; i < MAX_REPLICAS + 5_000; i++) r.heard('muster.load.g', load(`r${i}`), 'load');
    expect(r.sizes.replicas).toBe(MAX_REPLICAS);
    expect(r.of('g', 'r0')).toBeUndefined();
    expect(r.of('g', `r${MAX_REPLICAS + 4_999}`)).toBeDefined();
    now += STALE_MS;
    r.heard('muster.load.g', load('fresh'), 'load');
    expect(r.sizes.replicas).toBe(1);
  });

  it('routers per group and groups are bounded; a deleted group and a forgotten replica go at once', () => {
    const now = 0;
    const r = new LoadReports(undefined, createLogger('test', { level: 'silent' }), () => now);
    for (let i = 0; i < MAX_ROUTERS_PER_GROUP * 2; i++) r.heard('muster.demand.g1', demand(`router-${i}`), 'demand');
    r.heard('muster.demand.g2', demand('a'), 'demand');
    r.heard('muster.load.g2', load('r1'), 'load');
    expect(r.sizes).toEqual({ replicas: 1, groups: 2, routers: MAX_ROUTERS_PER_GROUP + 1, resourceShares: 0 });
    expect(r.window('g1', [], 10, 5).demand).toHaveLength(MAX_ROUTERS_PER_GROUP);
    r.forgetGroup('g1');
    r.forget('g2', 'r1');
    expect(r.sizes).toEqual({ replicas: 0, groups: 1, routers: 1, resourceShares: 0 });
    expect(r.window('g1', [], 10, 5).demand).toEqual([]);
  });
});

describe('LoadReports: who reports for whom', () => {
  it('keys a load report by the group its subject names: a report on load.a does not speak for a replica of b', () => {
    const dropped: string[] = [];
    const r = new LoadReports(undefined, createLogger('test', { level: 'silent' }), () => 0, (kind) => dropped.push(kind));
    r.heard('muster.load.a', load('r-of-b'), 'load');
    expect(r.of('b', 'r-of-b')).toBeUndefined();
    expect(r.of('a', 'r-of-b')).toBeDefined();
    expect(r.window('b', ['r-of-b'], 10_000, 5).samples).toEqual([]);
  });

  it('counts what its decoders refuse (negative, fractional, absurd counts; no id) and keeps none of it', () => {
    const dropped: string[] = [];
    const r = new LoadReports(undefined, createLogger('test', { level: 'silent' }), () => 0, (kind) => dropped.push(kind));
    r.heard('muster.load.a', { ...load('x'), queued: -5 }, 'load');
    r.heard('muster.load.a', { ...load('x'), inFlight: 0.5 }, 'load');
    r.heard('muster.load.a', { ...load('x'), queued: 1e12 }, 'load');
    r.heard('muster.demand.a', { ...demand('rt'), waiting: -1 }, 'demand');
    r.heard('muster.demand.a', { waiting: 1, timeMs: 1 }, 'demand');
    expect(dropped).toEqual(['load', 'load', 'load', 'demand', 'demand']);
    expect(r.sizes).toEqual({ replicas: 0, groups: 0, routers: 0, resourceShares: 0 });
  });

  it('keeps an HTTP replica\'s engine metrics for the autoscaler; an absurd engine value is dropped alone, the report kept', () => {
    const dropped: string[] = [];
    const r = new LoadReports(undefined, createLogger('test', { level: 'silent' }), () => 0, (kind) => dropped.push(kind));
    r.heard('muster.load.a', { ...load('x'), engine: { waiting: 7, running: 2, kvCache: 0.5 } }, 'load');
    expect(r.window('a', ['x'], 5_000, 2).samples).toEqual([{ replicaId: 'x', inFlight: 1, queued: 0, timeMs: 1, engine: { waiting: 7, running: 2, kvCache: 0.5 } }]);
    r.heard('muster.load.a', { ...load('y'), engine: { waiting: -3, running: 4 } }, 'load');
    expect(r.of('a', 'y')?.engine).toEqual({ running: 4 });
    r.heard('muster.load.a', { ...load('y'), engine: { kvCache: 95 } }, 'load');
    expect(dropped).toEqual([]);
    expect(r.of('a', 'y')).toMatchObject({ inFlight: 1, engine: {} });
  });
});

describe('pruneMemory (a replica group\'s soft memory)', () => {
  it('keeps failures inside the window and at most the budget + 1; drain starts only of draining replicas', () => {
    const now = 10 * FAILURE_WINDOW_MS;
    const rg = { replicas: [{ id: 'a', state: 'draining' }, { id: 'b', state: 'ready' }] } as unknown as ReplicaGroup;
    const e = {
      rg,
      spec: { maxReplacements: 3, replicas: { min: 1, max: 1, initial: 1 } } as unknown as ValidRgSpec,
      failures: [now - FAILURE_WINDOW_MS - 1, ...Array.from({ length: 10_000 }, (_, i) => now - 9_999 + i)],
      drainingSince: new Map([['a', 1], ['b', 2], ['gone', 3]]),
    };
    pruneMemory(e, now);
    expect(e.failures).toHaveLength(4); // budget 3 + 1: enough to know it is spent
    expect(e.failures[3]).toBe(now);
    expect(e.failures.every((t) => t > now - FAILURE_WINDOW_MS)).toBe(true);
    expect([...e.drainingSince.keys()]).toEqual(['a']);
  });
});

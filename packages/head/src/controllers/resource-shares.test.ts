/**
 * The resource shares the head holds: only what still counts
 * (RESOURCE_REPORT_FRESH_MS), at most MAX_NODES_PER_REPLICA a replica and
 * MAX_RESOURCE_SHARES in all.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '@muster/common/log';
import { RESOURCE_REPORT_FRESH_MS } from '@muster/contracts';
import { LoadReports } from './load-reports.js';
import { MAX_NODES_PER_REPLICA, MAX_RESOURCE_SHARES, ResourceShares } from './resource-shares.js';

describe('ResourceShares', () => {
  it('a report drops its replica\'s shares and the replicas that no longer count', () => {
    const s = new ResourceShares();
    s.set('a', 'n1', { cpu: 1 }, 0);
    s.set('b', 'n1', { cpu: 1 }, 0);
    s.set('a', 'n2', { cpu: 2 }, RESOURCE_REPORT_FRESH_MS);
    expect(s.size).toBe(3);
    s.set('a', 'n2', { cpu: 3 }, RESOURCE_REPORT_FRESH_MS + 1);
    // a's n1 and all of b were heard more than RESOURCE_REPORT_FRESH_MS ago.
    expect(s.size).toBe(1);
    expect(s.usageOf('a', RESOURCE_REPORT_FRESH_MS + 1)).toEqual({ cpu: 3 });
    expect(s.usageOf('b', RESOURCE_REPORT_FRESH_MS + 1)).toBeUndefined();
  });

  it('keeps at most MAX_NODES_PER_REPLICA shares a replica, the most recently heard', () => {
    const s = new ResourceShares();
    for (let i = 0; i < MAX_NODES_PER_REPLICA + 10; i++) s.set('a', `n${i}`, { cpu: 1 }, 0);
    expect(s.size).toBe(MAX_NODES_PER_REPLICA);
    expect(s.usageOf('a', 0)).toEqual({ cpu: MAX_NODES_PER_REPLICA });
  });

  it('keeps at most its maximum in all, dropping the replicas heard least recently', () => {
    const s = new ResourceShares(10);
    for (let i = 0; i < 6; i++) s.set(`r${i}`, 'n1', { cpu: 1 }, i);
    s.set('r0', 'n2', { cpu: 1 }, 6); // r0 heard again: now the newest
    for (let i = 6; i < 10; i++) s.set(`r${i}`, 'n1', { cpu: 1 }, 7);
    expect(s.size).toBe(10);
    expect(s.usageOf('r0', 7)).toEqual({ cpu: 2 });
    expect(s.usageOf('r1', 7)).toBeUndefined();
    expect(s.usageOf('r2', 7)).toEqual({ cpu: 1 });
    s.drop('r0');
    expect(s.size).toBe(8);
    expect(MAX_RESOURCE_SHARES).toBeGreaterThanOrEqual(100_000);
  });

  it('LoadReports counts its shares in sizes', () => {
    const r = new LoadReports(undefined, createLogger('test', { level: 'silent' }), () => 0, undefined, () => true);
    for (const node of ['n1', 'n2']) r.nodeUsage(node, { sampledAtMs: 1, replicas: [{ group: 'g', replicaId: 'r1', usage: { cpu: 1, gpus: 0 } }] });
    expect(r.sizes.resourceShares).toBe(2);
    r.forget('g', 'r1');
    expect(r.sizes.resourceShares).toBe(0);
  });
});

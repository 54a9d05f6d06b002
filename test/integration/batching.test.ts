/**
 * Dynamic batching end to end: replica groups of TS shards
 * (test/fixtures/batch-replica.mjs) serving with a batch handler, real NATS,
 * the head and a worker, and the router in this process. The handler answers
 * each call with the batch it was in, so the test sees what the handler saw.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '@muster/common';
import type { Cluster, ReplicaGroup, ReplicaGroupSpec } from '@muster/sdk';
import { waitFor } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const fixture = fileURLToPath(new URL('../fixtures/batch-replica.mjs', import.meta.url));

type Answer = { echo: unknown; batch: number; size: number; members?: unknown[] };

describe('dynamic batching in serve()', () => {
  let sdk: Cluster;
  useCluster({ workers: 1 }, (fx) => ({ sdk } = fx));

  const spec = (name: string, env: Record<string, string>): ReplicaGroupSpec => ({
    name,
    tp: 1,
    resources: { gpus: 1 },
    template: { command: process.execPath, args: [fixture], readiness: { kind: 'sdk' }, env },
    replicas: { min: 1, max: 1, initial: 1 },
    startup: { gracePeriodMs: 5_000, backoffInitialMs: 200 },
  });
  const ready = (g: ReplicaGroup) =>
    waitFor(`a ready replica of ${g.name}`, async () => ((await g.refresh()).replicas.some((r) => r.state === 'ready') ? true : undefined), { timeoutMs: 30_000, intervalMs: 100 });

  it('gathers concurrent calls into batches and answers each call with its own result or error', async () => {
    // Each batch costs 20 ms: while one runs, the next fills.
    const g = await sdk.replicaGroups.apply(spec('batched', { BATCH_MAX_SIZE: '16', BATCH_DELAY_MS: '5', BATCH_COST_MS: '20' }));
    await ready(g);
    const inputs = Array.from({ length: 96 }, (_, i) => (i === 40 ? { i, fail: true } : { i }));
    const results = await Promise.allSettled(inputs.map((p) => g.call(p, { timeoutMs: 20_000 })));
    const answers = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value as Answer] : []));
    // Per-call results match their inputs, in any batch.
    results.forEach((r, i) => {
      if (i === 40) expect(r).toMatchObject({ status: 'rejected', reason: { code: ErrorCode.APPLICATION, message: 'payload {"i":40,"fail":true} refused' } });
      else expect(r).toMatchObject({ status: 'fulfilled', value: { echo: { i } } });
    });
    const sizes = new Map(answers.map((a) => [a.batch, a.size]));
    expect(Math.max(...sizes.values())).toBeGreaterThan(1);
    expect(Math.max(...sizes.values())).toBeLessThanOrEqual(16);
    // Every call sat in exactly one batch: the sizes the handler saw add up to the calls made.
    expect([...sizes.values()].reduce((s, n) => s + n, 0)).toBe(inputs.length);
    await sdk.replicaGroups.delete(g.name);
  });

  it('answers a call whose deadline passes while it is queued with DEADLINE_EXCEEDED and leaves it out of the batch', async () => {
    // A long queue delay and a batch that never fills: calls wait 1.5 s for their batch.
    const g = await sdk.replicaGroups.apply(spec('slow-batch', { BATCH_MAX_SIZE: '8', BATCH_DELAY_MS: '1500', REPORT_MEMBERS: '1' }));
    await ready(g);
    const started = Date.now();
    const short = g.call('short', { timeoutMs: 300 });
    const others = ['a', 'b', 'c'].map((p) => g.call(p, { timeoutMs: 20_000 }));
    await expect(short).rejects.toMatchObject({ code: ErrorCode.DEADLINE_EXCEEDED });
    const answers = (await Promise.all(others)) as Answer[];
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400); // they did wait for the delay, with "short" queued beside them
    for (const a of answers) expect(a).toMatchObject({ size: 3, members: ['a', 'b', 'c'] });
    expect(new Set(answers.map((a) => a.batch)).size).toBe(1);
    await sdk.replicaGroups.delete(g.name);
  });
});

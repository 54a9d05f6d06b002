/**
 * Dynamic batching: throughput and latency of one replica whose work costs
 * mostly per batch, called one call at a time (serve({ unary })) and with a
 * batch handler (serve({ batch })), side by side on one LocalCluster.
 *
 *   pnpm build && npx tsx bench/batching/run.ts [--calls 2000] [--inflight 64] [--seq 200] [--rounds 3]
 *        [--batch-ms 5] [--item-ms 0.05] [--max-batch 64] [--delay-ms 2]
 *
 * The replica (test/fixtures/batch-replica.mjs) busy-waits `batch-ms` per
 * batch plus `item-ms` per call — a model whose forward pass costs about the
 * same for 1 or 64 inputs; unbatched, every call is a batch of one. Two
 * groups of one replica each run at once; the rounds alternate between them
 * (unbatched, batched, unbatched, …), so both see the same machine load. Per
 * round: `calls` calls with `inflight` in flight from one router in this
 * process (its per-replica limit raised to `inflight`, so the replica, not
 * the router, holds the queue); then `seq` calls one at a time, where
 * batching can only cost (a lone call waits out maxQueueDelayMs). Prints one
 * JSON line: per side the median round's calls/s, the p50/p99 latency at
 * `inflight` and at 1 in flight over all rounds, the batch sizes the handler
 * saw, and the load average before and after.
 */
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ReplicaGroupSpec } from '@muster/sdk';
import { LocalCluster, waitFor } from '@muster/testing';

const { values: a } = parseArgs({
  options: {
    calls: { type: 'string', default: '2000' },
    inflight: { type: 'string', default: '64' },
    seq: { type: 'string', default: '200' },
    rounds: { type: 'string', default: '3' },
    'batch-ms': { type: 'string', default: '5' },
    'item-ms': { type: 'string', default: '0.05' },
    'max-batch': { type: 'string', default: '64' },
    'delay-ms': { type: 'string', default: '2' },
  },
});
const [calls, inflight, seq, rounds] = [a.calls, a.inflight, a.seq, a.rounds].map(Number) as [number, number, number, number];
const fixture = fileURLToPath(new URL('../../test/fixtures/batch-replica.mjs', import.meta.url));
const load = () => loadavg().map((x) => Math.round(x * 100) / 100);

type Answer = { batch: number; size: number };

const spec = (name: string, maxBatch: string): ReplicaGroupSpec => ({
  name,
  tp: 1,
  resources: { gpus: 1 },
  template: {
    command: process.execPath,
    args: [fixture],
    readiness: { kind: 'sdk' },
    env: { BATCH_MAX_SIZE: maxBatch, BATCH_DELAY_MS: a['delay-ms']!, BATCH_COST_MS: a['batch-ms']!, ITEM_COST_MS: a['item-ms']! },
  },
  replicas: { min: 1, max: 1, initial: 1 },
  maxInFlightPerReplica: inflight,
});

/** `n` calls, `width` at a time: calls/s, each call's latency (ms), and the batch sizes seen. */
async function round(call: (p: number) => Promise<unknown>, n = calls, width = inflight): Promise<{ perSec: number; latencies: number[]; sizes: Map<number, number> }> {
  const latencies: number[] = [];
  const sizes = new Map<number, number>();
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) {
      const t = performance.now();
      const r = (await call(next++)) as Answer;
      latencies.push(performance.now() - t);
      sizes.set(r.batch, r.size);
    }
  }));
  return { perSec: Math.round(n / ((performance.now() - t0) / 1_000)), latencies, sizes };
}

const pct = (xs: number[], q: number) => Math.round([...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.floor(xs.length * q))]! * 100) / 100;
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

const loadBefore = load();
const cluster = await LocalCluster.start({ workers: 1, profile: 'hgx-h100-8' });
try {
  const sdk = await cluster.connect();
  const sides = { unbatched: '0', batched: a['max-batch']! };
  const routers = Object.fromEntries(await Promise.all(Object.entries(sides).map(async ([name, max]) => {
    const g = await sdk.replicaGroups.apply(spec(name, max));
    await waitFor(`${name} ready`, async () => ((await g.refresh()).replicas.some((r) => r.state === 'ready') ? true : undefined), { timeoutMs: 60_000, intervalMs: 100 });
    return [name, await sdk.replicaGroups.router(name, { maxOngoingPerReplica: inflight })] as const;
  })));
  const results: Record<string, { perSec: number[]; latencies: number[]; sizes: number[]; seqLatencies: number[] }> = {};
  for (const name of Object.keys(sides)) {
    results[name] = { perSec: [], latencies: [], sizes: [], seqLatencies: [] };
    await routers[name]!.call(0); // warm: connection, membership, JIT
    await round((p) => routers[name]!.call(p, { timeoutMs: 60_000 }));
  }
  for (let r = 0; r < rounds; r++) {
    for (const name of Object.keys(sides)) {
      const out = await round((p) => routers[name]!.call(p, { timeoutMs: 60_000 }));
      const res = results[name]!;
      res.perSec.push(out.perSec);
      res.latencies.push(...out.latencies);
      res.sizes.push(...out.sizes.values());
      res.seqLatencies.push(...(await round((p) => routers[name]!.call(p, { timeoutMs: 60_000 }), seq, 1)).latencies);
    }
  }
  const summary = Object.fromEntries(Object.entries(results).map(([name, r]) => [name, {
    callsPerSec: median(r.perSec),
    rounds: r.perSec,
    p50Ms: pct(r.latencies, 0.5),
    p99Ms: pct(r.latencies, 0.99),
    oneInFlightP50Ms: pct(r.seqLatencies, 0.5),
    oneInFlightP99Ms: pct(r.seqLatencies, 0.99),
    meanBatch: Math.round((r.sizes.reduce((s, x) => s + x, 0) / r.sizes.length) * 10) / 10,
    maxBatch: Math.max(...r.sizes),
  }]));
  console.log(JSON.stringify({
    bench: 'batching',
    calls, inflight, seq, rounds,
    batchMs: Number(a['batch-ms']), itemMs: Number(a['item-ms']), maxBatchSize: Number(a['max-batch']), maxQueueDelayMs: Number(a['delay-ms']),
    ...summary,
    speedup: Math.round((summary.batched!.callsPerSec / summary.unbatched!.callsPerSec) * 10) / 10,
    machine: `${cpus().length}× ${cpus()[0]?.model}`, node: process.version,
    loadavgBefore: loadBefore, loadavgAfter: load(),
  }));
  for (const r of Object.values(routers)) r.close();
  sdk.close();
} finally {
  await cluster.stop();
}

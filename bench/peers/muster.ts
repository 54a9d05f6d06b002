/**
 * Muster's side of bench/peers: each shape of ray_peers.py, measured the same
 * way through the SDK on a LocalCluster (nats-server, head, 2 workers
 * simulating 8×H100 nodes: 16 GPUs, as Ray is given; TLS on every link, the
 * default). Functions, not a script: run.ts starts one cluster and calls
 * them in turn. The placement-group shape is bench/pg-scale.ts's loop, the
 * actor shape bench/actors.ts's (same counter actor, 64 calls in flight per
 * caller), the call shape bench/dataplane.ts's, but through a replica group
 * the head placed rather than a hand-made membership.
 *
 * Every function measures `rounds` rounds after one warm-up round and returns
 * the per-round values; the runner takes medians.
 */
import { fileURLToPath } from 'node:url';
import type { Cluster, ReplicaGroup } from '@muster/sdk';
import { waitFor } from '@muster/testing';

/** The no-op replica group of the call and HTTP shapes (2 replicas, like Ray's deployment). */
export const NOOP_GROUP = 'peers-noop';
const counterActor = fileURLToPath(new URL('../../test/fixtures/counter-actor.mjs', import.meta.url));
const noopReplica = fileURLToPath(new URL('./noop-replica.mjs', import.meta.url));

const rate = (n: number, t0: number) => Math.round(n / ((performance.now() - t0) / 1_000));

/** Ray's timeit (ray_microbenchmark_helpers): 1 s of repeated batches to warm up, then rounds of at least 2 s each. */
const PG_WARMUP_MS = 1_000;
const PG_ROUND_MS = 2_000;

/**
 * Ray's PG microbenchmark shape: `groups` one-bundle groups created
 * concurrently, all waited, all removed — repeated, and timed as Ray's own
 * benchmark times it (ray_peers.py does the same on Ray's side). A round of a
 * single 100-group batch lasts ~50 ms here: too short to be more than noise
 * and JIT warm-up.
 */
export async function pgShape(sdk: Cluster, rounds: number, groups = 100): Promise<number[]> {
  let batch = 0;
  const once = async () => {
    const b = batch++;
    const pgs = await Promise.all(Array.from({ length: groups }, (_, i) =>
      sdk.placementGroups.create({ name: `peers-pg-${b}-${i}`, bundles: [{ cpuMillis: 10 }] })));
    await Promise.all(pgs.map((pg) => pg.ready({ timeout: 60_000 })));
    await Promise.all(pgs.map((pg) => pg.remove()));
  };
  const repeatFor = async (ms: number) => {
    const t = performance.now();
    let n = 0;
    while (performance.now() - t < ms) {
      await once();
      n += groups;
    }
    return rate(n, t);
  };
  await repeatFor(PG_WARMUP_MS);
  const rates: number[] = [];
  for (let round = 0; round < rounds; round++) rates.push(await repeatFor(PG_ROUND_MS));
  return rates;
}

/** One TP8 group (8 one-GPU bundles, STRICT_PACK) at a time: create → ready → remove; groups per second. */
export async function tp8Shape(sdk: Cluster, rounds: number, groups: number): Promise<number[]> {
  const rates: number[] = [];
  for (let round = 0; round <= rounds; round++) {
    const t = performance.now();
    for (let i = 0; i < groups; i++) {
      const pg = await sdk.placementGroups.create({ name: `peers-tp8-${round}-${i}`, strategy: 'STRICT_PACK', bundles: Array.from({ length: 8 }, () => ({ gpus: 1 })) });
      await pg.ready({ timeout: 60_000 });
      await pg.remove();
    }
    if (round > 0) rates.push(Math.round((groups / ((performance.now() - t) / 1_000)) * 100) / 100);
  }
  return rates;
}

type Callable = { call(method: string, ...args: unknown[]): Promise<unknown> };

/** `total` calls spread over `actors`, `inflight` in flight per actor; calls per second. */
async function actorRate(actors: Callable[], total: number, inflight: number): Promise<number> {
  let issued = 0;
  const t0 = performance.now();
  await Promise.all(actors.flatMap((actor) => Array.from({ length: inflight }, async () => {
    while (issued < total) {
      issued++;
      await actor.call('incr');
    }
  })));
  return rate(total, t0);
}

/** 1:1 async actor calls (one caller, one actor) and n:n (`n` callers, each its own connection and actor). */
export async function actorRates(connect: () => Promise<Cluster>, rounds: number, calls: number, n = 2, inflight = 64): Promise<{ oneToOne: number[]; nToN: number[] }> {
  const conns = await Promise.all(Array.from({ length: n }, () => connect()));
  try {
    const actors = await Promise.all(conns.map((c, i) => c.actors.create(counterActor, 'Counter', { name: `peers-actor-${i}` })));
    await actorRate([actors[0]!], 2_000, inflight);
    const oneToOne: number[] = [];
    for (let r = 0; r < rounds; r++) oneToOne.push(await actorRate([actors[0]!], calls, inflight));
    await actorRate(actors, 2_000, inflight);
    const nToN: number[] = [];
    for (let r = 0; r < rounds; r++) nToN.push(await actorRate(actors, calls, inflight));
    for (const actor of actors) await actor.kill();
    return { oneToOne, nToN };
  } finally {
    for (const c of conns) c.close();
  }
}

/** The 2-replica no-op replica group (noop-replica.mjs), once both replicas are ready. */
export async function noopGroup(sdk: Cluster): Promise<ReplicaGroup> {
  const g = await sdk.replicaGroups.apply({
    name: NOOP_GROUP,
    resources: { cpuMillis: 100 },
    template: { command: process.execPath, args: [noopReplica], readiness: { kind: 'sdk' } },
    replicas: { initial: 2, max: 2 },
  });
  await waitFor('2 ready no-op replicas', async () => ((await g.refresh()).replicas.filter((r) => r.state === 'ready').length === 2 ? true : undefined), { timeoutMs: 60_000 });
  return g;
}

/** p50 (ms) of `n` calls made one at a time. */
export async function sequentialP50(call: (i: number) => Promise<unknown>, n: number): Promise<number> {
  const lat = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await call(i);
    lat[i] = performance.now() - t;
  }
  lat.sort();
  return Math.round(lat[Math.floor(n / 2)]! * 1_000) / 1_000;
}

/** Calls per second of `n` calls with `width` in flight. */
export async function inflightRate(call: (i: number) => Promise<unknown>, n: number, width: number): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await call(next++);
  }));
  return rate(n, t0);
}

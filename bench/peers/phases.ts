/**
 * The two halves of one bench/peers pass: everything measured on Ray (one Ray
 * instance, ray_peers.py), then everything measured on Muster (one
 * LocalCluster), never both up at once — an idle cluster of either side would
 * take cores from the other. run.ts alternates them (`--repeat`: Ray, Muster,
 * Ray, Muster…) and concatenates their rounds, so both sides are sampled
 * across the same stretch of a shared machine's load.
 */
import { LocalCluster } from '@muster/testing';
import { startFloor } from './floor.js';
import { startGateway } from './gateway.js';
import { actorRates, inflightRate, NOOP_GROUP, noopGroup, pgShape, sequentialP50, tp8Shape } from './muster.js';
import { startRay } from './ray.js';
import { runWrk, type WrkResult } from './wrk.js';

export const SHAPES = ['pg', 'tp8', 'actors', 'latency', 'floor', 'http'] as const;
export type Shape = (typeof SHAPES)[number];

export interface PassOptions {
  shapes: Set<Shape>;
  rounds: number;
  store: 'embedded' | 'etcd';
  tp8Groups: number;
  rayCalls: number;
  calls: number;
  seq: number;
  httpSeconds: number;
  connections: number;
}

export interface RayResults {
  pg?: number[];
  tp8?: number[];
  actors?: { oneToOne: number[]; nToN: number[] };
  latency?: { actorP50Ms: number[]; serveHandleP50Ms: number[] };
  http?: WrkResult[];
}

export interface Series { p50: number[]; rate: number[] }

export interface MusterResults {
  pg?: number[];
  tp8?: number[];
  actors?: { oneToOne: number[]; nToN: number[] };
  /** The SDK as connect() makes it (the direct path on), and a router of the SDK with `direct: false` (on NATS), round by round. */
  latency?: { sdk: number[]; sdkNats: number[] };
  /**
   * The hand-muxed NATS floor, nc.request(), the SDK (direct path), the SDK on NATS, and the SDK on
   * NATS with frames off, interleaved round by round.
   */
  floor?: { floor: Series; request: Series; sdk: Series; sdkNats: Series; sdkNatsSingle: Series };
  http?: WrkResult[];
}

function wrkRounds(url: string, o: PassOptions): WrkResult[] {
  runWrk(url, { connections: o.connections, seconds: 2 }); // warm-up: connections, JIT, Serve's replicas
  return Array.from({ length: o.rounds }, () => runWrk(url, { connections: o.connections, seconds: o.httpSeconds }));
}

/** One pass on Ray: the shapes other than `floor` (Muster's own yardstick). */
export async function rayPass(python: string, o: PassOptions): Promise<RayResults> {
  const shapes = [...o.shapes].filter((s) => s !== 'floor');
  const out: RayResults = {};
  if (shapes.length === 0) return out;
  const session = startRay(python, ['--shapes', shapes.join(','), '--rounds', String(o.rounds), '--tp8-groups', String(o.tp8Groups), '--calls', String(o.rayCalls), '--seq', String(o.seq)]);
  try {
    const started = await session.next('started', 300_000);
    console.error(`bench/peers: Ray ${String(started.ray)} up in ${String(started.seconds)} s`);
    if (o.shapes.has('pg')) out.pg = (await session.next('pg', 600_000)).rates as number[];
    if (o.shapes.has('tp8')) out.tp8 = (await session.next('tp8', 600_000)).rates as number[];
    if (o.shapes.has('actors')) out.actors = (await session.next('actors', 600_000)) as unknown as RayResults['actors'];
    if (o.shapes.has('latency')) out.latency = (await session.next('latency', 600_000)) as unknown as RayResults['latency'];
    if (o.shapes.has('http')) {
      const ready = await session.next('http-ready', 300_000);
      out.http = wrkRounds(String(ready.url), o);
      session.release();
    }
  } finally {
    await session.close();
  }
  return out;
}

/** One pass on Muster: nats-server, head, 2 workers simulating 8×H100, TLS everywhere (the defaults). */
export async function musterPass(o: PassOptions): Promise<MusterResults> {
  const out: MusterResults = {};
  const cluster = await LocalCluster.start({ workers: 2, profile: 'hgx-h100-8', store: o.store });
  // The cluster's processes run in process groups of their own: a Ctrl-C reaches only this one, so it stops them.
  // Once, however many signals come (a Ctrl-C under npm brings SIGINT, then SIGTERM).
  let stopping: Promise<void> | undefined;
  const interrupted = () => void (stopping ??= cluster.stop().finally(() => process.exit(130)));
  process.on('SIGINT', interrupted);
  process.on('SIGTERM', interrupted);
  try {
    const sdk = await cluster.connect();
    try {
      if (o.shapes.has('pg')) out.pg = await pgShape(sdk, o.rounds);
      if (o.shapes.has('tp8')) out.tp8 = await tp8Shape(sdk, o.rounds, o.tp8Groups);
      if (o.shapes.has('actors')) out.actors = await actorRates(() => cluster.connect(), o.rounds, o.calls);
      if (!o.shapes.has('latency') && !o.shapes.has('floor') && !o.shapes.has('http')) return out;
      const group = await noopGroup(sdk);
      // The SDK's own code on NATS, without the direct path: what the floor rows have always judged.
      const onNats = await sdk.replicaGroups.router(NOOP_GROUP, { direct: false });
      try {
        // The handle's calls: the process's shared router, made as connect() makes it (the direct path on).
        const sdkCall = (i: number) => group.call(i);
        const natsCall = (i: number) => onNats.call(i);
        // The same warm-up as the floor's sides (floorRounds): with 500 calls only, the SDK's first
        // rounds one at a time still ran partly unoptimized code (0.199 ms where the floor shape's
        // SDK side, warmed like this, measured 0.174 ms in the same run).
        await warmUp(sdkCall);
        await warmUp(natsCall);
        if (o.shapes.has('latency')) {
          out.latency = { sdk: [], sdkNats: [] };
          for (let r = 0; r < o.rounds; r++) {
            out.latency.sdk.push(await sequentialP50(sdkCall, o.seq));
            out.latency.sdkNats.push(await sequentialP50(natsCall, o.seq));
          }
        }
        if (o.shapes.has('floor')) {
          const single = await sdk.replicaGroups.router(NOOP_GROUP, { direct: false, frames: false });
          try {
            out.floor = await floorRounds(cluster, { sdk: sdkCall, sdkNats: natsCall, sdkNatsSingle: (i) => single.call(i) }, o);
          } finally {
            single.close();
          }
        }
        if (o.shapes.has('http')) {
          const gw = await startGateway(cluster, NOOP_GROUP);
          try {
            out.http = wrkRounds(gw.url, o);
          } finally {
            await gw.process.stop();
          }
        }
      } finally {
        onNats.close();
        group.close();
      }
    } finally {
      sdk.close();
    }
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await cluster.stop();
  }
  return out;
}

/**
 * Warm-up, the same for every side: enough calls of both kinds for the JIT to have compiled each
 * side's whole path (the SDK's, with its replicas', is longer than the floor's: with 500 + 2,000
 * its first round one at a time was its slowest in every run, the floor's not).
 */
async function warmUp(call: (i: number) => Promise<unknown>): Promise<void> {
  await sequentialP50(call, 2_000);
  await inflightRate(call, 10_000, 64);
  // Then until steady: blocks of 1,000 calls one at a time until two in a row agree within 3% (at
  // most 10). Right after the no-op group is ready the cluster is still settling — its first round
  // one at a time was its slowest in every run (0.177–0.196 ms, then 0.155–0.184 ms) — and the
  // shape is about a cluster in its steady state, as Ray's side is measured after its own warm-up.
  let last = await sequentialP50(call, 1_000);
  for (let i = 0; i < 10; i++) {
    const p = await sequentialP50(call, 1_000);
    if (Math.abs(p - last) <= 0.03 * last) return;
    last = p;
  }
}

type Calls = Record<'sdk' | 'sdkNats' | 'sdkNatsSingle', (i: number) => Promise<unknown>>;

/**
 * The floor, nc.request(), the SDK (the direct path), the SDK on NATS, and the SDK on NATS with
 * frames off (every call its own NATS message, as the floor's are: what the SDK's own code costs
 * per message), interleaved round by round: all five see the same moments of the machine.
 */
async function floorRounds(cluster: LocalCluster, calls: Calls, o: PassOptions): Promise<NonNullable<MusterResults['floor']>> {
  const floor = await startFloor(cluster.nats!);
  try {
    const series = (): Series => ({ p50: [], rate: [] });
    const result = { floor: series(), request: series(), sdk: series(), sdkNats: series(), sdkNatsSingle: series() };
    const sides: Array<[Series, (i: number) => Promise<unknown>]> = [[result.floor, () => floor.mux()], [result.request, () => floor.request()], [result.sdk, calls.sdk], [result.sdkNats, calls.sdkNats], [result.sdkNatsSingle, calls.sdkNatsSingle]];
    for (const [, call] of sides) await warmUp(call);
    for (let r = 0; r < o.rounds; r++) {
      for (const [out, call] of sides) out.p50.push(await sequentialP50(call, o.seq));
      for (const [out, call] of sides) out.rate.push(await inflightRate(call, o.calls, 64));
    }
    return result;
  } finally {
    await floor.close();
  }
}

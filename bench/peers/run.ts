/**
 * bench/peers: Muster and Ray 2.60 side by side, same machine, same run.
 *
 *   npm run bench:peers                      (pnpm build first: the cluster runs the built head and workers)
 *   npm run bench:peers -- --shapes pg,floor --rounds 5 [--store etcd] [--http-seconds 10]
 *
 * First Ray (a virtualenv made once under ~/.cache/muster/peers-venv with
 * ray[serve] pinned; ray_peers.py measures), then Muster (one LocalCluster:
 * nats-server, head, 2 workers simulating 8×H100), never both at once, so
 * neither side shares the cores with the other's idle cluster. Shapes:
 *
 *   pg       Ray's PG microbenchmark: 100 one-bundle groups created, all waited, all removed
 *   tp8      a TP8 STRICT_PACK group created → ready → removed, one at a time
 *   actors   actor calls, 1:1 async and n:n (2 callers × 2 actors)
 *   latency  call p50 one at a time: Ray actor call and Serve handle vs the SDK → no-op replica
 *   floor    the SDK call vs the raw NATS request/reply floor (p50, and calls/s with 64 in flight)
 *   http     wrk, 32 connections, against Ray Serve's proxy and `muster gateway` (2 no-op replicas each)
 *
 * Prints one table (peer, Muster, ratio, target) and a JSON line with every
 * round's values, and exits 1 when a ratio misses its target (2 on bad flags
 * or a missing tool). Not run in CI: it takes minutes and installs Ray.
 */
import { cpus, loadavg, platform, release } from 'node:os';
import { parseArgs } from 'node:util';
import { LocalCluster } from '@muster/testing';
import { startFloor } from './floor.js';
import { startGateway } from './gateway.js';
import { actorRates, inflightRate, NOOP_GROUP, noopGroup, pgShape, sequentialP50, tp8Shape } from './muster.js';
import { ensureRayVenv, RAY_VERSION, startRay } from './ray.js';
import { median, renderTable, type Row } from './report.js';
import { runWrk, wrkMissing, type WrkResult } from './wrk.js';

const SHAPES = ['pg', 'tp8', 'actors', 'latency', 'floor', 'http'] as const;
type Shape = (typeof SHAPES)[number];

function fail(msg: string): never {
  console.error(`bench/peers: ${msg}`);
  process.exit(2);
}

const { values: a } = parseArgs({
  options: {
    shapes: { type: 'string', default: SHAPES.join(',') },
    rounds: { type: 'string', default: '3' },
    store: { type: 'string', default: 'embedded' },
    'tp8-groups': { type: 'string', default: '10' },
    'ray-calls': { type: 'string', default: '5000' },
    calls: { type: 'string', default: '20000' },
    seq: { type: 'string', default: '2000' },
    'http-seconds': { type: 'string', default: '10' },
    connections: { type: 'string', default: '32' },
  },
});
const shapes = new Set(a.shapes.split(',').filter(Boolean).map((s) => {
  if (!(SHAPES as readonly string[]).includes(s)) fail(`--shapes: unknown shape "${s}"; the shapes are ${SHAPES.join(', ')}`);
  return s as Shape;
}));
const num = (flag: keyof typeof a, min: number): number => {
  const n = Number(a[flag]);
  if (!Number.isInteger(n) || n < min) fail(`--${flag}: expected a whole number ≥ ${min}, got "${String(a[flag])}"`);
  return n;
};
const rounds = num('rounds', 1);
const [tp8Groups, rayCalls, calls, seq, httpSeconds, connections] = [num('tp8-groups', 1), num('ray-calls', 100), num('calls', 100), num('seq', 10), num('http-seconds', 1), num('connections', 1)];
if (a.store !== 'embedded' && a.store !== 'etcd') fail(`--store: expected embedded or etcd, got "${a.store}"`);
const store = a.store as 'embedded' | 'etcd';
if (shapes.has('http') && wrkMissing()) fail(wrkMissing()!);

const load = [loadavg()[0]!];
const ray: Record<string, unknown> = {};
const ours: Record<string, unknown> = {};
const wrkRounds = (url: string): WrkResult[] => {
  runWrk(url, { connections, seconds: 2 }); // warm-up: connections, JIT, Serve's replicas
  return Array.from({ length: rounds }, () => runWrk(url, { connections, seconds: httpSeconds }));
};

// ---- Ray ----
const rayShapes = [...shapes].filter((s) => s !== 'floor');
if (rayShapes.length > 0) {
  const python = ensureRayVenv();
  const session = startRay(python, ['--shapes', rayShapes.join(','), '--rounds', String(rounds), '--tp8-groups', String(tp8Groups), '--calls', String(rayCalls), '--seq', String(seq)]);
  try {
    const started = await session.next('started', 300_000);
    console.error(`bench/peers: Ray ${String(started.ray)} up in ${String(started.seconds)} s`);
    for (const s of rayShapes.filter((x) => x !== 'http')) ray[s] = await session.next(s, 600_000);
    if (shapes.has('http')) {
      const ready = await session.next('http-ready', 300_000);
      ray.http = wrkRounds(String(ready.url));
      session.release();
    }
  } finally {
    await session.close();
  }
  load.push(loadavg()[0]!);
}

// ---- Muster ----
const cluster = await LocalCluster.start({ workers: 2, profile: 'hgx-h100-8', store });
try {
  const sdk = await cluster.connect();
  try {
    if (shapes.has('pg')) ours.pg = await pgShape(sdk, rounds);
    if (shapes.has('tp8')) ours.tp8 = await tp8Shape(sdk, rounds, tp8Groups);
    if (shapes.has('actors')) ours.actors = await actorRates(() => cluster.connect(), rounds, calls);
    if (shapes.has('latency') || shapes.has('floor') || shapes.has('http')) {
      const group = await noopGroup(sdk);
      const sdkCall = (i: number) => group.call(i);
      await sequentialP50(sdkCall, 500);
      if (shapes.has('latency')) {
        const p50: number[] = [];
        for (let r = 0; r < rounds; r++) p50.push(await sequentialP50(sdkCall, seq));
        ours.latency = p50;
      }
      if (shapes.has('floor')) {
        // Interleaved round by round (floor, nc.request, SDK): all three see the same moments of a shared machine.
        const floor = await startFloor(cluster.nats!);
        try {
          const series = () => ({ p50: [] as number[], rate: [] as number[] });
          const [f, q, s] = [series(), series(), series()];
          const sides: Array<[{ p50: number[]; rate: number[] }, (i: number) => Promise<unknown>]> = [[f, () => floor.mux()], [q, () => floor.request()], [s, sdkCall]];
          for (const [, call] of sides) {
            await sequentialP50(call, 500);
            await inflightRate(call, 2_000, 64);
          }
          for (let r = 0; r < rounds; r++) {
            for (const [out, call] of sides) out.p50.push(await sequentialP50(call, seq));
            for (const [out, call] of sides) out.rate.push(await inflightRate(call, calls, 64));
          }
          ours.floor = { floor: f, request: q, sdk: s };
        } finally {
          await floor.close();
        }
      }
      if (shapes.has('http')) {
        const gw = await startGateway(cluster, NOOP_GROUP);
        try {
          ours.http = wrkRounds(gw.url);
        } finally {
          await gw.process.stop();
        }
      }
      group.close();
    }
  } finally {
    sdk.close();
  }
} finally {
  await cluster.stop();
}
load.push(loadavg()[0]!);

// ---- the table ----
const rows: Row[] = [];
const pick = <T>(o: unknown, k: string): T => (o as Record<string, T>)[k]!;
const runs = (xs: number[]) => `rounds ${xs.join(' · ')}`;
if (shapes.has('pg')) {
  const [t, o] = [pick<number[]>(ray.pg, 'rates'), ours.pg as number[]];
  rows.push({ shape: 'PG: 100 one-bundle groups created, waited, removed', peer: 'Ray', theirs: median(t), ours: median(o), unit: '/s', kind: 'rate', target: { op: '>=', ratio: store === 'etcd' ? 2 : 3 }, note: `Ray ${runs(t)}; Muster (${store}) ${runs(o)}` });
}
if (shapes.has('tp8')) {
  const [t, o] = [pick<number[]>(ray.tp8, 'rates'), ours.tp8 as number[]];
  rows.push({ shape: 'TP8 STRICT_PACK create → ready → remove, one at a time', peer: 'Ray', theirs: median(t), ours: median(o), unit: '/s', kind: 'rate', target: { op: '>=', ratio: 3 }, note: `Ray ${runs(t)}; Muster ${runs(o)}` });
}
if (shapes.has('actors')) {
  const o = ours.actors as { oneToOne: number[]; nToN: number[] };
  const [t1, tn] = [pick<number[]>(ray.actors, 'oneToOne'), pick<number[]>(ray.actors, 'nToN')];
  rows.push({ shape: 'actor calls 1:1 async', peer: 'Ray', theirs: median(t1), ours: median(o.oneToOne), unit: '/s', kind: 'rate', target: { op: '>=', ratio: 3 }, note: `Ray ${runs(t1)}; Muster ${runs(o.oneToOne)}` });
  rows.push({ shape: 'actor calls n:n (2 × 2)', peer: 'Ray', theirs: median(tn), ours: median(o.nToN), unit: '/s', kind: 'rate', target: { op: '>=', ratio: 3 }, note: `Ray ${runs(tn)}; Muster ${runs(o.nToN)}` });
}
if (shapes.has('latency')) {
  const o = ours.latency as number[];
  const [ta, th] = [pick<number[]>(ray.latency, 'actorP50Ms'), pick<number[]>(ray.latency, 'serveHandleP50Ms')];
  rows.push({ shape: 'call p50: Ray actor call vs SDK → no-op replica', peer: 'Ray actor', theirs: median(ta), ours: median(o), unit: 'ms', kind: 'latency', target: { op: '>=', ratio: 3 }, note: `Ray ${runs(ta)}; Muster ${runs(o)}` });
  rows.push({ shape: 'call p50: Serve handle vs SDK → no-op replica', peer: 'Ray Serve handle', theirs: median(th), ours: median(o), unit: 'ms', kind: 'latency', target: { op: '>=', ratio: 3 }, note: `Ray ${runs(th)}` });
}
if (shapes.has('floor')) {
  type Series = { p50: number[]; rate: number[] };
  const { floor: f, request: q, sdk: s } = ours.floor as { floor: Series; request: Series; sdk: Series };
  rows.push({ shape: 'call p50, one at a time: SDK vs raw NATS request/reply', peer: 'NATS floor', theirs: median(f.p50), ours: median(s.p50), unit: 'ms', kind: 'latency', target: { op: '<=', ratio: 1.3 }, note: `floor ${runs(f.p50)}; SDK ${runs(s.p50)}; nc.request() ${median(q.p50)} ms` });
  rows.push({ shape: 'calls/s, 64 in flight: SDK vs raw NATS request/reply', peer: 'NATS floor', theirs: median(f.rate), ours: median(s.rate), unit: '/s', kind: 'rate', target: { op: '>=', ratio: 0.8 }, note: `floor ${runs(f.rate)}; SDK ${runs(s.rate)}; nc.request() ${median(q.rate)}/s` });
}
if (shapes.has('http')) {
  const [t, o] = [ray.http as WrkResult[], ours.http as WrkResult[]];
  const desc = (w: WrkResult[]) => `p50 ${median(w.map((x) => x.p50Ms))} ms, p99 ${median(w.map((x) => x.p99Ms))} ms, errors ${w.reduce((n, x) => n + x.errors, 0)}/${w.reduce((n, x) => n + x.requests, 0)}`;
  rows.push({ shape: `HTTP front door, wrk ${connections} connections, 2 no-op replicas`, peer: 'Ray Serve proxy', theirs: median(t.map((x) => x.requestsPerSec)), ours: median(o.map((x) => x.requestsPerSec)), unit: 'req/s', kind: 'rate', target: { op: '>=', ratio: 10 }, note: `Ray ${desc(t)}; Muster gateway ${desc(o)}` });
  const errors = o.reduce((n, x) => n + x.errors, 0) / Math.max(1, o.reduce((n, x) => n + x.requests, 0));
  rows.push({ shape: 'HTTP front door p99 (same runs)', peer: 'Ray Serve proxy', theirs: median(t.map((x) => x.p99Ms)), ours: errors > 0.001 ? NaN : median(o.map((x) => x.p99Ms)), unit: 'ms', kind: 'latency', target: { op: '>=', ratio: 3 }, note: errors > 0.001 ? `Muster errors ${(errors * 100).toFixed(2)}% (> 0.1%)` : '' });
}

const machine = `${cpus().length}× ${cpus()[0]?.model ?? '?'}, ${platform()} ${release()}, node ${process.version}`;
const { text, ok } = renderTable(rows);
console.log(`\nbench/peers — Ray ${RAY_VERSION} (num_cpus=2, 16 GPUs declared) vs Muster (LocalCluster, ${store} store, 2 × 8 simulated GPUs, TLS); ${rounds} rounds, medians`);
console.log(`machine: ${machine}; load average (1 min) at start / after Ray / end: ${load.map((x) => x.toFixed(2)).join(' / ')}\n`);
console.log(text);
console.log(`\n${JSON.stringify({ bench: 'peers', command: `npm run bench:peers -- ${process.argv.slice(2).join(' ')}`.trim(), store, rounds, machine, loadavg: load, ray, muster: ours })}`);
if (!ok) {
  console.error(`bench/peers: ${rows.filter((r) => !renderTable([r]).ok).map((r) => r.shape).join('; ')}: below target`);
  process.exit(1);
}

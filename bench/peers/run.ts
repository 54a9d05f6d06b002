/**
 * bench/peers: Muster and Ray 2.60 side by side, same machine, same run.
 *
 *   npm run bench:peers                      (installs, builds — the cluster runs the built head and workers — and runs)
 *   npm run bench:peers -- --shapes pg,floor --rounds 5 [--repeat 2] [--store etcd] [--http-seconds 10]
 *
 * First Ray (a virtualenv made once under ~/.cache/muster/peers-venv with
 * ray[serve] pinned; ray_peers.py measures), then Muster (one LocalCluster:
 * nats-server, head, 2 workers simulating 8×H100), never both at once, so
 * neither side shares the cores with the other's idle cluster; `--repeat N`
 * alternates the two passes N times (phases.ts) and pools their rounds. Shapes:
 *
 *   pg       Ray's PG microbenchmark: 100 one-bundle groups created, all waited, all removed
 *   tp8      a TP8 STRICT_PACK group created → ready → removed, one at a time
 *   actors   actor calls, 1:1 async and n:n (2 callers × 2 actors)
 *   latency  call p50 one at a time: Ray actor call and Serve handle vs the SDK → no-op replica
 *            (the SDK as connect() makes it: the direct path; the SDK on NATS in the notes)
 *   floor    the SDK call, on NATS and on the direct path, vs the raw NATS request/reply floor
 *            (p50, and calls/s with 64 in flight)
 *   http     wrk, 32 connections, against Ray Serve's proxy and `muster gateway` (2 no-op replicas each)
 *
 * Prints one table (peer, Muster, ratio, target) and a JSON line with every
 * round's values, and exits 1 when a ratio misses its target (2 on bad flags
 * or a missing tool). Not run in CI: it takes minutes and installs Ray.
 * Typecheck: `npx tsc -p bench/peers`; its pure parts are unit-tested in
 * test/unit/bench-peers.test.ts.
 */
import { cpus, loadavg, platform, release } from 'node:os';
import { parseArgs } from 'node:util';
import { didYouMean } from '@muster/common';
import { musterPass, rayPass, SHAPES, type MusterResults, type PassOptions, type RayResults, type Shape } from './phases.js';
import { ensureRayVenv, RAY_VERSION } from './ray.js';
import { median, mergeRounds, renderTable, type Row } from './report.js';
import { wrkMissing, type WrkResult } from './wrk.js';

function fail(msg: string): never {
  console.error(`bench/peers: ${msg}`);
  process.exit(2);
}

const options = {
  shapes: { type: 'string', default: SHAPES.join(',') },
  rounds: { type: 'string', default: '3' },
  repeat: { type: 'string', default: '1' },
  store: { type: 'string', default: 'embedded' },
  'tp8-groups': { type: 'string', default: '10' },
  'ray-calls': { type: 'string', default: '5000' },
  calls: { type: 'string', default: '20000' },
  seq: { type: 'string', default: '2000' },
  'http-seconds': { type: 'string', default: '10' },
  connections: { type: 'string', default: '32' },
} as const;
const a = (() => {
  try {
    return parseArgs({ options }).values;
  } catch (e) {
    // An unknown flag: say which ones exist (and the nearest) rather than a stack trace.
    const flag = /'(--[^']+)'/.exec((e as Error).message)?.[1] ?? '';
    const hint = didYouMean(flag.replace(/^--/, ''), Object.keys(options));
    return fail(`${(e as Error).message.split('.')[0]}${hint ? `; did you mean --${hint}?` : ''} (flags: ${Object.keys(options).map((k) => `--${k}`).join(', ')})`);
  }
})();
const shapes = new Set(a.shapes.split(',').filter(Boolean).map((s) => {
  if (!(SHAPES as readonly string[]).includes(s)) {
    const hint = didYouMean(s, SHAPES);
    fail(`--shapes: unknown shape "${s}"${hint ? `; did you mean "${hint}"?` : ''} (the shapes: ${SHAPES.join(', ')})`);
  }
  return s as Shape;
}));
if (shapes.size === 0) fail('--shapes: name at least one shape');
const num = (flag: keyof typeof a, min: number): number => {
  const n = Number(a[flag]);
  if (!Number.isInteger(n) || n < min) fail(`--${flag}: expected a whole number ≥ ${min}, got "${String(a[flag])}"`);
  return n;
};
if (a.store !== 'embedded' && a.store !== 'etcd') fail(`--store: expected embedded or etcd, got "${a.store}"`);
const store = a.store as 'embedded' | 'etcd';
const o: PassOptions = {
  shapes, store, rounds: num('rounds', 1), tp8Groups: num('tp8-groups', 1), rayCalls: num('ray-calls', 100), calls: num('calls', 100),
  seq: num('seq', 10), httpSeconds: num('http-seconds', 1), connections: num('connections', 1),
};
const repeat = num('repeat', 1);
if (shapes.has('http') && wrkMissing()) fail(wrkMissing()!);

const load = [loadavg()[0]!];
let ray: RayResults = {};
let ours: MusterResults = {};
const python = [...shapes].some((s) => s !== 'floor') ? (() => {
  try {
    return ensureRayVenv();
  } catch (e) {
    return fail(`cannot make Ray's virtualenv: ${(e as Error).message} (needs python3 with venv and pip reaching PyPI)`);
  }
})() : undefined;
for (let pass = 0; pass < repeat; pass++) {
  if (python) {
    ray = mergeRounds(ray, await rayPass(python, o));
    load.push(loadavg()[0]!);
  }
  ours = mergeRounds(ours, await musterPass(o));
  load.push(loadavg()[0]!);
}

// ---- the table ----
const rows: Row[] = [];
const runs = (xs: number[]) => `rounds ${xs.join(' · ')}`;
const got = <T>(x: T | undefined, what: string): T => x ?? fail(`no ${what} measured`);
if (shapes.has('pg')) {
  const [t, m] = [got(ray.pg, "Ray's pg"), got(ours.pg, 'Muster pg')];
  rows.push({ shape: 'PG: 100 one-bundle groups created, waited, removed', peer: 'Ray', theirs: median(t), ours: median(m), unit: '/s', kind: 'rate', target: { op: '>=', ratio: store === 'etcd' ? 2 : 3 }, note: `Ray ${runs(t)}; Muster (${store}) ${runs(m)}` });
}
if (shapes.has('tp8')) {
  const [t, m] = [got(ray.tp8, "Ray's tp8"), got(ours.tp8, 'Muster tp8')];
  rows.push({ shape: 'TP8 STRICT_PACK create → ready → remove, one at a time', peer: 'Ray', theirs: median(t), ours: median(m), unit: '/s', kind: 'rate', target: { op: '>=', ratio: 3 }, note: `Ray ${runs(t)}; Muster ${runs(m)}` });
}
if (shapes.has('actors')) {
  const [t, m] = [got(ray.actors, "Ray's actors"), got(ours.actors, 'Muster actors')];
  rows.push({ shape: 'actor calls 1:1 async', peer: 'Ray', theirs: median(t.oneToOne), ours: median(m.oneToOne), unit: '/s', kind: 'rate', target: { op: '>=', ratio: 3 }, note: `Ray ${runs(t.oneToOne)}; Muster ${runs(m.oneToOne)}` });
  rows.push({ shape: 'actor calls n:n (2 × 2)', peer: 'Ray', theirs: median(t.nToN), ours: median(m.nToN), unit: '/s', kind: 'rate', target: { op: '>=', ratio: 3 }, note: `Ray ${runs(t.nToN)}; Muster ${runs(m.nToN)}` });
}
if (shapes.has('latency')) {
  const [t, m] = [got(ray.latency, "Ray's latency"), got(ours.latency, 'Muster latency')];
  const ourNote = `Muster ${runs(m.sdk)}; SDK on NATS (direct: false) ${runs(m.sdkNats)}, median ${median(m.sdkNats)} ms = ${(median(t.actorP50Ms) / median(m.sdkNats)).toFixed(2)}× Ray's actor call`;
  rows.push({ shape: 'call p50: Ray actor call vs SDK → no-op replica', peer: 'Ray actor', theirs: median(t.actorP50Ms), ours: median(m.sdk), unit: 'ms', kind: 'latency', target: { op: '>=', ratio: 3 }, note: `Ray ${runs(t.actorP50Ms)}; ${ourNote}` });
  rows.push({ shape: 'call p50: Serve handle vs SDK → no-op replica', peer: 'Ray Serve handle', theirs: median(t.serveHandleP50Ms), ours: median(m.sdk), unit: 'ms', kind: 'latency', target: { op: '>=', ratio: 3 }, note: `Ray ${runs(t.serveHandleP50Ms)}` });
}
if (shapes.has('floor')) {
  const { floor: f, request: q, sdk: d, sdkNats: s, sdkNatsSingle: one } = got(ours.floor, 'floor');
  // The SDK's own code on NATS against the floor (what these rows have judged from the start), then the SDK as connect() makes it.
  rows.push({ shape: 'call p50, one at a time: SDK on NATS vs raw NATS request/reply', peer: 'NATS floor', theirs: median(f.p50), ours: median(s.p50), unit: 'ms', kind: 'latency', target: { op: '<=', ratio: 1.3 }, note: `floor ${runs(f.p50)}; SDK on NATS ${runs(s.p50)}; with frames off ${median(one.p50)} ms; nc.request() ${median(q.p50)} ms` });
  rows.push({ shape: 'calls/s, 64 in flight: SDK on NATS vs raw NATS request/reply', peer: 'NATS floor', theirs: median(f.rate), ours: median(s.rate), unit: '/s', kind: 'rate', target: { op: '>=', ratio: 0.8 }, note: `floor ${runs(f.rate)}; SDK on NATS ${runs(s.rate)}; with frames off ${runs(one.rate)} (median ${Math.round(median(one.rate))}/s, ${(median(one.rate) / median(f.rate)).toFixed(2)}×); nc.request() ${Math.round(median(q.rate))}/s` });
  rows.push({ shape: 'call p50, one at a time: SDK (direct path) vs raw NATS request/reply', peer: 'NATS floor', theirs: median(f.p50), ours: median(d.p50), unit: 'ms', kind: 'latency', target: { op: '<=', ratio: 1.3 }, note: `SDK ${runs(d.p50)}` });
  rows.push({ shape: 'calls/s, 64 in flight: SDK (direct path) vs raw NATS request/reply', peer: 'NATS floor', theirs: median(f.rate), ours: median(d.rate), unit: '/s', kind: 'rate', target: { op: '>=', ratio: 0.8 }, note: `SDK ${runs(d.rate)}` });
}
if (shapes.has('http')) {
  const [t, m] = [got(ray.http, "Ray's http"), got(ours.http, 'Muster http')];
  const total = (w: WrkResult[], k: 'errors' | 'requests') => w.reduce((n, x) => n + x[k], 0);
  const desc = (w: WrkResult[]) => `p50 ${median(w.map((x) => x.p50Ms))} ms, p99 ${median(w.map((x) => x.p99Ms))} ms, errors ${total(w, 'errors')}/${total(w, 'requests')}`;
  // A front door that answers fast with errors is not fast: over 0.1% errors (the seed SLO) fails the row.
  const errorRate = total(m, 'errors') / Math.max(1, total(m, 'requests'));
  const ourRate = errorRate > 0.001 ? NaN : median(m.map((x) => x.requestsPerSec));
  rows.push({ shape: `HTTP front door, wrk ${o.connections} connections, 2 no-op replicas`, peer: 'Ray Serve proxy', theirs: median(t.map((x) => x.requestsPerSec)), ours: ourRate, unit: 'req/s', kind: 'rate', target: { op: '>=', ratio: 10 }, note: `Ray ${desc(t)}; Muster gateway ${desc(m)}` });
  rows.push({ shape: 'HTTP front door p99 (same runs)', peer: 'Ray Serve proxy', theirs: median(t.map((x) => x.p99Ms)), ours: median(m.map((x) => x.p99Ms)), unit: 'ms', kind: 'latency', target: { op: '>=', ratio: 3 } });
}

const machine = `${cpus().length}× ${cpus()[0]?.model ?? '?'}, ${platform()} ${release()}, node ${process.version}`;
const { text, ok } = renderTable(rows);
console.log(`\nbench/peers — Ray ${RAY_VERSION} (num_cpus=2, 16 GPUs declared) vs Muster (LocalCluster, ${store} store, 2 × 8 simulated GPUs, TLS); ${repeat} × ${o.rounds} rounds per side, medians`);
console.log(`machine: ${machine}; load average (1 min) at the start and after each side's pass: ${load.map((x) => x.toFixed(2)).join(' / ')}\n`);
console.log(text);
console.log(`\n${JSON.stringify({ bench: 'peers', command: `npm run bench:peers -- ${process.argv.slice(2).join(' ')}`.trim(), store, rounds: o.rounds, repeat, machine, loadavg: load, ray, muster: ours })}`);
if (!ok) {
  console.error(`bench/peers: below target: ${rows.filter((r) => !renderTable([r]).ok).map((r) => r.shape).join('; ')}`);
  process.exit(1);
}

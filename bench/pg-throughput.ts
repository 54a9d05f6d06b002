/**
 * Placement group create + ready + remove throughput through the SDK.
 *
 *   npx tsx bench/pg-throughput.ts --store embedded --clients 1 --inflight 64 --ops 20000
 *   npx tsx bench/pg-throughput.ts --store etcd --clients 64 --inflight 1 --ops 20000
 *   npx tsx bench/pg-throughput.ts ... --insecure    plaintext gRPC and etcd (default: TLS, as LocalCluster)
 *   npx tsx bench/pg-throughput.ts --shape ray --store embedded|etcd [--rounds 30] [--groups 100]
 *
 * A real cluster (nats-server, head, 4 simulated 8×H100 workers) on this
 * machine. Each op creates a one-bundle group ({ cpuMillis: 10 }, like Ray's
 * microbenchmark's tiny CPU bundles), waits until it is CREATED (reserved in
 * the store and acknowledged by its node's agent), then removes it. `clients`
 * separate SDK connections each keep `inflight` ops going. Prints ops/s,
 * per-op latency percentiles and the CPU time per op of the client process,
 * the head and the workers (together) as one JSON line.
 *
 * `--shape ray` runs Ray's own placement-group microbenchmark shape on the
 * same cluster instead: rounds of `--groups` one-bundle groups created
 * concurrently from one client, all waited until CREATED, then all removed
 * (the next round starts when every remove has answered). A round's rate is
 * groups / its time; the line printed has every measured round's rate and
 * their median (after `--warmup-rounds` unmeasured ones), and the CPU per
 * group as above.
 */
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { LocalCluster, procInfo } from '@muster/testing';

const { values: a } = parseArgs({
  options: {
    store: { type: 'string', default: 'embedded' },
    /** lanes: clients × in flight, each create → ready → remove; ray: Ray's rounds (above). */
    shape: { type: 'string', default: 'lanes' },
    clients: { type: 'string', default: '1' },
    inflight: { type: 'string', default: '64' },
    ops: { type: 'string', default: '20000' },
    warmup: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '30' },
    'warmup-rounds': { type: 'string', default: '3' },
    groups: { type: 'string', default: '100' },
    /** Groups created first and kept for the whole run: a cluster that already holds many. */
    background: { type: 'string', default: '0' },
    /** Groups created first that cannot be placed (each wants two whole free nodes): a long pending queue. */
    pending: { type: 'string', default: '0' },
    'head-prof': { type: 'string' },
    /** Plaintext everywhere, to measure what TLS costs (the default is TLS on every link). */
    insecure: { type: 'boolean', default: false },
  },
});
if (a.shape !== 'lanes' && a.shape !== 'ray') throw new Error(`--shape: expected lanes or ray, got "${a.shape}"`);
const clients = a.shape === 'ray' ? 1 : Number(a.clients);
const inflight = Number(a.inflight);
const ops = Number(a.ops);
const warmup = Number(a.warmup);

const cluster = await LocalCluster.start({ workers: 4, profile: 'hgx-h100-8', store: a.store as 'embedded' | 'etcd', insecure: a.insecure, headNodeArgs: a['head-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${a['head-prof']}`] : [] });
try {
  const conns = await Promise.all(Array.from({ length: clients }, () => cluster.connect()));
  type Client = (typeof conns)[number];
  let next = 0;
  const cpu = () => ({
    client: process.cpuUsage().user / 1000 + process.cpuUsage().system / 1000,
    head: procInfo(cluster.head.process.pid)?.cpuMs ?? 0,
    workers: [...cluster.workers.values()].reduce((ms, w) => ms + (procInfo(w.process.pid)?.cpuMs ?? 0), 0),
  });
  const perOp = (cpu0: ReturnType<typeof cpu>, count: number) => {
    const cpu1 = cpu();
    const us = (k: keyof typeof cpu0) => Math.round(((cpu1[k] - cpu0[k]) * 1000) / count);
    return { client: us('client'), head: us('head'), workers: us('workers') };
  };
  const machine = `${cpus().length}× ${cpus()[0]?.model}`;

  /** Ray's shape: create `groups` at once, wait for all, remove all. Returns groups/s and each phase's ms. */
  const rayRound = async (c: Client) => {
    const groups = Number(a.groups);
    const t = performance.now();
    const pgs = await Promise.all(Array.from({ length: groups }, () => c.placementGroups.create({ name: `r-${next++}`, bundles: [{ cpuMillis: 10 }] })));
    const created = performance.now();
    await Promise.all(pgs.map((pg) => pg.ready({ timeout: 30_000 })));
    const ready = performance.now();
    await Promise.all(pgs.map((pg) => pg.remove()));
    const end = performance.now();
    return { rate: groups / ((end - t) / 1000), ms: { create: created - t, ready: ready - created, remove: end - ready } };
  };

  const lanes = async (count: number, latencies: number[]) => {
    let issued = 0;
    const lane = async (c: Client) => {
      while (issued < count) {
        issued++;
        const t = performance.now();
        const pg = await c.placementGroups.create({ name: `b-${next++}`, bundles: [{ cpuMillis: 10 }] });
        await pg.ready({ timeout: 30_000 });
        await pg.remove();
        latencies.push(performance.now() - t);
      }
    };
    await Promise.all(conns.flatMap((c) => Array.from({ length: inflight }, () => lane(c))));
  };

  for (let i = 0; i < Number(a.background); i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, Number(a.background) - i) }, (_, j) =>
      conns[0]!.placementGroups.create({ name: `kept-${i + j}`, bundles: [{ cpuMillis: 10 }] }).then((pg) => pg.ready({ timeout: 30_000 }))));
  }
  for (let i = 0; i < Number(a.pending); i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, Number(a.pending) - i) }, (_, j) =>
      conns[0]!.placementGroups.create({ name: `waiting-${i + j}`, strategy: 'STRICT_SPREAD', bundles: [{ gpus: 8 }, { gpus: 8 }] })));
  }

  if (a.shape === 'ray') {
    for (let r = 0; r < Number(a['warmup-rounds']); r++) await rayRound(conns[0]!);
    const rates: number[] = [];
    const phases: Array<Record<'create' | 'ready' | 'remove', number>> = [];
    const cpu0 = cpu();
    for (let r = 0; r < Number(a.rounds); r++) {
      const { rate, ms } = await rayRound(conns[0]!);
      rates.push(Math.round(rate));
      phases.push(ms);
    }
    const cpuUsPerGroup = perOp(cpu0, rates.length * Number(a.groups));
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
    const phaseMs = (k: 'create' | 'ready' | 'remove') => Math.round(median(phases.map((p) => p[k])) * 10) / 10;
    console.log(JSON.stringify({
      bench: 'pg-ray-shape',
      store: a.store,
      groups: Number(a.groups),
      rounds: rates.length,
      medianGroupsPerSecond: median(rates),
      rates,
      medianPhaseMs: { create: phaseMs('create'), ready: phaseMs('ready'), remove: phaseMs('remove') },
      cpuUsPerGroup,
      loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
      machine,
    }));
  } else {
    await lanes(warmup, []);
    const latencies: number[] = [];
    const cpu0 = cpu();
    const t0 = performance.now();
    await lanes(ops, latencies);
    const seconds = (performance.now() - t0) / 1000;
    const cpuUsPerOp = perOp(cpu0, latencies.length);
    latencies.sort((x, y) => x - y);
    const pct = (p: number) => Number(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]!.toFixed(2));
    console.log(JSON.stringify({
      bench: 'pg-create-ready-remove',
      store: a.store,
      clients,
      inflightPerClient: inflight,
      background: Number(a.background),
      pending: Number(a.pending),
      ops: latencies.length,
      opsPerSecond: Math.round(latencies.length / seconds),
      latencyMs: { p50: pct(0.5), p99: pct(0.99) },
      cpuUsPerOp,
      loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
      machine,
    }));
  }
  if (process.env.BENCH_METRICS) {
    const text = await (await fetch(`http://${cluster.head.metricsAddress}/metrics`)).text();
    console.error(text.split('\n').filter((l) => /muster_pg_cycle_(seconds|writes)_(sum|count)/.test(l)).join('\n'));
  }
  for (const c of conns) c.close();
} finally {
  await cluster.stop();
}

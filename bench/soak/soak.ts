/**
 * The compressed soak (issue 15, point 10): months of a busy cluster's churn
 * pushed through one real head in minutes, with the retention settings
 * shrunk to seconds so that every kind of record is created *and* collected
 * many times over. Used by `bench/soak/run.ts` (the long run) and by
 * test/integration/soak.test.ts (the one-minute CI version).
 *
 * The churn, all at once:
 *  - gang lifecycles: `gangConcurrency` loops of placement group created →
 *    reserved → gang launched (one rank, `/bin/sleep`) → ready → stopped →
 *    group removed, on real workers (real shard processes);
 *  - failing-replica replacements: a replica group whose replicas exit 1
 *    half a second after starting, so every replica fails and is replaced;
 *  - node joins and deaths: simulated agents (bench/agents, CPU-only so no
 *    gang lands on them) dying without a goodbye and coming back;
 *  - the event stream: one live watcher counting every event by kind.
 * Each interval it samples store keys and bytes (measure.ts), head RSS and
 * the p99 of GetClusterInfo calls made throughout the interval. The verdict
 * (judge) compares peaks of the later and earlier halves after warm-up.
 */
import { join } from 'node:path';
import { LocalCluster } from '@muster/local';
import type { Cluster } from '@muster/sdk';
import { AgentPool } from '../agents/pool.js';
import { openEtcdSampler, rssMiB, sampleEmbedded, type StoreSample } from './measure.js';

export interface SoakOptions {
  store: 'embedded' | 'etcd';
  durationMs: number;
  intervalMs: number;
  /** Samples before this are warm-up: not compared. */
  warmupMs: number;
  /** Gang lifecycle loops running at once. */
  gangConcurrency: number;
  /** Simulated agents, and how many of them die (and come back) per minute. */
  agents: number;
  nodeChurnPerMin: number;
  /** Replicas of the always-failing replica group. */
  failingReplicas: number;
  /** Real workers (8 simulated GPUs each) that run the shards. */
  workers: number;
  /** Allowed growth, last sample over the first after warm-up (0.1 = 10%). */
  tolerance: number;
  /** RSS may also grow by this many MiB beyond the tolerance (V8 heap noise). */
  rssSlackMiB: number;
  /** p99 may also grow by this many ms (a shared 2-core machine: other work preempts the head). */
  p99SlackMs: number;
  log: (line: string) => void;
}

export interface Sample {
  t: number;
  storeKeys: number;
  storeBytes: number;
  /** Embedded: the data dir's file sizes. */
  diskBytes?: number;
  /** etcd: its database file and the bytes in use in it (printed, not judged: compaction saw-tooths it). */
  etcdDb?: { fileBytes: number; inUseBytes: number };
  headRssMiB: number;
  p99Ms: number;
  calls: number;
  byPrefix: Record<string, number>;
  churn: Churn;
}

export interface Churn {
  gangLifecycles: number;
  gangErrors: number;
  replacements: number;
  nodeDeaths: number;
  nodeJoins: number;
  events: number;
  collected: number;
  nodesRemoved: number;
}

export interface Verdict {
  metric: 'storeKeys' | 'storeBytes' | 'headRssMiB' | 'p99Ms' | 'diskBytesMax';
  first: number;
  last: number;
  bound: number;
  ok: boolean;
}

export interface SoakResult {
  samples: Sample[];
  verdicts: Verdict[];
  /** Every kind of churn happened, and at most one lifecycle in ten failed. */
  churned: boolean;
  ok: boolean;
}

/** The embedded store's snapshot threshold (its default) plus a 16 MiB segment of slack. */
const DISK_CAP_BYTES = (64 + 16) * 2 ** 20;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Retention shrunk to seconds: what a month keeps, the soak keeps for a few seconds. */
export const SOAK_HEAD_ARGS = [
  '--finished-gangs-kept', '20',
  '--finished-gang-max-age-ms', '5000',
  '--dead-node-ttl-ms', '3000',
  '--event-max-age-ms', '15000',
  // Events are trimmed by count too: the count, not the event rate (which follows the machine's load), bounds them.
  '--event-retention', '2000',
  // etcd's history is compacted at the shortest interval allowed (10 s, against 5 min by default):
  // at this churn five minutes of etcd history is 130-260 MB (docs/state-store.md, "Compaction").
  '--store-compaction-interval-ms', '10000',
];

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const cluster = await LocalCluster.start({
    workers: o.workers,
    profile: 'hgx-h100-8',
    store: o.store,
    heartbeatIntervalMs: 500,
    deadAfterMs: 2_000,
    headArgs: SOAK_HEAD_ARGS,
  });
  const stop = new AbortController();
  const tasks: Promise<unknown>[] = [];
  let pool: AgentPool | undefined;
  let sampler: Awaited<ReturnType<typeof openEtcdSampler>> | undefined;
  const sdk = await cluster.connect();
  try {
    const token = (await import('node:fs')).readFileSync(cluster.tokenFile, 'utf8').trim();
    const churn: Churn = { gangLifecycles: 0, gangErrors: 0, replacements: 0, nodeDeaths: 0, nodeJoins: 0, events: 0, collected: 0, nodesRemoved: 0 };
    tasks.push(watchEvents(sdk, stop.signal, churn));
    pool = await AgentPool.start({ head: cluster.address, token, tlsCa: cluster.tls?.ca, agents: o.agents, prefix: 'soak-', profile: 'cpu-only', churn: { deathsPerMin: o.nodeChurnPerMin, joinsPerMin: o.nodeChurnPerMin, keepPopulation: true } });
    await sdk.replicaGroups.apply({
      name: 'flaky',
      tp: 1,
      resources: { gpus: 1 },
      // Fails half a second after it starts: at most ~2 replacements a second per replica, under
      // the group's budget (maxReplacements per 10 minutes), which would otherwise stop them.
      template: { command: '/bin/sh', args: ['-c', 'sleep 0.5; exit 1'] },
      replicas: { min: 0, max: o.failingReplicas, initial: o.failingReplicas },
      // The largest budget allowed: replaced however often they fail.
      maxReplacements: 10_000,
      startup: { maxRestarts: 0, backoffInitialMs: 100, backoffMaxMs: 500, gracePeriodMs: 100 },
    });
    for (let i = 0; i < o.gangConcurrency; i++) tasks.push(gangLoop(sdk, i, stop.signal, churn));
    const latencies: number[] = [];
    tasks.push(probe(sdk, stop.signal, latencies));
    if (o.store === 'etcd') sampler = await openEtcdSampler(cluster.etcd!);
    const headDir = join(cluster.dataDir, 'head', 'store');

    const samples: Sample[] = [];
    const t0 = performance.now();
    while (performance.now() - t0 < o.durationMs) {
      await sleep(Math.min(o.intervalMs, o.durationMs - (performance.now() - t0)));
      const lat = latencies.splice(0).sort((a, b) => a - b);
      const store: StoreSample = sampler ? await sampler.sample() : await sampleEmbedded(headDir);
      const s: Sample = {
        t: Math.round((performance.now() - t0) / 1000),
        storeKeys: store.keys,
        storeBytes: store.bytes,
        ...(store.diskBytes === undefined ? {} : { diskBytes: store.diskBytes }),
        ...(store.etcdDb ? { etcdDb: store.etcdDb } : {}),
        headRssMiB: await rssMiB(cluster.head.process.pid),
        p99Ms: Math.round((lat[Math.min(lat.length - 1, Math.floor(0.99 * lat.length))] ?? 0) * 10) / 10,
        calls: lat.length,
        byPrefix: store.byPrefix,
        churn: { ...churn },
      };
      samples.push(s);
      o.log(JSON.stringify(s));
    }
    const verdicts = judge(samples.filter((s) => s.t * 1000 >= o.warmupMs), o);
    // A soak that did no work proves nothing: every kind of churn must have happened.
    const c = samples.at(-1)?.churn;
    const churned = !!c && c.gangLifecycles > 0 && c.replacements > 0 && c.nodeDeaths > 0 && c.collected > 0 && c.gangErrors <= c.gangLifecycles / 10;
    return { samples, verdicts, churned, ok: churned && verdicts.every((v) => v.ok) };
  } finally {
    stop.abort();
    await Promise.allSettled(tasks);
    await pool?.stop();
    await sampler?.close();
    sdk.close();
    await cluster.stop();
  }
}

/**
 * Flat means the envelope does not rise: the peak of the later half of the
 * samples after warm-up against the peak of the earlier half, per metric.
 * Peaks, not single samples, because bounded state saw-tooths — the event
 * trimmer cuts to the retention count on its period, the GC collects in
 * sweeps — so one sample against another measures where each fell in its
 * tooth. RSS and p99 get an absolute slack on top (see SoakOptions).
 */
export function judge(after: Sample[], o: Pick<SoakOptions, 'tolerance' | 'rssSlackMiB' | 'p99SlackMs'>): Verdict[] {
  if (after.length < 2) throw new Error('soak: fewer than two samples after warm-up; run longer or sample more often');
  const half = Math.floor(after.length / 2);
  const earlier = after.slice(0, half);
  const later = after.slice(half);
  const peak = (xs: Sample[], f: (s: Sample) => number) => Math.max(...xs.map(f));
  const verdicts: Verdict[] = (['storeKeys', 'storeBytes', 'headRssMiB', 'p99Ms'] as const).map((metric) => {
    const slack = metric === 'headRssMiB' ? o.rssSlackMiB : metric === 'p99Ms' ? o.p99SlackMs : 0;
    const first = peak(earlier, (s) => s[metric]);
    const last = peak(later, (s) => s[metric]);
    const bound = Math.round(first * (1 + o.tolerance) + slack);
    return { metric, first, last, bound, ok: last <= bound };
  });
  // The embedded log is cut at the snapshot threshold: its files stay under threshold + snapshot + a segment.
  if (after[0]!.diskBytes !== undefined) {
    const bound = DISK_CAP_BYTES + 2 * peak(after, (s) => s.storeBytes);
    const last = peak(after, (s) => s.diskBytes ?? 0);
    verdicts.push({ metric: 'diskBytesMax', first: after[0]!.diskBytes ?? 0, last, bound, ok: last <= bound });
  }
  return verdicts;
}

/** One lifecycle after another: PG → gang → ready → stop → PG removed. Errors are counted, not fatal. */
async function gangLoop(sdk: Cluster, loop: number, signal: AbortSignal, churn: Churn): Promise<void> {
  for (let n = 0; !signal.aborted; n++) {
    const name = `soak-${loop}-${n}`;
    try {
      const pg = await sdk.placementGroups.create({ name, strategy: 'PACK', bundles: [{ gpus: 1 }] });
      try {
        await pg.ready({ timeout: 15_000 });
        const gang = await sdk.gangs.launch({ name, placementGroup: pg.name, tp: 1, pp: 1, template: { command: '/bin/sleep', args: ['3600'] }, startup: { gracePeriodMs: 200 } });
        await gang.ready({ timeout: 15_000 });
        await gang.stop();
        churn.gangLifecycles++;
      } finally {
        await pg.remove();
      }
    } catch (e) {
      if (signal.aborted) return;
      churn.gangErrors++;
      if (churn.gangErrors <= 5) console.error(`soak: gang ${name}: ${(e as Error).message.split('\n')[0]}`);
      await sleep(200);
    }
  }
}

/** The live event stream, counted; reconnects when cut. */
async function watchEvents(sdk: Cluster, signal: AbortSignal, churn: Churn): Promise<void> {
  while (!signal.aborted) {
    try {
      for await (const e of sdk.events({ replay: false, signal })) {
        churn.events++;
        // Only the replica group's gangs fail (the loop's gangs are stopped); each failure is replaced.
        if (e.kind === 'gang.failed') churn.replacements++;
        else if (e.kind === 'node.dead') churn.nodeDeaths++;
        else if (e.kind === 'node.registered') churn.nodeJoins++;
        else if (e.kind === 'gang.collected') churn.collected++;
        else if (e.kind === 'node.removed') churn.nodesRemoved++;
      }
    } catch {
      if (!signal.aborted) await sleep(200);
    }
  }
}

/** A control call in a steady loop (10 per second): GetClusterInfo, timed. */
async function probe(sdk: Cluster, signal: AbortSignal, out: number[]): Promise<void> {
  while (!signal.aborted) {
    const t = performance.now();
    try {
      await sdk.info();
      if (out.length < 100_000) out.push(performance.now() - t);
    } catch {
      /* a failed call shows as a gap in `calls` */
    }
    await sleep(100);
  }
}

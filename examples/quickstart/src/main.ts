/**
 * The quick start's tour of Muster, run by `npm run demo` against a fresh
 * local cluster (or by hand against any cluster with 8 free GPUs in two
 * NVLink islands and NATS):
 *
 *   1. placement  a TP=4 × PP=2 model needs two bundles of 4 GPUs, each
 *                 inside one NVLink island: reserved all-or-nothing, and
 *                 the caller sees bundle → node → GPUs;
 *   2. gang       the 8 ranks of examples/tp-pp-mlp launched on it, READY
 *                 only when every rank is; the model's answer is checked
 *                 against the single-process reference;
 *   3. serving    a replica group of the same model (replica.ts) answers
 *                 calls through the SDK's router, checked against the
 *                 reference, and is scaled from 2 to 3 replicas under load
 *                 without a failed call.
 *
 * Everything it creates is removed at the end. Exits 1 when a check fails.
 *
 *   node dist/main.js   # after `muster up` (its context), or with the MUSTER_* variables it prints
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BATCH, D_MODEL, inputBatch, maxAbsDiff, reference } from '@muster/example-tp-pp-mlp/model';
import { connect, connectOptionsFromEnv, type Gang, type PlacementGroup, type ReplicaGroup } from '@muster/sdk';

const SEED = 7;
const TOLERANCE = 1e-9;
const mlpDir = dirname(createRequire(import.meta.url).resolve('@muster/example-tp-pp-mlp/package.json'));
const replicaScript = join(dirname(fileURLToPath(import.meta.url)), 'replica.js');
const started = performance.now();
const since = (t: number) => {
  const ms = performance.now() - t;
  return ms < 1_000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
};

// MUSTER_ADDRESS, MUSTER_TLS_CA/CERT/KEY (what `muster up` prints), else the current context of ~/.muster/config.yaml.
const cluster = await connect(connectOptionsFromEnv());
const failures: string[] = [];
const check = (ok: boolean, what: string) => {
  console.log(`    ${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
};

let pg: PlacementGroup | undefined;
let gang: Gang | undefined;
let group: ReplicaGroup | undefined;
try {
  const info = await cluster.info();
  const nodes = (await cluster.nodes()).filter((n) => n.state === 'alive');
  const gpus = nodes.reduce((s, n) => s + n.gpus.length, 0);
  console.log(`connected to head ${info.headId} (${info.store} store): ${nodes.length} nodes alive, ${gpus} GPUs`);
  for (const n of nodes) console.log(`    ${n.id.padEnd(8)} ${n.gpus.length}× ${n.gpus[0]?.name ?? 'no GPU'}, NVLink islands ${n.nvlinkIslands.map((i) => i.length).join('+') || '-'}`);

  // 1. Placement.
  console.log('\n1/3 placement: TP=4 × PP=2, two bundles of 4 GPUs, each inside one NVLink island');
  let t = performance.now();
  pg = await cluster.placementGroups.create({
    name: 'quickstart-mlp',
    strategy: 'PACK',
    bundles: [{ gpus: 4, cpuMillis: 1_000 }, { gpus: 4, cpuMillis: 1_000 }],
    topology: [{ level: 'gpu-island' }],
  });
  await pg.ready({ timeout: 30_000 });
  console.log(`    reserved and acknowledged by the agents in ${since(t)}:`);
  for (const b of pg.placements) console.log(`    bundle ${b.bundleIndex} → ${b.nodeId} GPUs ${b.gpuIndices.join(',')}`);
  const islandOf = (nodeId: string, gpu: number) => nodes.find((n) => n.id === nodeId)?.nvlinkIslands.findIndex((i) => i.includes(gpu));
  check(pg.placements.every((b) => new Set(b.gpuIndices.map((g) => islandOf(b.nodeId, g))).size === 1), 'each bundle is inside one NVLink island');

  // 2. Gang.
  console.log('\n2/3 gang: the 8 ranks of examples/tp-pp-mlp on that group');
  t = performance.now();
  gang = await cluster.gangs.launch({
    name: 'quickstart-mlp',
    placementGroup: pg.id,
    tp: 4,
    pp: 2,
    template: {
      command: process.execPath,
      args: [join(mlpDir, 'dist/rank.js')],
      env: { MODEL_SEED: String(SEED) },
      ports: [{ name: 'http' }],
      readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 100 },
    },
  });
  await whileWaiting(gang.ready({ timeout: 60_000 }), async () => {
    const v = (await gang!.refresh()).toJSON();
    return `${v.state}: ${v.ranks.filter((r) => r.phase === 'ready').length}/${v.ranks.length} ranks ready`;
  });
  const ranks = gang.toJSON().ranks;
  console.log(`    READY in ${since(t)}: ranks ${ranks.map((r) => `${r.rank}@${r.nodeId}[GPU ${r.cudaVisibleDevices}]`).join(' ')}`);
  const last = ranks.find((r) => r.ppRank === 1 && r.tpRank === 0)!;
  const address = nodes.find((n) => n.id === last.nodeId)?.address ?? '127.0.0.1';
  const result = (await (await fetch(`http://${address}:${last.ports.http}/result`)).json()) as { output: number[] };
  const expected = reference(SEED, 4);
  const err = maxAbsDiff(Float64Array.from(result.output), expected);
  check(err <= TOLERANCE, `the gang's answer equals the single-process reference (max abs error ${err.toExponential(1)})`);
  t = performance.now();
  await gang.stop();
  await until(10_000, async () => {
    const state = (await gang!.refresh()).state;
    return state === 'stopped' ? undefined : `gang ${state}`;
  });
  await pg.remove();
  console.log(`    every rank stopped and the group removed in ${since(t)}`);
  [gang, pg] = [undefined, undefined];

  // 3. Serving.
  console.log('\n3/3 serving: replica group "quickstart-mlp", 2 replicas of the model behind the SDK router');
  t = performance.now();
  group = await cluster.replicaGroups.apply({
    name: 'quickstart-mlp',
    template: { command: process.execPath, args: [replicaScript], env: { MODEL_SEED: String(SEED) }, readiness: { kind: 'sdk' } },
    resources: { gpus: 1, cpuMillis: 500 },
    replicas: { min: 1, max: 3, initial: 2 },
    drainDeadlineMs: 2_000,
  });
  await replicasReady(group, 2);
  console.log(`    2 replicas READY in ${since(t)}`);
  const input = Array.from(inputBatch(SEED));
  const byReplica = new Map<string, number>();
  let wrong = 0;
  const latencies: number[] = [];
  const callOnce = async () => {
    const t0 = performance.now();
    const answer = (await group!.call({ input }, { timeoutMs: 5_000 })) as { output: number[]; replica: string };
    latencies.push(performance.now() - t0);
    byReplica.set(answer.replica, (byReplica.get(answer.replica) ?? 0) + 1);
    if (maxAbsDiff(Float64Array.from(answer.output), expected) > TOLERANCE) wrong++;
  };
  const load = async (calls: number, concurrency: number) => {
    let left = calls;
    await Promise.all(Array.from({ length: concurrency }, async () => {
      while (left-- > 0) await callOnce();
    }));
  };
  await load(400, 8);
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => `${latencies[Math.floor((latencies.length - 1) * p)]!.toFixed(2)} ms`;
  console.log(`    400 calls (${BATCH}×${D_MODEL} inputs, 8 at a time): p50 ${pct(0.5)}, p99 ${pct(0.99)}; answered by ${[...byReplica].map(([r, n]) => `${r} ${n}`).join(', ')}`);
  check(wrong === 0, 'every answer equals the reference');
  check(byReplica.size === 2, 'both replicas served');

  console.log('    scaling to 3 replicas while calls keep coming');
  t = performance.now();
  byReplica.clear();
  let loading = true;
  const during = (async () => {
    let n = 0;
    while (loading) {
      await callOnce();
      n++;
    }
    return n;
  })();
  try {
    await group.scale(3);
    await replicasReady(group, 3);
    // Until the router has called the new replica too (its membership update travels separately).
    const deadline = Date.now() + 10_000;
    while (byReplica.size < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  } finally {
    loading = false;
  }
  const served = await during;
  console.log(`    3 replicas READY in ${since(t)}; ${served} calls meanwhile, answered by ${byReplica.size} replicas`);
  check(byReplica.size === 3, 'the new replica takes calls');
  check(wrong === 0, 'no failed or wrong call while scaling');

  t = performance.now();
  group.close();
  await cluster.replicaGroups.delete('quickstart-mlp');
  await until(30_000, async () => {
    const left = (await cluster.replicaGroups.list()).find((g) => g.name === 'quickstart-mlp')?.toJSON();
    // The list carries counts, not replicas.
    return left && `replica group still there: ${Object.entries(left.replicasByState).map(([state, n]) => `${n} ${state}`).join(', ') || 'no replica left'}`;
  });
  group = undefined;
  console.log(`    deleted: every replica drained and stopped, its placement group freed, in ${since(t)}`);
} catch (e) {
  failures.push(e instanceof Error ? e.message : String(e));
  console.error(`FAIL ${e instanceof Error ? e.message : String(e)}`);
} finally {
  // Clean up whatever is left, in order: callers, replicas, gang, group.
  group?.close();
  if (group) await cluster.replicaGroups.delete('quickstart-mlp').catch(() => undefined);
  await gang?.stop().catch(() => undefined);
  await pg?.remove().catch(() => undefined);
  cluster.close();
}
console.log(failures.length === 0 ? `\nall checks passed in ${since(started)}` : `\n${failures.length} check(s) failed: ${failures.join('; ')}`);
process.exitCode = failures.length === 0 ? 0 : 1;

/** Waits for `done`, printing what `status` says every second until then. */
async function whileWaiting<T>(done: Promise<T>, status: () => Promise<string>): Promise<T> {
  const ticker = setInterval(() => {
    void status().then((s) => console.log(`    waiting: ${s}`), () => undefined);
  }, 1_000);
  try {
    return await done;
  } finally {
    clearInterval(ticker);
  }
}

/**
 * Polls `pending` until it returns undefined; until then it says what is
 * still awaited, which is printed every second and named in the error after
 * `limitMs`.
 */
async function until(limitMs: number, pending: () => Promise<string | undefined>): Promise<void> {
  const deadline = Date.now() + limitMs;
  let said = Date.now();
  for (let left = await pending(); left !== undefined; left = await pending()) {
    if (Date.now() > deadline) throw new Error(`after ${limitMs / 1000} s still ${left}`);
    if (Date.now() - said >= 1_000) {
      console.log(`    waiting: ${left}`);
      said = Date.now();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resolves once `n` replicas of `group` are READY (fails after 60 s). */
function replicasReady(group: ReplicaGroup, n: number): Promise<void> {
  return until(60_000, async () => {
    const v = (await group.refresh()).toJSON();
    const ready = v.replicas.filter((r) => r.state === 'ready').length;
    return ready >= n ? undefined : `${ready}/${n} replicas ready (${v.replicas.map((r) => `${r.id} ${r.state}: ${r.message}`).join('; ')})`;
  });
}

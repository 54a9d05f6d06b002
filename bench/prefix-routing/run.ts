/**
 * Prefix-cache-aware routing against power of two choices, side by side
 * (issue 18, point 2). Two replica groups of the vLLM-like fixture with a
 * prefix cache (test/fixtures/vllm-like.mjs), identical but for their routing
 * policy (`p2c`; `prefix` with the default load factor 1.25; and, to show
 * what the bound does, `unbounded`: prefix with load factor 100, the
 * largest, which never spills), behind one real `muster gateway`; closed-loop
 * users stream OpenAI chat calls, each with one of a few system prompts and a
 * question of its own ("many users, few system prompts").
 *
 *   pnpm exec tsx bench/prefix-routing/run.ts [--replicas 4] [--users 32] [--prompts 8]
 *     [--seconds 15] [--rounds 2] [--hot-share 0.5] [--prefill-delay-ms 40] [--token-delay-ms 5]
 *     [--max-tokens 8] [--cache-size 3] [--engine-concurrency 8] [--variants p2c,prefix,unbounded]
 *
 * The engine model: a prompt whose first 256 characters (its system prompt)
 * this replica has prefilled and still caches skips `--prefill-delay-ms`; each
 * replica caches `--cache-size` prefixes (LRU), fewer than there are system
 * prompts — as a real KV cache holds a part of the working set — so only
 * partitioning the prompts over the replicas lets the cluster cache them all.
 * Each engine runs `--engine-concurrency` requests at once and queues the
 * rest (users = replicas × that, by default: the cluster is full but not
 * over), so a replica given more than its share makes its callers wait.
 *
 * Two workloads, each run in rounds that interleave the variants (p2c,
 * prefix, unbounded, p2c, …: the machine's load hits all alike): `uniform` (every
 * system prompt alike) and `skewed` (one hot prompt takes `--hot-share` of
 * the calls). Reported per policy: time to first token and latency p50/p99,
 * throughput, the engines' prefix cache hit rate, and how many calls each
 * replica served (max / mean: 1 is perfect balance). Prints a table, then one
 * JSON line.
 */
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { LocalCluster, spawnManaged, waitFor } from '@muster/testing';

const { values: a } = parseArgs({
  options: {
    replicas: { type: 'string', default: '4' },
    users: { type: 'string', default: '32' },
    prompts: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '15' },
    rounds: { type: 'string', default: '2' },
    'hot-share': { type: 'string', default: '0.5' },
    'prefill-delay-ms': { type: 'string', default: '40' },
    'token-delay-ms': { type: 'string', default: '5' },
    'max-tokens': { type: 'string', default: '8' },
    'cache-size': { type: 'string', default: '3' },
    variants: { type: 'string', default: 'p2c,prefix,unbounded' },
    'engine-concurrency': { type: 'string', default: '8' },
  },
});
const replicas = Number(a.replicas);
const users = Number(a.users);
const prompts = Number(a.prompts);
const seconds = Number(a.seconds);
const rounds = Number(a.rounds);
const hotShare = Number(a['hot-share']);
const fixture = fileURLToPath(new URL('../../test/fixtures/vllm-like.mjs', import.meta.url));
const cli = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));
/** Each variant is one group, routed as it says. */
const VARIANTS = {
  p2c: { policy: 'p2c' },
  prefix: { policy: 'prefix', prefixChars: 256 },
  unbounded: { policy: 'prefix', prefixChars: 256, loadFactor: 100 },
} as const;
type Policy = keyof typeof VARIANTS;
const POLICIES = a.variants.split(',').map((v) => {
  if (!(v in VARIANTS)) throw new Error(`--variants: "${v}" is none of ${Object.keys(VARIANTS).join(', ')}`);
  return v as Policy;
});

/** A system prompt of ~300 characters: its first 256 are the cached prefix. */
const systemPrompt = (i: number) => `System prompt ${i}: you are a helpful assistant for team ${i}. ${'Follow the house style, cite sources, keep answers short. '.repeat(5)}`;

interface Sample { ttftMs: number; latencyMs: number; replica: string; hit: boolean }

/** One streamed chat call: time to the first SSE event, to the end, and who served it. */
async function call(base: string, model: string, sys: string, question: string): Promise<Sample> {
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, stream: true, max_tokens: Number(a['max-tokens']), messages: [{ role: 'system', content: sys }, { role: 'user', content: question }] }),
  });
  if (res.status !== 200 || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let ttftMs = 0;
  for await (const chunk of res.body) if (!ttftMs && (chunk as Uint8Array).length > 0) ttftMs = performance.now() - t0;
  return { ttftMs, latencyMs: performance.now() - t0, replica: res.headers.get('x-replica') ?? '?', hit: res.headers.get('x-prefix-cache') === 'hit' };
}

/** Which system prompt a call uses: uniform, or one hot prompt taking `hotShare` of the calls. */
const pick = (skewed: boolean) => (skewed && Math.random() < hotShare ? 0 : Math.floor(Math.random() * prompts));

/** `users` closed-loop users for `ms`: every completed call's sample. */
async function phase(base: string, model: string, skewed: boolean, ms: number): Promise<Sample[]> {
  const out: Sample[] = [];
  const end = Date.now() + ms;
  let q = 0;
  await Promise.all(Array.from({ length: users }, async (_, u) => {
    while (Date.now() < end) out.push(await call(base, model, systemPrompt(pick(skewed)), `user ${u} asks question ${q++}`));
  }));
  return out;
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length ? Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]! * 10) / 10 : NaN;
};

function summary(samples: Sample[], ms: number) {
  const per = new Map<string, number>();
  for (const s of samples) per.set(s.replica, (per.get(s.replica) ?? 0) + 1);
  const counts = [...per.values()].sort((x, y) => y - x);
  const mean = samples.length / replicas;
  return {
    calls: samples.length,
    rps: Math.round((samples.length / (ms / 1000)) * 10) / 10,
    ttftP50Ms: quantile(samples.map((s) => s.ttftMs), 0.5),
    ttftP99Ms: quantile(samples.map((s) => s.ttftMs), 0.99),
    latencyP50Ms: quantile(samples.map((s) => s.latencyMs), 0.5),
    latencyP99Ms: quantile(samples.map((s) => s.latencyMs), 0.99),
    cacheHitRate: Math.round((samples.filter((s) => s.hit).length / Math.max(1, samples.length)) * 1000) / 1000,
    perReplica: counts,
    maxOverMean: Math.round((Math.max(...counts, 0) / mean) * 100) / 100,
  };
}

const cluster = await LocalCluster.start({ workers: 1 });
try {
  const sdk = await cluster.connect();
  const template = {
    command: process.execPath,
    args: [fixture, '--token-delay-ms', a['token-delay-ms'], '--prefill-delay-ms', a['prefill-delay-ms'], '--prefix-cache-size', a['cache-size'], '--prefix-chars', '256', '--max-concurrency', a['engine-concurrency']],
    env: { VLLM_LIKE_QUIET: '1' },
    ports: [{ name: 'http' }],
    readiness: { kind: 'http' as const, port: 'http', path: '/health', periodMs: 100 },
  };
  for (const policy of POLICIES) {
    await sdk.replicaGroups.apply({
      name: `bench-${policy}`,
      httpPort: 'http',
      models: [`model-${policy}`],
      routing: VARIANTS[policy],
      template: { ...template, args: [...template.args, '--models', `model-${policy}`] },
      replicas: { initial: replicas, max: replicas },
    });
  }
  for (const policy of POLICIES) {
    await waitFor(`${policy}: ${replicas} ready replicas`, async () => ((await sdk.replicaGroups.get(`bench-${policy}`)).replicas.filter((r) => r.state === 'ready').length === replicas) || undefined, { timeoutMs: 120_000 });
  }
  const gw = spawnManaged('gateway', process.execPath, [cli, 'gateway', '--listen', '127.0.0.1:0', '--no-auth'], { env: cluster.clientEnv() });
  try {
    const base = `http://${(JSON.parse(await gw.waitForLine((l) => l.includes('gateway ready'))) as { address: string }).address}`;
    const loads: number[] = [loadavg()[0]!];
    const results: Record<string, Partial<Record<Policy, ReturnType<typeof summary> & { rounds: number[] }>>> = {};
    for (const workload of ['uniform', 'skewed'] as const) {
      // Warm-up, not measured: every replica's cache and the gateway's routers in use.
      for (const policy of POLICIES) await phase(base, `model-${policy}`, workload === 'skewed', 2_000);
      const pooled = Object.fromEntries(POLICIES.map((p) => [p, [] as Sample[]])) as Record<Policy, Sample[]>;
      const perRound = Object.fromEntries(POLICIES.map((p) => [p, [] as number[]])) as Record<Policy, number[]>;
      for (let r = 0; r < rounds; r++) {
        for (const policy of POLICIES) {
          const s = await phase(base, `model-${policy}`, workload === 'skewed', seconds * 1000);
          pooled[policy].push(...s);
          perRound[policy].push(Math.round((s.length / seconds) * 10) / 10);
          loads.push(loadavg()[0]!);
        }
      }
      results[workload] = Object.fromEntries(POLICIES.map((p) => [p, { ...summary(pooled[p], seconds * 1000 * rounds), rounds: perRound[p] }]));
      console.log(`\n${workload} (${users} users, ${prompts} system prompts${workload === 'skewed' ? `, one takes ${hotShare * 100}%` : ''}, ${replicas} replicas, ${rounds}×${seconds}s per policy)`);
      console.log('variant   rps     ttft p50/p99 ms   latency p50/p99 ms  cache hits  per replica (max/mean)');
      for (const policy of POLICIES) {
        const x = results[workload][policy]!;
        console.log(`${policy.padEnd(9)} ${String(x.rps).padEnd(7)} ${`${x.ttftP50Ms} / ${x.ttftP99Ms}`.padEnd(17)} ${`${x.latencyP50Ms} / ${x.latencyP99Ms}`.padEnd(19)} ${String(x.cacheHitRate).padEnd(11)} ${x.perReplica.join(' ')} (${x.maxOverMean})`);
      }
    }
    console.log(JSON.stringify({ bench: 'prefix-routing', replicas, users, prompts, seconds, rounds, hotShare, prefillDelayMs: Number(a['prefill-delay-ms']), tokenDelayMs: Number(a['token-delay-ms']), maxTokens: Number(a['max-tokens']), cacheSize: Number(a['cache-size']), engineConcurrency: Number(a['engine-concurrency']), results, loadAverage1m: loads, machine: `${cpus().length}× ${cpus()[0]?.model}` }));
  } finally {
    await gw.stop();
    sdk.close();
  }
} finally {
  await cluster.stop();
}

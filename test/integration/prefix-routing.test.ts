/**
 * Prefix-cache-aware routing end to end (issue 18, point 1): a real
 * `muster gateway` in front of a group of vLLM-like replicas with a prefix
 * cache (test/fixtures/vllm-like.mjs), routed with the `prefix` policy, asked
 * with plain fetch() as an OpenAI client would. Each answer names its replica
 * (`x-replica`) and whether its prefix was cached (`x-prefix-cache`).
 *
 * Shown here: different system prompts spread over the replicas; requests
 * sharing a system prompt (and different questions) land on one replica,
 * which then answers from its cache; a route key header wins over the
 * prompt; a hot prompt sent many at once spills beyond its replica (bounded
 * load) while that replica keeps the largest share, and the gateway's router
 * counts hits and fallbacks; an SDK caller of a serve() group is routed by its
 * routeKey or its payload's prompt; scaling up moves keys only to the new replica.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster } from '@muster/sdk';
import { waitFor, type LocalCluster, type ManagedProcess } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';
import { sample } from './prometheus-text.js';
import { startTestGateway, type TestGateway } from './gateway.test-support.js';

const vllmLike = fileURLToPath(new URL('../fixtures/vllm-like.mjs', import.meta.url));
const replicaFixture = fileURLToPath(new URL('../fixtures/replica.mjs', import.meta.url));

const MODEL = 'px-model';
/** A system prompt longer than the group's prefixChars (64): its first 64 characters are the key. */
const system = (name: string) => `You are assistant ${name}. ${'Answer briefly and politely, citing sources. '.repeat(3)}`;
const chat = (sys: string, question: string, extra: Record<string, unknown> = {}) => ({ model: MODEL, messages: [{ role: 'system', content: sys }, { role: 'user', content: question }], max_tokens: 2, ...extra });

describe('prefix-cache-aware routing through the gateway', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  let gw: ManagedProcess;
  let base: string;
  let metricsUrl: string;
  useCluster({ workers: 1 }, (fx) => ({ cluster, sdk } = fx));

  /** One chat call; the replica that answered and whether its prefix was cached. */
  const ask = async (body: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    expect(res.status).toBe(200);
    await res.text();
    return { replica: res.headers.get('x-replica') ?? '', cache: res.headers.get('x-prefix-cache') ?? '' };
  };
  /** Where each of `prompts` goes now, one call at a time (no load: each key's first choice). */
  const placement = async (prompts: string[]) => {
    const out = new Map<string, string>();
    for (const p of prompts) out.set(p, (await ask(chat(p, 'hi'))).replica);
    return out;
  };
  /** Sends different prompts until `n` replicas answered: the gateway's router has (at least) n members. */
  const seesReplicas = (n: number) => {
    const seen = new Set<string>();
    let i = 0;
    return waitFor(`the gateway routes to ${n} replicas`, async () => {
      seen.add((await ask(chat(system(`probe-${i++}`), 'hi'))).replica);
      return seen.size >= n || undefined;
    }, { timeoutMs: 30_000 });
  };

  beforeAll(async () => {
    await sdk.replicaGroups.apply({
      name: 'px',
      httpPort: 'http',
      models: [MODEL],
      routing: { policy: 'prefix', prefixChars: 64, loadFactor: 1.25 },
      template: {
        command: process.execPath,
        args: [vllmLike, '--models', MODEL, '--token-delay-ms', '20', '--max-concurrency', '64', '--prefill-delay-ms', '50', '--prefix-chars', '64'],
        env: { VLLM_LIKE_QUIET: '1' },
        ports: [{ name: 'http' }],
        readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 50 },
      },
      replicas: { initial: 3, max: 4 },
    });
    let ready: TestGateway['ready'];
    ({ gw, base, ready } = await startTestGateway(cluster, ['--no-auth', '--metrics-listen', '127.0.0.1:0']));
    metricsUrl = `http://${ready.metrics}/metrics`;
    await waitFor('3 replicas ready', async () => (await sdk.replicaGroups.get('px')).replicas.filter((r) => r.state === 'ready').length === 3 || undefined, { timeoutMs: 60_000 });
  }, 90_000);
  afterAll(async () => {
    await gw?.stop();
  });

  it('spreads different system prompts over the replicas', async () => {
    await seesReplicas(3);
    const where = await placement(Array.from({ length: 30 }, (_, i) => system(`spread-${i}`)));
    const counts = new Map<string, number>();
    for (const r of where.values()) counts.set(r, (counts.get(r) ?? 0) + 1);
    expect(counts.size).toBe(3);
  });

  it('sends requests sharing a system prompt to one replica, which answers them from its prefix cache', async () => {
    const sys = system('shared');
    const answers = [];
    for (let i = 0; i < 10; i++) answers.push(await ask(chat(sys, `question number ${i}: what is ${i} + ${i}?`)));
    expect(new Set(answers.map((a) => a.replica)).size).toBe(1);
    expect(answers.map((a) => a.cache)).toEqual(['miss', ...Array<string>(9).fill('hit')]);
    // A caller's key wins over the prompt: one key, many prompts, one replica.
    const keyed = [];
    for (let i = 0; i < 10; i++) keyed.push((await ask(chat(system(`keyed-${i}`), 'hi'), { 'x-muster-route-key': 'tenant-7' })).replica);
    expect(new Set(keyed).size).toBe(1);
  });

  it('spills a hot prompt beyond its replica when many arrive at once, keeping the largest share there', async () => {
    const sys = system('hot');
    const home = (await ask(chat(sys, 'warm up'))).replica;
    const before = await (await fetch(metricsUrl)).text();
    // 24 at once, each generating 100 tokens at 20 ms (2 s): all in flight together.
    const answers = await Promise.all(Array.from({ length: 24 }, (_, i) => ask(chat(sys, `q${i}`, { max_tokens: 100 }))));
    const counts = new Map<string, number>();
    for (const a of answers) counts.set(a.replica, (counts.get(a.replica) ?? 0) + 1);
    expect(counts.size).toBeGreaterThanOrEqual(2);
    expect(counts.get(home)).toBe(Math.max(...counts.values()));
    expect(counts.get(home)).toBeLessThanOrEqual(Math.ceil((1.25 * 24) / 3)); // the bound: c × the average
    const after = await (await fetch(metricsUrl)).text();
    const delta = (outcome: string) => sample(after, 'muster_router_prefix_routes_total', { group: 'px', outcome }) - sample(before, 'muster_router_prefix_routes_total', { group: 'px', outcome });
    expect(delta('hit')).toBe(counts.get(home));
    expect(delta('fallback')).toBe(24 - counts.get(home)!);
  });

  it('routes by key from the SDK too: a serve() group, keyed by routeKey or by the payload\'s prompt', async () => {
    await sdk.replicaGroups.apply({
      name: 'px-ts',
      routing: { policy: 'prefix', prefixChars: 16 },
      template: { command: process.execPath, args: [replicaFixture], readiness: { kind: 'sdk' } },
      replicas: { initial: 3, max: 3 },
    });
    const g = await sdk.replicaGroups.get('px-ts');
    const who = async (payload: unknown, routeKey?: string) => ((await g.call(payload, { timeoutMs: 10_000, ...(routeKey ? { routeKey } : {}) })) as { replicaId: string }).replicaId;
    const seen = new Set<string>();
    let i = 0;
    await waitFor('the router has 3 replicas', async () => (seen.add(await who({ prompt: `probe ${i++} ...............` })), seen.size === 3 || undefined), { timeoutMs: 60_000 });
    const byKey = new Set<string>();
    for (let k = 0; k < 10; k++) byKey.add(await who({ n: k }, 'session-42'));
    expect(byKey.size).toBe(1);
    const byPrompt = new Set<string>();
    for (let k = 0; k < 10; k++) byPrompt.add(await who({ prompt: `The shared prefix, then question ${k}` }));
    expect(byPrompt.size).toBe(1);
    const routes = (await g.routerOf()).stats().prefixRoutes;
    expect(routes.hit).toBeGreaterThanOrEqual(20); // one at a time, nothing loaded: every keyed call on its first choice
    expect(routes.unkeyed).toBe(0);
  }, 90_000);

  it('moves keys only to a replica added by scaling up', async () => {
    const prompts = Array.from({ length: 40 }, (_, i) => system(`scale-${i}`));
    const three = await placement(prompts);
    await sdk.replicaGroups.scale('px', 4);
    await seesReplicas(4);
    const four = await placement(prompts);
    const old = new Set(three.values());
    const moved = prompts.filter((p) => four.get(p) !== three.get(p));
    expect(moved.length).toBeGreaterThan(0);
    for (const p of moved) expect(old.has(four.get(p)!)).toBe(false); // each to the new replica
    expect(new Set(moved.map((p) => four.get(p))).size).toBe(1);
  }, 60_000);
});

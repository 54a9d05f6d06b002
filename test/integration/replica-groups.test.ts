/**
 * Replica groups end to end: the head's controller, real gangs of TS
 * replicas (test/fixtures/replica.mjs serving with the SDK's serve()), real
 * NATS, and the router in this process.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isMusterError, type Cluster, type ReplicaGroup, type ReplicaGroupSpec } from '@muster/sdk';
import { execa } from 'execa';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';
import { startTestGateway } from './gateway.test-support.js';

const replica = fileURLToPath(new URL('../fixtures/replica.mjs', import.meta.url));
const cli = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));

type Answer = { replicaId: string; revision: string; pid: number };

/** Runs `total` calls with `concurrency` in flight; returns answers and errors. */
async function load(g: ReplicaGroup, total: number, concurrency: number, opts: { idempotent?: boolean; during?: (done: number) => Promise<void> | void } = {}) {
  const answers: Answer[] = [];
  const errors: unknown[] = [];
  let issued = 0;
  let duringRan = false;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (issued < total) {
      const i = issued++;
      if (opts.during && !duringRan && i >= total / 4) {
        duringRan = true;
        void opts.during(i);
      }
      try {
        answers.push((await g.call({ i }, { timeoutMs: 10_000, idempotent: opts.idempotent ?? false })) as Answer);
      } catch (e) {
        errors.push(e);
      }
    }
  }));
  return { answers, errors };
}

const countBy = <T>(xs: T[], key: (x: T) => string) => xs.reduce((m, x) => m.set(key(x), (m.get(key(x)) ?? 0) + 1), new Map<string, number>());

describe('replica groups', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  const spec = (over: Partial<ReplicaGroupSpec> = {}): ReplicaGroupSpec => ({
    name: 'echo',
    tp: 2,
    resources: { gpus: 1 },
    template: { command: process.execPath, args: [replica], readiness: { kind: 'sdk' }, env: { SERVICE_MS: '2' } },
    replicas: { min: 0, max: 6, initial: 3 },
    startup: { gracePeriodMs: 5_000, backoffInitialMs: 200 },
    drainDeadlineMs: 10_000,
    ...over,
  });
  const readyCount = async (g: ReplicaGroup, n: number) =>
    waitFor(`${n} ready replicas of ${g.name}`, async () => {
      const r = await g.refresh();
      return r.replicas.filter((x) => x.state === 'ready').length === n && r.replicas.length === n ? r : undefined;
    }, { timeoutMs: 30_000, intervalMs: 100 });

  useCluster({ workers: 3 }, (fx) => ({ cluster, sdk } = fx));

  it('spreads 2,000 calls over 3 replicas (TP=2 each) within ±15%, with zero errors', async () => {
    const g = await sdk.replicaGroups.apply(spec());
    await readyCount(g, 3);
    for (const r of g.replicas) {
      const gang = await sdk.gangs.get(r.gangId);
      expect(gang.ranks).toHaveLength(2);
    }
    const { answers, errors } = await load(g, 2_000, 16);
    expect(errors).toEqual([]);
    const per = countBy(answers, (a) => a.replicaId);
    expect(per.size).toBe(3);
    for (const n of per.values()) expect(Math.abs(n - 2_000 / 3)).toBeLessThanOrEqual(0.15 * (2_000 / 3));
    // Lets go of the shared router, which the tests below see close when their last handle does.
    g.close();
  });

  it('gives concurrent first calls on one handle, and every handle of the group, one router (each router holds a NATS subscription and a membership watch)', async () => {
    const g = await sdk.replicaGroups.get('echo');
    const routers = await Promise.all(Array.from({ length: 8 }, () => g.routerOf()));
    expect(new Set(routers).size).toBe(1);
    const answers = await Promise.all(Array.from({ length: 8 }, () => g.call({ n: 1 })));
    expect(answers).toHaveLength(8);
    // Every handle of the group uses the process's one router of it (the one overflow goes through too);
    // closing a handle lets go of it, and the router serves the other handles until the last lets go.
    const other = await sdk.replicaGroups.get('echo');
    expect(await other.routerOf()).toBe(routers[0]);
    g.close();
    await expect(other.call({ n: 2 })).resolves.toBeDefined();
    other.close();
  });

  it('refuses close() on the shared router routerOf() gives (the other handles keep calling), and closes it when the last handle lets go', async () => {
    const a = await sdk.replicaGroups.get('echo');
    const b = await sdk.replicaGroups.get('echo');
    const shared = await a.routerOf();
    expect(await b.routerOf()).toBe(shared);
    let refused: unknown;
    try {
      shared.close();
    } catch (e) {
      refused = e;
    }
    expect(isMusterError(refused) && refused.code).toBe(ErrorCode.FAILED_PRECONDITION);
    expect((refused as Error).message).toMatch(/shared router of replica group "echo".*handle\.close\(\) lets go of this handle's use of it.*routerOf\(options\)/);
    await expect(b.call({ n: 1 })).resolves.toBeDefined();
    a.close();
    await expect(b.call({ n: 2 })).resolves.toBeDefined();
    // The last user lets go: the router is closed then (no call out, none accepted), and its close() is a closed router's no-op.
    b.close();
    await expect(shared.call({ n: 3 })).rejects.toMatchObject({ code: ErrorCode.CANCELLED });
    expect(shared.stats().replySubjects).toBe(0);
    expect(() => shared.close()).not.toThrow();
    const c = await sdk.replicaGroups.get('echo');
    expect(await c.routerOf()).not.toBe(shared);
    await expect(c.call({ n: 4 })).resolves.toBeDefined();
    c.close();
    // A router of a handle's own (routerOf with options): close() closes it.
    const d = await sdk.replicaGroups.get('echo');
    const own = await d.routerOf({ maxQueued: 100 });
    await expect(d.call({ n: 5 })).resolves.toBeDefined();
    // Asked again with the same options: the same router; with others, or on a handle that calls
    // through the shared router, refused rather than handing out a router the options do not shape.
    expect(await d.routerOf({ maxQueued: 100 })).toBe(own);
    await expect(d.routerOf({ maxQueued: 5 })).rejects.toMatchObject({ code: ErrorCode.FAILED_PRECONDITION, message: expect.stringMatching(/already calls through a router of its own, made with other options/) });
    own.close();
    await expect(d.call({ n: 6 })).rejects.toMatchObject({ code: ErrorCode.CANCELLED });
    d.close();
    const e = await sdk.replicaGroups.get('echo');
    await e.call({ n: 7 });
    await expect(e.routerOf({ maxQueued: 100 })).rejects.toMatchObject({ code: ErrorCode.FAILED_PRECONDITION, message: expect.stringMatching(/already calls through the process's shared router of the group/) });
    e.close();
    const own2 = await e.routerOf({ maxQueued: 100 });
    expect(own2).not.toBe(own);
    e.close();
  });

  it('applies idempotently, and a replica count change never rolls out', async () => {
    const before = (await sdk.replicaGroups.get('echo')).toJSON();
    const same = (await sdk.replicaGroups.apply(spec())).toJSON();
    expect(same.revision).toBe(before.revision);
    expect(same.replicas.map((r) => r.id).sort()).toEqual(before.replicas.map((r) => r.id).sort());
    const more = await sdk.replicaGroups.apply(spec({ replicas: { min: 0, max: 6, initial: 3 } }));
    expect(more.toJSON().revision).toBe(before.revision);
  });

  it('keeps answering every call while a rank of one replica is killed, and rebuilds the replica', async () => {
    const g = await sdk.replicaGroups.get('echo');
    const victim = g.replicas[0]!;
    const gang = await sdk.gangs.get(victim.gangId);
    const rank1 = gang.ranks.find((r) => r.rank === 1)!;
    const { answers, errors } = await load(g, 1_500, 16, { idempotent: true, during: () => void process.kill(rank1.pid, 'SIGKILL') });
    expect(errors).toEqual([]);
    expect(answers).toHaveLength(1_500);
    await waitFor('the replica rebuilt', async () => (await sdk.gangs.get(victim.gangId)).toJSON().attempt === 2 || undefined, { timeoutMs: 15_000 });
    await readyCount(g, 3);
  });

  it('scales 3 → 1 under load with zero failed calls (drain), then 1 → 3 with new replicas taking traffic', async () => {
    const g = await sdk.replicaGroups.get('echo');
    const down = await load(g, 1_500, 16, { during: () => void g.scale(1) });
    expect(down.errors).toEqual([]);
    await readyCount(g, 1);
    await g.scale(3);
    await readyCount(g, 3);
    await waitFor('routers to see 3 replicas', async () => {
      const { answers } = await load(g, 90, 8);
      return countBy(answers, (a) => a.replicaId).size === 3 || undefined;
    }, { timeoutMs: 10_000 });
  });

  it('with connect({ direct: true }) calls go on direct links to the replicas the workers started (MUSTER_DATA_ADDR), and a scale-down under load fails none', async () => {
    const client = await cluster.connect({ direct: true });
    try {
      const g = await client.replicaGroups.get('echo');
      await readyCount(g, 3);
      const router = await g.routerOf();
      await waitFor('3 direct links up', async () => {
        await load(g, 30, 3);
        return router.stats().direct?.up === 3 || undefined;
      }, { timeoutMs: 15_000 });
      const sent = router.stats().direct!.sent;
      const down = await load(g, 1_500, 16, { during: () => void g.scale(1) });
      expect(down.errors).toEqual([]);
      expect(down.answers).toHaveLength(1_500);
      expect(router.stats().direct!.sent).toBeGreaterThan(sent + 750);
      await readyCount(g, 1);
      await g.scale(3);
      await readyCount(g, 3);
      g.close();
    } finally {
      client.close();
    }
  });

  it('sends 10% ± 3% of 1,000 calls to a canary revision', async () => {
    const canary = spec({ template: { command: process.execPath, args: [replica], readiness: { kind: 'sdk' }, env: { SERVICE_MS: '2', FLAVOUR: 'canary' } }, rollout: { strategy: 'canary', canaryWeight: 0.1 } });
    const g = await sdk.replicaGroups.apply(canary);
    const v = g.toJSON();
    expect(v.stableRevision).not.toBe('');
    await waitFor('stable and canary both serving', async () => {
      const r = (await g.refresh()).toJSON();
      return r.replicas.some((x) => x.revision === v.revision && x.state === 'ready') && r.replicas.filter((x) => x.revision === v.stableRevision && x.state === 'ready').length === 3 || undefined;
    }, { timeoutMs: 30_000 });
    await waitFor('the router to see the weights', async () => {
      const { answers } = await load(g, 200, 8);
      return answers.some((a) => a.revision === v.revision) || undefined;
    }, { timeoutMs: 10_000 });
    const { answers, errors } = await load(g, 1_000, 8);
    expect(errors).toEqual([]);
    const share = answers.filter((a) => a.revision === v.revision).length / answers.length;
    expect(share).toBeGreaterThanOrEqual(0.07);
    expect(share).toBeLessThanOrEqual(0.13);
  });

  it('serves the group over HTTP through `muster gateway`: curl streams, bad requests get a clear 4xx', async () => {
    const { gw, ready: { address } } = await startTestGateway(cluster, ['--no-auth']);
    try {
      const call = await execa('curl', ['-sS', '-X', 'POST', '-d', '{"hello":1}', `http://${address}/v1/groups/echo/call`]);
      expect(JSON.parse(call.stdout)).toMatchObject({ echo: { hello: 1 } });
      const stream = await execa('curl', ['-sS', '-N', '-X', 'POST', '-d', '{"n":3}', `http://${address}/v1/groups/echo/stream`]);
      const lines = stream.stdout.trim().split('\n').map((l) => JSON.parse(l) as { i: number });
      expect(lines.map((l) => l.i)).toEqual([0, 1, 2]);
      const bad = await execa('curl', ['-sS', '-w', '\n%{http_code}', '-X', 'POST', '-d', '{not json', `http://${address}/v1/groups/echo/call`]);
      expect(bad.stdout.split('\n').pop()).toBe('400');
      expect(bad.stdout).toMatch(/malformed JSON body/);
      const unknown = await execa('curl', ['-sS', '-w', '\n%{http_code}', '-X', 'POST', '-d', '{}', `http://${address}/v1/groups/nope/call`]);
      expect(unknown.stdout.split('\n').pop()).toBe('404');
      expect(unknown.stdout).toMatch(/no replica group \\"nope\\"/);
    } finally {
      await gw.stop();
    }
  });

  it('bridges a shard that speaks HTTP (vLLM-style): JSON calls and SSE streaming through the gateway', async () => {
    const httpShard = fileURLToPath(new URL('../fixtures/http-shard.mjs', import.meta.url));
    const g = await sdk.replicaGroups.apply({
      name: 'llm',
      resources: { gpus: 1 },
      httpPort: 'http',
      template: { command: process.execPath, args: [httpShard], ports: [{ name: 'http' }], readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 50 } },
      replicas: { initial: 2, max: 2 },
    });
    await readyCount(g, 2);
    const viaSdk = (await g.call({ path: '/v1/completions', body: { prompt: 'hi there' } }, { timeoutMs: 5_000 })) as { status: number; body: { text: string } };
    expect(viaSdk).toMatchObject({ status: 200, body: { text: 'echo: hi there' } });
    // A large body: streamed in bounded chunks, whole; as a unary answer, refused by its limit.
    const big = 12 * 1024 * 1024;
    let streamed = 0;
    let largest = 0;
    for await (const chunk of g.stream({ method: 'GET', path: `/big?bytes=${big}` }, { timeoutMs: 30_000 })) {
      streamed += (chunk as string).length;
      largest = Math.max(largest, (chunk as string).length);
    }
    expect(streamed).toBe(big);
    expect(largest).toBeLessThanOrEqual(64 * 1024);
    const tooBig = await g.call({ method: 'GET', path: `/big?bytes=${big}` }, { timeoutMs: 10_000 }).then(() => undefined, (e: unknown) => e as Error);
    expect(tooBig?.message).toMatch(/over 4194304 bytes.*call it as a stream/);
    const { gw, ready: { address } } = await startTestGateway(cluster, ['--no-auth']);
    try {
      const json = await execa('curl', ['-sS', '-H', 'content-type: application/json', '-d', '{"prompt":"a b"}', `http://${address}/v1/groups/llm/http/v1/completions`]);
      expect(JSON.parse(json.stdout)).toMatchObject({ text: 'echo: a b' });
      const sse = await execa('curl', ['-sS', '-N', '-H', 'accept: text/event-stream', '-H', 'content-type: application/json', '-d', '{"prompt":"one two three","stream":true}', `http://${address}/v1/groups/llm/http/v1/completions`]);
      const events = sse.stdout.split('\n\n').map((e) => e.trim()).filter(Boolean).map((e) => e.replace(/^data: /, ''));
      expect(events).toEqual(['{"token":"one"}', '{"token":"two"}', '{"token":"three"}', '[DONE]']);
    } finally {
      await gw.stop();
    }
    await sdk.replicaGroups.delete('llm');
    await waitFor('llm gone', async () => !(await sdk.replicaGroups.list()).some((x) => x.name === 'llm') || undefined, { timeoutMs: 30_000 });
  });

  it('works from the CLI: apply -f (idempotent), rg ls, get, scale, events, delete', async () => {
    const env = cluster.clientEnv();
    const file = join(cluster.dataDir, 'cli-rg.yaml');
    await writeFile(file, [
      'kind: ReplicaGroup', 'name: cli-echo', 'resources: { gpus: 1 }', 'replicas: { min: 1, max: 3, initial: 1 }',
      'template:', `  command: ${process.execPath}`, `  args: [${replica}]`, '  readiness: { kind: sdk }', '',
    ].join('\n'));
    const first = await execa(process.execPath, [cli, 'apply', '-f', file], { env });
    const again = await execa(process.execPath, [cli, 'apply', '-f', file], { env });
    expect(again.stdout).toBe(first.stdout); // same revision, nothing rolled out
    const g = await sdk.replicaGroups.get('cli-echo');
    await readyCount(g, 1);
    expect((await execa(process.execPath, [cli, 'rg', 'scale', 'cli-echo', '2'], { env })).stdout).toMatch(/scaled to 2/);
    await readyCount(g, 2);
    expect((await execa(process.execPath, [cli, 'rg', 'ls'], { env })).stdout).toMatch(/cli-echo\s+2\s+2/);
    const get = await execa(process.execPath, [cli, 'rg', 'get', 'cli-echo'], { env });
    expect(get.stdout.split('\n').filter((l) => /^r-[0-9a-f]+\s/.test(l))).toHaveLength(2);
    const bad = await execa(process.execPath, [cli, 'rg', 'scale', 'cli-echo', '9'], { env, reject: false });
    expect(bad.stderr).toMatch(/replicas: 9 is outside cli-echo's bounds min 1 … max 3 .*\[MUSTER_INVALID_ARGUMENT\]/);
    const events = await execa(process.execPath, [cli, 'rg', 'events', 'cli-echo'], { env });
    expect(events.stdout).toMatch(/rg\.created/);
    expect(events.stdout).toMatch(/rg\.scaled .*scaled to 2/);
    expect((await execa(process.execPath, [cli, 'rg', 'delete', 'cli-echo'], { env })).stdout).toMatch(/being deleted/);
    await waitFor('cli-echo gone', async () => !(await sdk.replicaGroups.list()).some((x) => x.name === 'cli-echo') || undefined, { timeoutMs: 30_000 });
    g.close();
  });

  it('deletes a group: drains, stops every gang, frees every placement group', async () => {
    await sdk.replicaGroups.delete('echo');
    await waitFor('the group to be gone', async () => (await sdk.replicaGroups.list()).length === 0 || undefined, { timeoutMs: 30_000 });
    expect(await sdk.placementGroups.list()).toEqual([]);
  });
});

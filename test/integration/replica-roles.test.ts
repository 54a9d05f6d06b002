/**
 * Issue 18, points 3 and 4, end to end on real processes: a replica group
 * whose replica is 1 prefill + 2 decode engines (the vLLM-like fixture in
 * both roles, test/fixtures/pd-role.mjs) is placed together (one placement
 * group, three bundles, on one node as its topology rule asks), starts only
 * when all three ranks are ready, restarts as one when a decode rank dies,
 * and scales as a unit (2 replicas = 6 ranks; scaled down, a replica's
 * gang stops every role's rank; a role's count changes by a rollout of whole
 * replicas; a head killed and restarted leaves it READY on the same
 * processes); OpenAI calls through a real
 * `muster gateway` reach the prefill engine (the entry role), then a decode
 * engine, as both record. The spec is the example's, examples/disaggregated/pd.yaml.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkReplicaGroupSpec, type Cluster, type ReplicaGroupSpec } from '@muster/sdk';
import { waitFor, type LocalCluster, type ManagedProcess } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';
import { startTestGateway } from './gateway.test-support.js';

const vllmLike = fileURLToPath(new URL('../fixtures/vllm-like.mjs', import.meta.url));
const example = fileURLToPath(new URL('../../examples/disaggregated/pd.yaml', import.meta.url));

/**
 * The example's spec (examples/disaggregated/pd.yaml), run as it is but for
 * the fixture's path and node's: prefill ×1 (entry) + decode ×2, both the
 * vLLM-like engine, the decode engines loading slower (the barrier has a
 * window to show), every bundle on one node.
 */
async function exampleSpec(): Promise<ReplicaGroupSpec> {
  const { kind: _kind, ...doc } = parseYaml(await readFile(example, 'utf8')) as Record<string, unknown>;
  const spec = checkReplicaGroupSpec(doc);
  for (const r of spec.roles ?? []) {
    r.template.command = process.execPath;
    r.template.args = (r.template.args ?? []).map((a) => (a.endsWith('test/fixtures/vllm-like.mjs') ? vllmLike : a));
  }
  return spec;
}

type Recorded = { role: string; index: number; at: number; prompt: string; kv: { prefilled_by?: string } | null };

describe('replica groups with roles (prefill/decode as one unit)', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  let gw: ManagedProcess | undefined;
  useCluster({ workers: 1 }, (fx) => ({ cluster, sdk } = fx));

  const gangOf = async (client: Cluster = sdk) => {
    const g = await client.replicaGroups.get('pd');
    const r = g.replicas[0];
    return r ? { replica: r, gang: (await client.gangs.get(r.gangId)).toJSON() } : undefined;
  };

  beforeAll(async () => {
    const spec = await exampleSpec();
    expect(spec.roles?.map((r) => [r.name, r.count ?? 1])).toEqual([['prefill', 1], ['decode', 2]]);
    await sdk.replicaGroups.apply(spec);
  }, 30_000);
  afterAll(async () => {
    await gw?.stop();
  });

  it('one replica is one placement group with every role\'s bundles, and starts only when all three roles are ready', async () => {
    // A moment where prefill is ready and the decode engines are still loading: the gang is not READY.
    const early = await waitFor('prefill ready, decode still loading', async () => {
      const x = await gangOf();
      const ranks = x?.gang.ranks ?? [];
      return ranks.length === 3 && ranks.some((r) => r.role === 'prefill' && r.phase === 'ready') && ranks.some((r) => r.role === 'decode' && r.phase !== 'ready') ? x : undefined;
    }, { timeoutMs: 20_000, intervalMs: 25 });
    expect(early.gang.state).toBe('starting');

    const ready = await waitFor('the replica READY', async () => {
      const x = await gangOf();
      return x?.replica.state === 'ready' ? x : undefined;
    }, { timeoutMs: 30_000 });
    const ranks = ready.gang.ranks;
    expect(ready.gang.state).toBe('ready');
    expect(ranks.map((r) => [r.rank, r.role, r.roleIndex, r.phase])).toEqual([
      [0, 'prefill', 0, 'ready'], [1, 'decode', 0, 'ready'], [2, 'decode', 1, 'ready'],
    ]);
    const pg = (await sdk.placementGroups.get(ready.replica.placementGroupId)).toJSON();
    expect(pg.state).toBe('created');
    expect(pg.spec.bundles).toHaveLength(3);
    expect(pg.placements).toHaveLength(3);
    expect(new Set(pg.placements.map((p) => p.nodeId)).size).toBe(1);
  }, 60_000);

  it('OpenAI calls through the gateway reach prefill, then decode', async () => {
    let base: string;
    ({ gw, base } = await startTestGateway(cluster, ['--no-auth']));
    const ask = async (content: string, stream = false) => {
      const res = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'pd-model', messages: [{ role: 'user', content }], max_tokens: 3, stream }) });
      return { status: res.status, prefill: res.headers.get('x-prefill-by'), decode: res.headers.get('x-decode-by'), text: await res.text() };
    };
    const a = await ask('alpha words here');
    const b = await ask('beta words here', true);
    expect(a.status).toBe(200);
    expect(JSON.parse(a.text).choices[0].message.content).toContain('alpha');
    expect(b.status).toBe(200);
    expect(b.text).toContain('[DONE]');
    expect([a.prefill, b.prefill]).toEqual(['prefill#0', 'prefill#0']);
    expect(new Set([a.decode, b.decode])).toEqual(new Set(['decode#0', 'decode#1'])); // round robin over both decode instances

    // What each engine recorded, read from its own port.
    const { gang } = (await gangOf())!;
    const logs = async (rank: number) => (await (await fetch(`http://127.0.0.1:${gang.ranks[rank]!.ports.http}/debug/requests`)).json()) as Recorded[];
    const prefill = await logs(0);
    const decoded = [...(await logs(1)), ...(await logs(2))];
    for (const prompt of ['alpha words here', 'beta words here']) {
      const p = prefill.find((x) => x.prompt === prompt)!;
      const d = decoded.find((x) => x.prompt === prompt)!;
      expect(p.role).toBe('prefill');
      expect(d.role).toBe('decode');
      expect(d.kv?.prefilled_by).toBe('prefill#0');
      expect(d.at).toBeGreaterThanOrEqual(p.at);
    }
  }, 60_000);

  it('restarts as one when a decode rank dies: every rank of every role gets a new process', async () => {
    const before = (await gangOf())!;
    const victim = before.gang.ranks.find((r) => r.role === 'decode' && r.roleIndex === 1)!;
    const pids = before.gang.ranks.map((r) => r.pid);
    process.kill(victim.pid, 'SIGKILL');
    const after = await waitFor('the gang READY again on a new attempt', async () => {
      const x = await gangOf();
      return x && x.gang.attempt > before.gang.attempt && x.gang.state === 'ready' ? x : undefined;
    }, { timeoutMs: 40_000 });
    expect(after.replica.id).toBe(before.replica.id);
    expect(after.gang.restarts).toBe(before.gang.restarts + 1);
    expect(after.gang.lastFailure?.rank).toBe(victim.rank);
    for (const [i, r] of after.gang.ranks.entries()) expect(r.pid).not.toBe(pids[i]);
  }, 60_000);

  it('scales as a unit: 2 replicas are 2 placement groups and 6 ranks', async () => {
    await sdk.replicaGroups.scale('pd', 2);
    const gangs = await waitFor('2 ready replicas', async () => {
      const g = await sdk.replicaGroups.get('pd');
      const ready = g.replicas.filter((r) => r.state === 'ready');
      return ready.length === 2 ? Promise.all(ready.map(async (r) => ({ r, gang: (await sdk.gangs.get(r.gangId)).toJSON(), pg: (await sdk.placementGroups.get(r.placementGroupId)).toJSON() }))) : undefined;
    }, { timeoutMs: 40_000 });
    expect(gangs.flatMap((x) => x.gang.ranks)).toHaveLength(6);
    for (const x of gangs) {
      expect(x.gang.ranks.map((r) => r.role)).toEqual(['prefill', 'decode', 'decode']);
      expect(x.pg.spec.bundles).toHaveLength(3);
    }
    expect(new Set(gangs.map((x) => x.pg.id)).size).toBe(2);
  }, 60_000);

  it('drains and stops a replica as one on scale-down, and changes a role\'s count by rolling out whole replicas', async () => {
    const before = await sdk.replicaGroups.get('pd');
    const oldRevision = before.replicas[0]!.revision;
    await sdk.replicaGroups.scale('pd', 1);
    const gone = await waitFor('one replica left', async () => {
      const g = await sdk.replicaGroups.get('pd');
      const left = before.replicas.filter((r) => !g.replicas.some((x) => x.id === r.id));
      return g.replicas.length === 1 && left.length === 1 ? left[0] : undefined;
    }, { timeoutMs: 30_000 });
    const stopped = await waitFor('its gang stopped', async () => {
      const g = (await sdk.gangs.get(gone!.gangId)).toJSON();
      return g.state === 'stopped' ? g : undefined;
    }, { timeoutMs: 20_000 });
    expect(stopped.ranks.map((r) => [r.role, r.phase])).toEqual([['prefill', 'exited'], ['decode', 'exited'], ['decode', 'exited']]);

    const spec = await exampleSpec();
    spec.roles![1]!.count = 3;
    spec.replicas = { min: 0, max: 2, initial: 1 };
    await sdk.replicaGroups.apply(spec);
    const rolled = await waitFor('the replica rolled to 1 prefill + 3 decode', async () => {
      const g = await sdk.replicaGroups.get('pd');
      const ready = g.replicas.filter((r) => r.state === 'ready');
      if (g.replicas.length !== 1 || ready.length !== 1 || ready[0]!.revision === oldRevision) return undefined;
      return (await sdk.gangs.get(ready[0]!.gangId)).toJSON();
    }, { timeoutMs: 40_000 });
    expect(rolled.ranks.map((r) => `${r.role}#${r.roleIndex}`)).toEqual(['prefill#0', 'decode#0', 'decode#1', 'decode#2']);
  }, 90_000);

  it('a head restart (SIGKILL) changes nothing: the replica stays READY on the same processes, every rank keeps its role', async () => {
    const before = (await gangOf())!;
    expect(before.gang.state).toBe('ready');
    const restartedAt = Date.now();
    await cluster.restartHead(0, 'SIGKILL');
    const fresh = await cluster.connect();
    try {
      // The marker that the new head heard the agent's shard inventory: it comes at registration,
      // before heartbeats, so a heartbeat well after the restart means it has been judged.
      await waitFor('the worker re-registered and heartbeating', async () => {
        const nodes = await fresh.nodes();
        return nodes.every((n) => n.state === 'alive' && n.lastHeartbeatAt.getTime() > restartedAt + 1_000) || undefined;
      }, { timeoutMs: 30_000 });
      const after = (await gangOf(fresh))!;
      expect(after.gang.state).toBe('ready');
      expect(after.gang.attempt).toBe(before.gang.attempt);
      expect(after.gang.ranks.map((r) => [r.role, r.roleIndex, r.pid, r.ports.http])).toEqual(before.gang.ranks.map((r) => [r.role, r.roleIndex, r.pid, r.ports.http]));
    } finally {
      fresh.close();
    }
  }, 60_000);
});

/**
 * What a user looks at, on a real cluster: `muster status` (GPUs used/free
 * per node, the replica groups with ready/desired and revision), `muster rg
 * get` (each replica's load report and the autoscaler's metric and desired
 * count) and `muster logs <group>` (rank 0 of each replica by group name,
 * `--replica`, and a gang id as before). Asserted on the printed text.
 */
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Cluster } from '@muster/sdk';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const vllmLike = fileURLToPath(new URL('../fixtures/vllm-like.mjs', import.meta.url));
const cli = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));

describe('muster status, rg get and logs show the data plane', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  // One node of the simulated 8-GPU profile (dgx1-v100-8).
  useCluster({ workers: [{ profile: 'dgx1-v100-8' }] }, (fx) => ({ cluster, sdk } = fx));
  const muster = async (...args: string[]) => (await execa(process.execPath, [cli, ...args], { env: cluster.clientEnv() })).stdout;

  beforeAll(async () => {
    await sdk.replicaGroups.apply({
      name: 'llm',
      httpPort: 'http',
      resources: { gpus: 1 },
      template: {
        command: process.execPath,
        args: [vllmLike, '--models', 'm'],
        ports: [{ name: 'http' }],
        readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 50 },
      },
      replicas: { min: 2, max: 3, initial: 2 },
      autoscaling: { metric: 'ongoing', target: 4 },
    });
    // Reporting the engine's numbers too: a replica's first report can leave before the worker's first scrape of /metrics.
    await waitFor('2 replicas ready and reporting load with engine numbers', async () => {
      const g = await sdk.replicaGroups.get('llm');
      return (g.replicas.filter((r) => r.state === 'ready' && r.load?.engineWaiting !== undefined).length === 2 && g.toJSON().autoscaler) || undefined;
    }, { timeoutMs: 40_000 });
  }, 60_000);

  it('`muster status`: GPUs used/free on each node, and the groups with ready/desired and revision', async () => {
    const out = await muster('status');
    const revision = (await sdk.replicaGroups.get('llm')).toJSON().revision;
    expect(out).toMatch(/GPUS USED\/FREE/);
    // Two one-GPU replicas on the only node: 2 used, 6 free.
    expect(out).toMatch(/^node-1\s+alive\s+8× .*\s2\/6\s/m);
    expect(out).toMatch(/^GROUP\s+READY\/DESIRED\s+REVISION/m);
    expect(out).toMatch(new RegExp(`^llm\\s+2/2\\s+${revision}\\b`, 'm'));
  });

  it('`muster rg get`: per-replica in flight and queued, and the autoscaler\'s metric and desired count', async () => {
    const out = await muster('rg', 'get', 'llm');
    expect(out).toMatch(/^autoscaler: ongoing 0\/replica \(total 0, target 4, \d+ report\(s\)\) → desired 2: /m);
    expect(out).toMatch(/^REPLICA\s+REVISION\s+STATE\s+IN FLIGHT\s+QUEUED\s+ENGINE W\/R\/KV\s+REPORTED/m);
    const rows = out.split('\n').filter((l) => /^r-[0-9a-f]+\s/.test(l));
    expect(rows).toHaveLength(2);
    // Ready, nothing in flight or queued; the engine's own numbers (the fixture's /metrics): 0 waiting, 0 running.
    for (const row of rows) expect(row).toMatch(/\sready\s+0\s+0\s+0\/0\/\S+\s+\d+s ago\s+gang-/);
    const json = JSON.parse(await muster('rg', 'get', 'llm', '--json')) as { autoscaler: { metric: string; desired: number }; replicas: Array<{ load?: { inFlight: number } }> };
    expect(json.autoscaler).toMatchObject({ metric: 'ongoing', desired: 2 });
    expect(json.replicas.every((r) => r.load?.inFlight === 0)).toBe(true);
  });

  it('`muster logs <group>`: rank 0 of every replica by group name, one with --replica, and a gang by id', async () => {
    const g = await sdk.replicaGroups.get('llm');
    const [a, b] = g.replicas;
    const all = await muster('logs', 'llm', '--tail', '4096');
    for (const r of [a!, b!]) expect(all).toContain(`==> replica ${r.id} (gang ${r.gangId}, rank 0) <==`);
    expect(all.match(/vllm-like: serving m on http:/g)).toHaveLength(2);

    const one = await muster('logs', 'llm', '--replica', b!.id);
    expect(one).toContain(`==> replica ${b!.id}`);
    expect(one).not.toContain(a!.id);
    expect(one).toMatch(/vllm-like: serving m/);

    expect(await muster('logs', a!.gangId)).toMatch(/^vllm-like: serving m/);

    const bad = await execa(process.execPath, [cli, 'logs', 'llm', '--replica', 'r-nope'], { env: cluster.clientEnv(), reject: false });
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toMatch(/group "llm" has no replica "r-nope" \(it has: r-/);
  });
});

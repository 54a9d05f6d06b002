/**
 * Warm-up before READY (docs/gangs.md#warm-up), on real processes: a
 * replica's serve() handler runs the warm-up payloads before any user call
 * reaches it; a failing warm-up fails and restarts the gang with a reason
 * naming the request; a batching replica is warmed up through its batch
 * handler; an HTTP shard is warmed up with HTTP requests.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Cluster, ClusterEventView, ReplicaGroup } from '@muster/sdk';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const warmupReplica = fileURLToPath(new URL('../fixtures/warmup-replica.mjs', import.meta.url));
const httpShard = fileURLToPath(new URL('../fixtures/http-shard.mjs', import.meta.url));
const batchReplica = fileURLToPath(new URL('../fixtures/batch-replica.mjs', import.meta.url));

type Entry = { kind: 'warmup' | 'user'; payload: unknown; stream?: boolean; startedAt: number; endedAt: number };

/** The replicas of `g` and their gangs, as the head has them now. */
async function gangsOf(sdk: Cluster, g: ReplicaGroup) {
  const r = await g.refresh();
  return Promise.all(r.replicas.map(async (x) => ({ replica: x, gang: (await sdk.gangs.get(x.gangId)).toJSON() })));
}

describe('warm-up before READY', () => {
  let sdk: Cluster;
  let cluster: LocalCluster;
  useCluster({ workers: 1 }, (fx) => ({ sdk, cluster } = fx));

  it('runs the warm-up payloads through the handler before the first user call reaches the replica', async () => {
    const g = await sdk.replicaGroups.apply({
      name: 'warm',
      resources: { cpuMillis: 100 },
      template: {
        command: process.execPath,
        args: [warmupReplica],
        readiness: { kind: 'sdk' },
        warmup: { timeoutMs: 30_000, requests: [{ kind: 'call', payload: { warmup: 1, ms: 600 } }, { kind: 'call', payload: { warmup: 2 }, stream: true }, { kind: 'call', payload: { warmup: 3, ms: 600 } }] },
      },
      replicas: { min: 1, max: 1, initial: 1 },
    });
    // Call from the moment the group exists: every call before the warm-up ended must fail to reach it.
    const firstTry = Date.now();
    let tries = 0;
    const answer = await waitFor('a user call answered', async () => {
      tries++;
      try {
        return (await g.call({ user: tries }, { timeoutMs: 500 })) as { history: Entry[] };
      } catch {
        return undefined;
      }
    }, { timeoutMs: 45_000, intervalMs: 20 });
    const h = answer.history;
    expect(h.map((e) => e.kind)).toEqual(['warmup', 'warmup', 'warmup', 'user']);
    expect(h.map((e) => e.payload)).toEqual([{ warmup: 1, ms: 600 }, { warmup: 2 }, { warmup: 3, ms: 600 }, { user: tries }]);
    expect(h[1]!.stream).toBe(true); // the stream handler, read to its end
    for (let i = 1; i < h.length; i++) expect(h[i]!.startedAt).toBeGreaterThanOrEqual(h[i - 1]!.endedAt);
    // The window was observed: user calls were being made while the warm-up ran, and none reached the replica.
    expect(firstTry).toBeLessThan(h[2]!.endedAt);
    expect(tries).toBeGreaterThan(1);

    const gangs = await gangsOf(sdk, g);
    expect(gangs).toHaveLength(1);
    const gang = gangs[0]!.gang;
    expect(gang.restarts).toBe(0); // warmed up on its first counted attempt (a port taken on this host may re-allocate, uncounted)
    const seen: ClusterEventView[] = [];
    for await (const e of sdk.events({ replay: true, untilReplayed: true, kinds: ['gang.'] })) if (e.attributes.gang === gang.id) seen.push(e);
    const last = seen.filter((e) => e.attributes.attempt === String(gang.attempt));
    expect(last.map((e) => e.kind)).toEqual(['gang.starting', 'gang.warmed-up', 'gang.ready']);
    expect(Number(last[1]!.attributes.durationMs)).toBeGreaterThanOrEqual(1_200);
    // The worker's metric: one warm-up of the group, ok.
    const worker = [...cluster.workers.values()][0]!;
    const text = await (await fetch(`http://${worker.metricsAddress}/metrics`)).text();
    expect(text).toMatch(/^muster_warmup_duration_seconds_count\{group="warm",outcome="ok"[^}]*\} 1$/m);
    await sdk.replicaGroups.delete(g.name);
  });

  it("warms a batching replica up through its batch handler, a batch of one", async () => {
    const g = await sdk.replicaGroups.apply({
      name: 'warm-batch',
      resources: { cpuMillis: 100 },
      template: {
        command: process.execPath,
        args: [batchReplica],
        readiness: { kind: 'sdk' },
        warmup: { timeoutMs: 30_000, requests: [{ kind: 'call', payload: { warmup: 1 } }] },
      },
      replicas: { min: 1, max: 1, initial: 1 },
    });
    const answer = await waitFor('a user call answered', async () => {
      try {
        return (await g.call({ user: 1 }, { timeoutMs: 500 })) as { echo: unknown; batch: number; size: number };
      } catch {
        return undefined;
      }
    }, { timeoutMs: 45_000, intervalMs: 50 });
    // The fixture numbers its batches from 0: batch 0 was the warm-up's.
    expect(answer).toEqual({ echo: { user: 1 }, batch: 1, size: 1 });
    const gangs = await gangsOf(sdk, g);
    expect(gangs.map((x) => x.gang.restarts)).toEqual([0]);
    await sdk.replicaGroups.delete(g.name);
  });

  it('fails and restarts the gang when a warm-up request fails, naming the request; the replica never takes traffic', async () => {
    const g = await sdk.replicaGroups.apply({
      name: 'cold',
      resources: { cpuMillis: 100 },
      template: {
        command: process.execPath,
        args: [warmupReplica],
        readiness: { kind: 'sdk' },
        warmup: { requests: [{ kind: 'call', payload: { warmup: 1 } }, { kind: 'call', payload: { warmup: 2, fail: 'weights missing' } }] },
      },
      replicas: { min: 1, max: 1, initial: 1 },
      startup: { maxRestarts: 2, backoffInitialMs: 100 },
    });
    const failed = await waitFor('the gang restarted after its warm-up failed', async () => {
      const gangs = await gangsOf(sdk, g);
      return gangs.find((x) => x.gang.restarts >= 1 && x.gang.lastFailure)?.gang;
    }, { timeoutMs: 45_000, intervalMs: 100 });
    expect(failed.lastFailure?.rank).toBe(0);
    expect(failed.lastFailure?.reason).toBe('warm-up request 2 of 2 (call) failed: the handler failed: model not loaded (weights missing)');
    const r = await g.refresh();
    expect(r.replicas.every((x) => x.state !== 'ready')).toBe(true);
    await expect(g.call({ user: 1 }, { timeoutMs: 300 })).rejects.toThrow();
    await sdk.replicaGroups.delete(g.name);
  });

  it('warms an HTTP shard up with HTTP requests, and fails one whose request answers an error status', async () => {
    const http = (name: string, path: string) => sdk.replicaGroups.apply({
      name,
      httpPort: 'http',
      resources: { cpuMillis: 100 },
      template: {
        command: process.execPath,
        args: [httpShard],
        ports: [{ name: 'http' }],
        readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 50 },
        warmup: { requests: [{ kind: 'http', port: 'http', path, body: { prompt: 'warm up' } }] },
      },
      replicas: { min: 1, max: 1, initial: 1 },
      startup: { maxRestarts: 1, backoffInitialMs: 100 },
    });
    const [good, bad] = await Promise.all([http('http-warm', '/v1/completions'), http('http-cold', '/v1/nope')]);
    await waitFor('the warmed-up HTTP replica ready', async () => ((await good.refresh()).replicas.some((x) => x.state === 'ready') ? true : undefined), { timeoutMs: 45_000, intervalMs: 100 });
    const answer = (await good.call({ method: 'POST', path: '/v1/completions', body: { prompt: 'hello' } }, { timeoutMs: 10_000 })) as { status: number; body: { text: string } };
    expect(answer).toMatchObject({ status: 200, body: { text: 'echo: hello' } });
    const failed = await waitFor('the HTTP gang restarted after its warm-up failed', async () => (await gangsOf(sdk, bad)).find((x) => x.gang.restarts >= 1)?.gang, { timeoutMs: 45_000, intervalMs: 100 });
    expect(failed.lastFailure?.reason).toMatch(/^warm-up request 1 of 1 \(http POST :\d+\/v1\/nope\) failed: status 404, expected 2xx$/);
    await Promise.all([sdk.replicaGroups.delete(good.name), sdk.replicaGroups.delete(bad.name)]);
  });
});

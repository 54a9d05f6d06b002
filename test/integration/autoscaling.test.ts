/**
 * Autoscaling on real processes: a replica group of test replicas with a
 * controllable service time (SERVICE_MS, MAX_CONCURRENT), callers in this
 * process, the head's autoscaler deciding from the replicas' and routers'
 * load reports.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster, ClusterEventView, ReplicaGroup } from '@muster/sdk';
import { waitFor } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const replica = fileURLToPath(new URL('../fixtures/replica.mjs', import.meta.url));

describe('autoscaling', () => {
  let sdk: Cluster;
  let g: ReplicaGroup;
  const decisions: ClusterEventView[] = [];
  const stopEvents = new AbortController();
  let watching: Promise<void>;

  useCluster({ workers: 2 }, (fx) => ({ sdk } = fx));
  beforeAll(async () => {
    watching = (async () => {
      for await (const e of sdk.events({ kinds: ['rg.autoscale'], signal: stopEvents.signal })) decisions.push(e);
    })();
    g = await sdk.replicaGroups.apply({
      name: 'auto',
      resources: { gpus: 1 },
      template: { command: process.execPath, args: [replica], readiness: { kind: 'sdk' }, env: { SERVICE_MS: '40', MAX_CONCURRENT: '2' } },
      replicas: { min: 0, max: 6, initial: 1 },
      autoscaling: { metric: 'queue', target: 5, upscaleDelayMs: 500, downscaleDelayMs: 3_000, scaleToZeroAfterMs: 4_000, maxStep: 4 },
    });
    await waitFor('1 ready replica', async () => ((await g.refresh()).replicas.filter((r) => r.state === 'ready').length === 1) || undefined, { timeoutMs: 20_000 });
  });
  afterAll(async () => {
    stopEvents.abort();
    await watching;
    g?.close();
  });

  it('scales up within a second after the upscale delay under a step from 1 to 40 callers, settles with at most one reversal, then down and to zero with zero failed calls, and back from zero', async () => {
    let callers = 1;
    let failures = 0;
    let served = 0;
    const running: Array<Promise<void>> = [];
    const caller = async (id: number) => {
      while (id < callers) {
        try {
          await g.call({ id }, { timeoutMs: 30_000 });
          served++;
        } catch {
          failures++;
        }
      }
    };
    running.push(caller(0));
    await waitFor('some traffic', () => served > 10 || undefined);

    // Step: 40 callers against 1 replica doing 2 × 25 calls/s.
    const stepAt = Date.now();
    callers = 40;
    for (let i = 1; i < 40; i++) running.push(caller(i));
    const up = await waitFor('a scale-up decision', () => decisions.find((d) => Number(d.attributes.to) > Number(d.attributes.from)), { timeoutMs: 10_000 });
    // Replicas report load every second and the autoscaler decides every 250 ms:
    // the queue is seen ≤ 1 s after the step, the decision ≤ 250 ms after the delay.
    expect(up.time.getTime() - stepAt).toBeLessThanOrEqual(500 + 1_000 + 1_000);
    expect(up.message).toMatch(/queue/);
    expect(up.attributes).toMatchObject({ group: 'auto', from: '1' });

    // Steady load: count direction reversals over the next 60 s.
    const steadyFrom = Date.now();
    await new Promise((r) => setTimeout(r, 60_000));
    const steady = decisions.filter((d) => d.time.getTime() >= steadyFrom);
    const dirs = steady.map((d) => Math.sign(Number(d.attributes.to) - Number(d.attributes.from)));
    const reversals = dirs.filter((d, i) => i > 0 && d !== dirs[i - 1]).length;
    expect(reversals).toBeLessThanOrEqual(1);
    expect(Math.max(...decisions.map((d) => Number(d.attributes.to)))).toBeGreaterThanOrEqual(3);

    // Load stops: down after the downscale delay, then to zero after the idle delay.
    callers = 0;
    await Promise.all(running);
    await waitFor('scaled to zero', async () => ((await g.refresh()).desired === 0) || undefined, { timeoutMs: 30_000 });
    await waitFor('every replica gone', async () => ((await g.refresh()).replicas.filter((r) => r.state !== 'failed').length === 0) || undefined, { timeoutMs: 30_000 });
    expect(failures).toBe(0);

    // From zero: the next call waits while a replica starts, and succeeds.
    const t0 = Date.now();
    const answer = (await g.call({ wake: true }, { timeoutMs: 30_000 })) as { echo: unknown };
    expect(answer.echo).toEqual({ wake: true });
    expect(Date.now() - t0).toBeLessThan(30_000);
  }, 180_000);
});

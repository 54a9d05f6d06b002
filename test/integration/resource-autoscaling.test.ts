/**
 * Resource-metric autoscaling on real processes (issue 17, point 4): a group
 * of CPU-burning replicas (test/fixtures/cpu-burner.mjs: busy while it has
 * calls, idle otherwise), the workers measuring the ranks' CPU from /proc
 * and reporting it on the group's load subject, the head's autoscaler on a
 * policy of two metrics — `cpu` (cores per replica) and `queue` with a target
 * the load never reaches — so every change must be the CPU's, and each
 * decision names the metric that drove it.
 *
 * The workers have simulated GPUs (the test kit's profile), so the GPU
 * stand-ins are checked too.
 *
 * In order: idle, the group is measured (a CPU reading below the band is
 * the marker that the idle window was observed) and stays at one replica;
 * callers arrive and it scales up on cpu; they stop and it comes back down
 * to one on cpu; no call fails. The target is a small fraction of a core so
 * that a busy replica crosses it on a loaded 2-core machine too, and an idle
 * one stays far below it.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster, ClusterEventView, ReplicaGroup, ReplicaGroupSpec } from '@muster/sdk';
import { waitFor } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const burner = fileURLToPath(new URL('../fixtures/cpu-burner.mjs', import.meta.url));
const CPU_TARGET = 0.05;

const spec: ReplicaGroupSpec = {
  name: 'burn',
  // The test kit's workers have simulated GPUs (a profile): each replica's get the documented stand-ins.
  resources: { gpus: 1 },
  template: { command: process.execPath, args: [burner], readiness: { kind: 'sdk' }, env: { BURN_MS: '20' } },
  replicas: { min: 1, max: 3, initial: 1 },
  autoscaling: {
    metrics: [{ metric: 'cpu', target: CPU_TARGET }, { metric: 'queue', target: 1000 }],
    upscaleDelayMs: 1_000,
    downscaleDelayMs: 2_000,
    maxStep: 2,
    // A wide band: up above 0.075 cores a replica, down below 0.025. The sample taken as the load
    // stops holds part of a busy second; with the default band it can fall just below it and, as the
    // peak a scale-down is sized for, hold the group up while it stays below (docs/autoscaling.md).
    tolerance: 0.5,
  },
};

describe('resource-metric autoscaling', () => {
  let sdk: Cluster;
  let g: ReplicaGroup;
  const decisions: ClusterEventView[] = [];
  const stopEvents = new AbortController();
  let watching: Promise<void>;

  useCluster({ workers: 1 }, (fx) => ({ sdk } = fx));
  beforeAll(async () => {
    watching = (async () => {
      for await (const e of sdk.events({ kinds: ['rg.autoscale'], signal: stopEvents.signal })) decisions.push(e);
    })();
    g = await sdk.replicaGroups.apply(spec);
  });
  afterAll(async () => {
    stopEvents.abort();
    await watching;
    g?.close();
  });

  it('measures the ranks, scales up on cpu under load and back down when it stops, naming cpu, with no failed call', async () => {
    // 1. Idle and measured: the replica's resource report (memory at once, CPU from the second sample) and the
    //    autoscaler reading cpu below the band — the marker that an idle window was observed.
    const idle = await waitFor('an idle cpu reading of one ready replica', async () => {
      const v = (await g.refresh()).toJSON();
      const ready = v.replicas.filter((r) => r.state === 'ready');
      const a = v.autoscaler;
      return (ready.length === 1 && v.desired === 1 && a?.metric && ready[0]?.load?.resources?.cpu !== undefined && ready[0].load.resources.cpu < CPU_TARGET * 0.5 && v) || undefined;
    }, { timeoutMs: 30_000 });
    const load = idle.replicas.find((r) => r.state === 'ready')!.load!;
    expect(load.resources?.memoryBytes).toBeGreaterThan(10 * 1024 * 1024); // a Node process's resident memory
    // Simulated GPUs: utilisation = cores ÷ GPUs (at most 1), GPU memory = resident memory.
    expect(load.resources?.gpuMemoryBytes).toBe(load.resources?.memoryBytes);
    expect(load.resources?.gpuUtilization).toBeCloseTo(load.resources!.cpu!, 6);
    expect(load.custom).toEqual({ calls_waiting: 0 });
    const before = decisions.length;

    // 2. Load: 4 callers, each always with one call out; one call burns at a time per replica.
    let callers = 4;
    let served = 0;
    const failures: string[] = [];
    const caller = async (id: number) => {
      while (id < callers) {
        try {
          await g.call({ id }, { timeoutMs: 30_000 });
          served++;
        } catch (e) {
          failures.push((e as Error).message);
        }
      }
    };
    const running = Array.from({ length: callers }, (_, i) => caller(i));
    const up = await waitFor('a scale-up', () => decisions.slice(before).find((d) => Number(d.attributes.to) > Number(d.attributes.from)), { timeoutMs: 30_000 });
    expect(up.attributes.drivenBy).toBe('cpu');
    expect(up.message).toMatch(/: 1 → [23]: cpu \d+(\.\d+)?\/replica \(.+ over 1 ready\) > 0\.05 × 1\.5 for \d+\.\d s/);
    expect(served).toBeGreaterThan(0);

    // 3. The load stops: back to one replica, on cpu (the queue metric never left its band).
    callers = 0;
    await Promise.all(running);
    const stoppedAt = decisions.length;
    // The autoscaler's own sentence, in the timeout's message if it never comes down.
    const down = await waitFor('back to one replica', async () => {
      const d = decisions.slice(stoppedAt).find((e) => e.attributes.to === '1');
      if (!d) throw new Error((await g.refresh()).toJSON().autoscaler?.reason);
      return d;
    }, { timeoutMs: 30_000 });
    expect(down.attributes.drivenBy).toBe('cpu');
    expect(down.message).toMatch(/→ 1: cpu \d+(\.\d+)?\/replica .* < 0\.05 × 0\.5 for \d+\.\d s/);
    expect(decisions.slice(before).every((d) => d.attributes.drivenBy === 'cpu')).toBe(true);
    expect(failures).toEqual([]);
  });
});

/** Actors: TS class instances hosted on workers, called by method name through the data plane. */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ErrorCode, type Cluster } from '@muster/sdk';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const counter = fileURLToPath(new URL('../fixtures/counter-actor.mjs', import.meta.url));

describe('actors', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;

  useCluster({ workers: 2 }, (fx) => ({ cluster, sdk } = fx));

  it('hosts a class instance, keeps its state across calls, and is found by name from another client', async () => {
    const c = await sdk.actors.create(counter, 'Counter', { name: 'c1', args: [10] });
    for (let i = 0; i < 50; i++) await c.call('incr');
    expect(await c.call('incr', 5)).toBe(65);
    const other = await cluster.connect();
    try {
      const same = await other.actors.get('c1');
      expect(await same.call('get')).toBe(65);
    } finally {
      other.close();
    }
    await expect(sdk.actors.create(counter, 'Counter', { name: 'c1' })).rejects.toMatchObject({ code: ErrorCode.ALREADY_EXISTS });
    await expect(sdk.actors.get('nope')).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
    await expect(c.call('nope')).rejects.toMatchObject({ message: expect.stringMatching(/has no method "nope"/) });
  });

  it('restarts a crashed actor within its budget (its constructor runs again), then gives up past it', async () => {
    const c = await sdk.actors.create(counter, 'Counter', { name: 'fragile', args: [100], maxRestarts: 1 });
    expect(await c.call('incr')).toBe(101);
    const gangId = (await sdk.replicaGroups.get('actor-fragile')).replicas[0]!.gangId;
    await c.call('crash');
    await waitFor('the actor restarted', async () => {
      const g = (await sdk.gangs.get(gangId)).toJSON();
      return (g.restarts === 1 && g.state === 'ready') || undefined;
    }, { timeoutMs: 20_000 });
    const back = await waitFor('the actor to serve again', async () => (await c.callWith({ timeoutMs: 2_000 }, 'get').catch(() => undefined)) as number | undefined, { timeoutMs: 20_000 });
    expect(back).toBe(100); // fresh state: actors are not checkpointed
    await c.call('crash');
    await waitFor('the actor gang to fail', async () => {
      const g = await sdk.replicaGroups.get('actor-fragile');
      return g.replicas.every((r) => r.state !== 'ready') || undefined;
    }, { timeoutMs: 20_000 });
    await c.kill();
  });

  it('refuses a module without the class, clearly', async () => {
    const bad = sdk.actors.create(counter, 'Nope', { name: 'bad' });
    await expect(bad).rejects.toMatchObject({ code: ErrorCode.FAILED_PRECONDITION, message: expect.stringMatching(/actor bad could not start: .*(exited with code 2|restart budget)/) });
    const g = await sdk.replicaGroups.get('actor-bad');
    const gang = await sdk.gangs.get(g.replicas[0]?.gangId ?? '').catch(() => undefined);
    if (gang) expect(gang.toJSON().firstFailure?.logTail ?? '').toMatch(/exports no class "Nope"/);
    await sdk.actors.get('bad').then((a) => a.kill());
  });
});

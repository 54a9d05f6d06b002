// A leader that records a new replica and dies before making its placement
// group and gang: the next leader finishes that replica instead of leaving it
// half-made or starting another one. The "died in between" state is written
// into the stopped head's store by hand, then the head starts on it.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Replica, ReplicaGroup } from '@muster/proto';
import type { Cluster } from '@muster/sdk';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';
import { EmbeddedStore } from '@muster/head/state';

const replica = fileURLToPath(new URL('../fixtures/replica.mjs', import.meta.url));

describe('a replica recorded but not made when the leader died', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;

  useCluster({ workers: 2 }, (fx) => ({ cluster, sdk } = fx));

  it('is made by the next leader: the group ends with exactly its desired replicas, that one among them', async () => {
    const g = await sdk.replicaGroups.apply({
      name: 'resume', tp: 1, resources: { gpus: 1 },
      template: { command: process.execPath, args: [replica], readiness: { kind: 'sdk' } },
      replicas: { min: 0, max: 4, initial: 2 },
    });
    const ready = (n: number) => waitFor(`${n} ready replica(s)`, async () => {
      const r = (await g.refresh()).replicas;
      return (r.length === n && r.every((x) => x.state === 'ready')) || undefined;
    }, { timeoutMs: 20_000 });
    await ready(2);
    // A router that has seen several membership versions of the first head (2 replicas, then 1),
    // kept across the restart: the next head's versions must go on from there to be heard.
    await waitFor('an answer', () => g.call({ hi: 1 }, { timeoutMs: 2_000 }).catch(() => undefined), { timeoutMs: 10_000 });
    await g.scale(1);
    await ready(1);
    const versionBefore = (await g.refresh()).toJSON().membershipVersion;
    expect(versionBefore).toBeGreaterThanOrEqual(3);

    await cluster.stopHead();
    const store = await EmbeddedStore.open(join(cluster.headDataDir(0), 'store'));
    try {
      // One key for the group, one per replica (packages/head/src/controllers/rg-store.ts).
      const key = '/muster/rgs/resume';
      const rg = ReplicaGroup.decode((await store.get(key))!.value);
      const [first] = (await store.range(`${key}/replicas/`)).kvs.map((kv) => Replica.decode(kv.value));
      rg.desired = 2;
      const orphan: Replica = { ...first!, id: 'r-orphan', state: 'starting', placementGroupId: '', gangId: '', subject: first!.subject.replace(first!.id, 'r-orphan'), message: 'placing', replaces: '' };
      await store.put(`${key}/replicas/${orphan.id}`, Replica.encode(orphan).finish());
      await store.put(key, ReplicaGroup.encode(rg).finish());
    } finally {
      await store.close();
    }
    await cluster.startHead();

    const after = await waitFor('2 ready replicas', async () => {
      const r = (await g.refresh()).replicas;
      return r.length === 2 && r.every((x) => x.state === 'ready') ? r : undefined;
    }, { timeoutMs: 20_000 });
    expect(after.map((r) => r.id)).toContain('r-orphan');
    // Membership versions go on from the stored one, so the old router takes the new membership.
    expect((await g.refresh()).toJSON().membershipVersion).toBeGreaterThan(versionBefore);
    await waitFor('the router to reach the finished replica', async () => {
      const answer = (await g.call({ hi: 2 }, { timeoutMs: 2_000 }).catch(() => undefined)) as { replicaId?: string } | undefined;
      return answer?.replicaId === 'r-orphan' || undefined;
    }, { timeoutMs: 10_000 });
    const groups = (await sdk.placementGroups.list()).filter((p) => p.name.startsWith('resume-'));
    expect(groups.map((p) => p.name).sort()).toEqual(after.map((r) => `resume-${r.id}`).sort());
  });
});

/**
 * A replica group's record on etcd stays small however many replicas it has
 * (issue 15, point 5; layout in packages/head/src/controllers/rg-store.ts):
 * at CI scale, 100 one-GPU replicas on simulated agents, the group key holds
 * no replicas and each replica has its own key; one replica's change writes
 * a few small keys, not the group with every replica; scale-down and
 * deletion leave no key behind. bench/rg-bytes runs the same at 1,000.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { EtcdStore, readAll } from '@muster/head/state';
import type { Cluster } from '@muster/sdk';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';
import { AgentPool } from '../../bench/agents/pool.js';
import { groupKeys, oneReplicaChange, placeGroup } from '../../bench/rg-bytes/measure.js';

const REPLICAS = 100;

describe('replica group keys on etcd', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  let pool: AgentPool | undefined;
  let store: EtcdStore | undefined;
  useCluster({ workers: 0, store: 'etcd' }, (fx) => ({ cluster, sdk } = fx));
  afterAll(async () => {
    await store?.close();
    await pool?.stop();
  });

  it(`${REPLICAS} replicas: one key each, a small group key, one replica's change writes small keys, nothing left after delete`, async () => {
    const token = readFileSync(cluster.tokenFile, 'utf8').trim();
    pool = await AgentPool.start({ head: cluster.address, token, tlsCa: cluster.tls?.ca, agents: 20, channels: 2, profile: 'hgx-h100-8' });
    const agents = pool;
    await waitFor('20 agents registered', () => agents.stats().registered === 20, { timeoutMs: 30_000 });
    store = await EtcdStore.connect({ endpoints: [cluster.etcd!.endpoint], credentials: cluster.etcd!.credentials() });
    const etcd = store;

    await placeGroup(sdk, 'big', REPLICAS, 60_000);
    const keys = await groupKeys(etcd, 'big');
    expect(keys).toMatchObject({ keys: REPLICAS + 1, inline: false });
    expect(keys.maxReplicaBytes).toBeLessThan(2048);
    // The group key holds the spec and the group's fields: far below the record with its replicas inline.
    expect(keys.groupBytes * 10).toBeLessThan(keys.inlineBytes);

    const change = await oneReplicaChange(sdk, etcd, 'big', 30_000);
    console.log(JSON.stringify({ replicas: REPLICAS, keys, change }));
    expect(change.writes).toBeGreaterThan(0);
    expect(change.maxWriteBytes).toBeLessThan(keys.groupBytes + 2 * 2048);
    expect(change.bytes * 10).toBeLessThan(change.inlineBytes);

    await sdk.replicaGroups.scale('big', 10);
    await waitFor('scaled down to 10', async () => {
      const rg = await sdk.replicaGroups.get('big');
      if (rg.replicas.length === 10) return true;
      throw new Error(`${rg.replicas.length} replicas: ${rg.toJSON().message}; ${JSON.stringify(rg.replicas.find((r) => r.state !== 'starting'))}`);
    }, { timeoutMs: 30_000 });
    await waitFor('the keys of the replicas that went are deleted', async () => (await groupKeys(etcd, 'big')).keys === 11, { timeoutMs: 10_000 });

    await sdk.replicaGroups.delete('big');
    await waitFor('group gone', async () => !(await sdk.replicaGroups.list()).some((g) => g.name === 'big'), { timeoutMs: 30_000 });
    expect((await readAll(etcd, '/muster/rgs/')).kvs.map((kv) => kv.key)).toEqual([]);
  });
});

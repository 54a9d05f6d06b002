// The StateStore contract against a real etcd, plus what only a real server
// can show: how the store fails when etcd is gone.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startEtcd, type EtcdServer } from '@muster/testing';
import { describeStoreContract } from '@muster/head/state/contract';
import { EtcdStore } from '@muster/head/state';

let etcd: EtcdServer | undefined;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  await etcd?.stop();
});

// Every test gets its own key prefix: they share one etcd, never each other's keys.
describeStoreContract('etcd', async () => {
  const store = await EtcdStore.connect({ endpoints: [etcd!.endpoint], credentials: etcd!.credentials(), prefix: `/contract/${randomUUID()}/` });
  return {
    store,
    compact: (rev) => store.compact(rev),
    cleanup: async () => {
      await store.deletePrefix('');
      await store.close();
    },
  };
});

describe('EtcdStore lifecycle', () => {
  it('close() ends open watches and refuses later calls', async () => {
    const store = await EtcdStore.connect({ endpoints: [etcd!.endpoint], credentials: etcd!.credentials(), prefix: `/close/${randomUUID()}/` });
    const w = await store.watch('');
    const ended = (async () => {
      for await (const _ of w) void _;
    })();
    await store.close();
    await ended;
    await expect(store.get('k')).rejects.toMatchObject({ code: 'MUSTER_FAILED_PRECONDITION' });
  });
});

describe('EtcdStore when etcd is unreachable', () => {
  const failure = async (p: Promise<unknown>) => {
    const started = Date.now();
    const err = await p.then(() => undefined, (e: Error & { code?: string }) => e);
    return { err, ms: Date.now() - started };
  };

  it('connect() fails with MUSTER_UNAVAILABLE naming the endpoint', async () => {
    const endpoint = `http://127.0.0.1:${await freePort()}`;
    const { err, ms } = await failure(EtcdStore.connect({ endpoints: [endpoint], callTimeoutMs: 2000 }));
    expect(err?.code).toBe('MUSTER_UNAVAILABLE');
    expect(err?.message).toContain(endpoint);
    expect(ms).toBeLessThan(10_000);
  });

  it('calls fail with MUSTER_UNAVAILABLE within seconds once etcd stops, not hang', async () => {
    const own = await startEtcd();
    let store: EtcdStore | undefined;
    try {
      store = await EtcdStore.connect({ endpoints: [own.endpoint], credentials: own.credentials(), callTimeoutMs: 2000 });
      await store.put('k', new Uint8Array([1]));
      const lease = await store.grantLease(2);
      await own.stop();
      for (const call of [
        () => store!.get('k'),
        () => store!.put('k', new Uint8Array([2])),
        () => store!.txn({ compare: [], success: [{ type: 'delete', key: 'k' }] }),
        () => store!.watch('k'),
        () => lease.keepAliveOnce(),
      ]) {
        const { err, ms } = await failure(call());
        expect(err?.code, `${String(call)}: ${err?.message}`).toBe('MUSTER_UNAVAILABLE');
        expect(err?.message).toContain(own.endpoint);
        expect(ms).toBeLessThan(8000);
      }
    } finally {
      await store?.close();
      await own.stop();
    }
  });
});

// The StateStore contract against a real etcd, plus what only a real server
// can show: how the store fails when etcd is gone.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startEtcd, type EtcdServer } from '@muster/testing';
import { describeStoreContract } from '@muster/head/state/contract';
import { EtcdStore, StoreCompactor } from '@muster/head/state';

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

describe('StoreCompactor on etcd', () => {
  const quiet = { debug: () => undefined, warn: () => undefined } as never;

  it('compacts to the previous tick\'s revision: older history is gone, one interval of it stays watchable', async () => {
    const store = await EtcdStore.connect({ endpoints: [etcd!.endpoint], credentials: etcd!.credentials(), prefix: `/compactor/${randomUUID()}/` });
    try {
      const compacted: number[] = [];
      const c = new StoreCompactor(store, { intervalMs: 60_000, log: quiet, onCompacted: (r) => compacted.push(r) });
      const before = (await store.put('k', new TextEncoder().encode('old'))).revision;
      await c.tick(); // remembers the current revision, compacts nothing yet
      expect(compacted).toEqual([]);
      const kept = await store.revision();
      await store.put('k', new TextEncoder().encode('new'));
      await c.tick(); // compacts to the first tick's revision
      expect(compacted).toEqual([kept]);
      await expect(store.range('', { revision: before - 1 })).rejects.toMatchObject({ code: 'MUSTER_STORE_COMPACTED' });
      // A watcher one interval behind still resumes: it sees the later write.
      const w = await store.watch('', { fromRevision: kept });
      for await (const batch of w) {
        expect(batch.some((e) => e.type === 'put' && new TextDecoder().decode(e.kv.value) === 'new')).toBe(true);
        break;
      }
      await w.close();
      // A revision compacted already (by another head, or etcd itself) is no failure.
      const again = new StoreCompactor(store, { intervalMs: 60_000, log: { debug: () => undefined, warn: () => { throw new Error('warned'); } } as never, onCompacted: (r) => compacted.push(r) });
      await again.tick(); // remembers R0
      await store.put('k', new TextEncoder().encode('newer'));
      await store.compact(await store.revision()); // someone else compacts past R0
      await again.tick(); // compacting to R0 now fails as compacted: ignored
      expect(compacted).toEqual([kept]);
    } finally {
      await store.deletePrefix('');
      await store.close();
    }
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

/**
 * The worker-thread lease keeper (packages/head/src/state/etcd-lease-keeper.ts)
 * against a real etcd: a 2 s lease outlives a 3.5 s stall of the main
 * thread's event loop when the keeper renews it, and — the same stall, no
 * keeper — etcd expires it (the leader lost its key this way at 10,000
 * agents: docs/benchmarks.md, "On etcd, with a standby"). A revoke that
 * fails still takes the lease from the keeper, and a renewal the keeper
 * cannot make is reported (once).
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, waitFor, type EtcdServer } from '@muster/testing';
import { EtcdStore, LeaseKeeper } from '@muster/head/state';

let etcd: EtcdServer | undefined;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  await etcd?.stop();
});

/** Holds this thread's event loop, as a long GC or a big synchronous step does. */
function stall(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // busy: no timer, no I/O runs here
  }
}

/** A store whose own leases are renewed from the main thread only, a key on a fresh 2 s lease. */
async function leasedKey() {
  const store = await EtcdStore.connect({ endpoints: [etcd!.endpoint], credentials: etcd!.credentials(), prefix: `/keeper/${randomUUID()}/`, leaseKeeper: false });
  const lease = await store.grantLease(2);
  await store.put('k', new TextEncoder().encode('v'), { lease: lease.id });
  return { store, lease };
}

describe('LeaseKeeper', () => {
  it('keeps a 2 s lease through a 3.5 s stall of the main thread', async () => {
    const { store, lease } = await leasedKey();
    const keeper = new LeaseKeeper({ endpoints: [etcd!.endpoint], credentials: etcd!.credentials() });
    try {
      keeper.keep(lease.id, lease.ttlSeconds);
      await waitFor('the keeper renewed the lease', () => keeper.renewals > 0, { timeoutMs: 10_000 });
      stall(3_500);
      expect(await store.get('k')).toBeDefined();
    } finally {
      await keeper.close();
      await store.close();
    }
  });

  it('without it, etcd expires the lease in the same stall', async () => {
    const { store } = await leasedKey();
    try {
      stall(3_500);
      await waitFor('the leased key is gone', async () => (await store.get('k')) === undefined, { timeoutMs: 2_000 });
    } finally {
      await store.close();
    }
  });

  it('a revoke that fails leaves no renewal behind: the keeper lets go first, and the lease runs out on its TTL', async () => {
    const store = await EtcdStore.connect({ endpoints: [etcd!.endpoint], credentials: etcd!.credentials(), prefix: `/keeper/${randomUUID()}/`, callTimeoutMs: 500 });
    try {
      const lease = await store.grantLease(2);
      await store.put('k', new TextEncoder().encode('v'), { lease: lease.id });
      // etcd away: the revoke fails. etcd back (its leases kept, renewed to their full TTL by the restart).
      await etcd!.kill();
      try {
        await expect(lease.revoke()).rejects.toThrow();
      } finally {
        await etcd!.start();
      }
      // Nobody renews it any more (the main thread's keepalive ended with the revoke): etcd expires it.
      await waitFor('the leased key is gone', async () => (await store.get('k')) === undefined, { timeoutMs: 8_000 });
    } finally {
      await store.close();
    }
  });

  it('reports the first renewal it cannot make, once, and keeps trying', async () => {
    const { store, lease } = await leasedKey();
    const reported: Error[] = [];
    const keeper = new LeaseKeeper({ endpoints: [etcd!.endpoint], credentials: etcd!.credentials(), onRenewalError: (e) => reported.push(e) });
    try {
      keeper.keep(lease.id, lease.ttlSeconds);
      await waitFor('the keeper renewed the lease', () => keeper.renewals > 0, { timeoutMs: 10_000 });
      await etcd!.kill();
      await waitFor('two renewals failed', () => keeper.renewalErrors >= 2, { timeoutMs: 15_000 });
      expect(reported).toHaveLength(1);
    } finally {
      await keeper.close();
      await store.close().catch(() => undefined);
      if (!etcd!.process.running) await etcd!.start();
    }
  });
});

// Leader election and the standby's state mirror against a real etcd, in
// process: several Election instances stand for several heads (each with its
// own etcd client, so one can "die" by closing its client).
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@muster/common/log';
import { startEtcd, waitFor, type EtcdServer } from '@muster/testing';
import { EtcdStore } from '@muster/head/state';
import { Election, type Term } from '@muster/head/ha/election';
import { StateMirror } from '@muster/head/ha/mirror';

const log = createLogger('test', { level: 'silent' });
const bytes = (s: string) => new TextEncoder().encode(s);

let etcd: EtcdServer | undefined;
beforeAll(async () => {
  etcd = await startEtcd();
});
afterAll(async () => {
  await etcd?.stop();
});

interface Candidate {
  id: string;
  store: EtcdStore;
  election: Election;
  term?: Term;
}

/** `n` heads campaigning on one prefix; each records its term when it wins. */
async function candidates(n: number): Promise<{ heads: Candidate[]; close(): Promise<void> }> {
  const prefix = `/election/${randomUUID()}/`;
  const heads: Candidate[] = [];
  for (let i = 0; i < n; i++) {
    const store = await EtcdStore.connect({ endpoints: [etcd!.endpoint], credentials: etcd!.credentials(), prefix });
    const c: Candidate = { id: `h${i}`, store, election: new Election(store, { headId: `h${i}`, address: `127.0.0.1:${7400 + i}`, leaseSeconds: 2, log }) };
    void c.election.campaign().then((t) => (c.term = t), () => undefined);
    heads.push(c);
  }
  return {
    heads,
    async close() {
      for (const h of heads) {
        h.election.stop();
        await h.store.close().catch(() => undefined);
      }
    },
  };
}

const leaders = (heads: Candidate[]) => heads.filter((h) => h.term);

describe('leader election', () => {
  it('elects exactly one leader, whose address every standby knows', async () => {
    const { heads, close } = await candidates(3);
    try {
      const [leader] = await waitFor('a leader', () => (leaders(heads).length > 0 ? leaders(heads) : undefined));
      await waitFor('standbys know the leader', () => heads.every((h) => h.election.leader?.headId === leader!.id) || undefined);
      expect(leaders(heads)).toHaveLength(1);
      expect(heads.find((h) => h !== leader)!.election.leader!.address).toBe(`127.0.0.1:${7400 + Number(leader!.id.slice(1))}`);
    } finally {
      await close();
    }
  });

  it('hands over at once on resign, and fences every later write of the old term', async () => {
    const { heads, close } = await candidates(3);
    try {
      const [old] = await waitFor('a leader', () => (leaders(heads).length > 0 ? leaders(heads) : undefined));
      await old!.term!.writer.put('/muster/x', bytes('by the first leader'));
      const resignedAt = Date.now();
      await old!.election.resign();
      const next = await waitFor('a new leader', () => heads.find((h) => h !== old && h.term));
      expect(Date.now() - resignedAt).toBeLessThan(1_000);
      await expect(old!.term!.ended).resolves.toMatch(/lease .* lost|leader key was deleted/);
      await expect(old!.term!.writer.put('/muster/x', bytes('stale'))).rejects.toMatchObject({ code: 'MUSTER_NOT_LEADER' });
      await next.term!.writer.put('/muster/x', bytes('by the new leader'));
      expect(new TextDecoder().decode((await next.store.get('/muster/x'))!.value)).toBe('by the new leader');
    } finally {
      await close();
    }
  });

  it('replaces a leader that stops renewing its lease (died) after about the lease TTL', async () => {
    const { heads, close } = await candidates(2);
    try {
      const [old] = await waitFor('a leader', () => (leaders(heads).length > 0 ? leaders(heads) : undefined));
      const diedAt = Date.now();
      await old!.store.close(); // keepalives stop, nothing is revoked: like SIGKILL
      await waitFor('the standby leads', () => heads.find((h) => h !== old && h.term), { timeoutMs: 6_000 });
      const took = Date.now() - diedAt;
      expect(took).toBeGreaterThan(500);
      expect(took).toBeLessThan(4_000);
    } finally {
      await close();
    }
  });
});

describe('standby state mirror', () => {
  it('follows every change by watch and serves the load from memory at the leader revision', async () => {
    const store = await EtcdStore.connect({ endpoints: [etcd!.endpoint], credentials: etcd!.credentials(), prefix: `/mirror/${randomUUID()}/` });
    await store.put('/muster/nodes/a', bytes('1'));
    const mirror = new StateMirror(store, log);
    try {
      await store.put('/muster/nodes/b', bytes('2'));
      await store.put('/muster/pgs/p', bytes('3'));
      await store.delete('/muster/nodes/a');
      const { revision } = await store.put('/muster/nodes/c', bytes('4'));
      expect(await mirror.caughtUp(revision, 5_000)).toBe(true);
      const loading = mirror.forLoading();
      const fromCopy = await loading.store.range('/muster/nodes/');
      const fromStore = await store.range('/muster/nodes/');
      expect(fromCopy.kvs.map((kv) => [kv.key, kv.modRevision])).toEqual(fromStore.kvs.map((kv) => [kv.key, kv.modRevision]));
      // After loading, reads go to the store again (a controller must read its own writes).
      loading.loaded();
      await store.put('/muster/nodes/d', bytes('5'));
      expect((await loading.store.range('/muster/nodes/')).kvs.map((kv) => kv.key)).toEqual(['/muster/nodes/b', '/muster/nodes/c', '/muster/nodes/d']);
      expect(await mirror.caughtUp(revision + 1_000, 100)).toBe(false);
    } finally {
      await mirror.close();
      await store.close();
    }
  });
});

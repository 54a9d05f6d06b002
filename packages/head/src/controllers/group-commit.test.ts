/** The controller's write path on a real embedded store: one write per cycle, nothing told before it is durable. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '@muster/common';
import { createLogger } from '@muster/common/log';
import { EmbeddedStore } from '../state/embedded.js';
import type { Op, StateStore } from '../state/index.js';
import { STORE_REQUEST_BYTES } from '@muster/contracts';
import { LEADER_KEY, StateWriter, encodeLeaderRecord } from '../state/fence.js';
import { GroupCommit, txnChunks } from './group-commit.js';

const stores: Array<{ store: EmbeddedStore; dir: string }> = [];
afterEach(async () => {
  for (const { store, dir } of stores.splice(0)) {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});

async function setup(opts: { fenced?: boolean; wrap?: (store: EmbeddedStore) => StateStore } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'muster-gc-'));
  const store = await EmbeddedStore.open(dir);
  stores.push({ store, dir });
  const { revision } = await store.put(LEADER_KEY, encodeLeaderRecord({ headId: 'me', address: '127.0.0.1:1', sinceMs: 0 }));
  if (opts.fenced) await store.put(LEADER_KEY, encodeLeaderRecord({ headId: 'other', address: '127.0.0.1:2', sinceMs: 0 }));
  const lost: string[] = [];
  const writer = new StateWriter(opts.wrap ? opts.wrap(store) : store, 'me', revision, (why) => lost.push(why));
  const calls = { steps: 0, recovers: 0 };
  const commits = new GroupCommit(writer, createLogger('test', { level: 'silent' }), {
    step: () => void calls.steps++,
    recover: async () => void calls.recovers++,
  });
  return { store, commits, calls, lost };
}

const bytes = (s: string) => new TextEncoder().encode(s);
const event = (key: string, settled: boolean[]) => ({ op: { type: 'put' as const, key, value: bytes('e') }, settle: (ok: boolean) => void settled.push(ok) });

describe('group commit', () => {
  it('writes everything marked in one tick in one transaction, with the latest value of each key', async () => {
    const { store, commits, calls } = await setup();
    let value = 'old';
    commits.put('/t/a', () => bytes(value));
    commits.put('/t/b', () => bytes('b'));
    commits.put('/t/gone', () => bytes('x'));
    commits.delete('/t/gone');
    const settled: boolean[] = [];
    commits.stage(event('/t/event', settled));
    const told: string[] = [];
    commits.after(() => told.push('agent told'));
    const waits = Array.from({ length: 20 }, () => commits.flush());
    value = 'new'; // encoded at commit time: the record as it is then
    await Promise.all(waits);
    const { kvs } = await store.range('/t/');
    expect(kvs.map((kv) => [kv.key, new TextDecoder().decode(kv.value)])).toEqual([['/t/a', 'new'], ['/t/b', 'b'], ['/t/event', 'e']]);
    expect(new Set(kvs.map((kv) => kv.modRevision)).size).toBe(1);
    expect(settled).toEqual([true]);
    expect(told).toEqual(['agent told']);
    expect(calls.steps).toBe(1);
  });

  it('on a failed commit rejects its waiters and those of the next commit, drops their events and actions, and recovers once', async () => {
    // A store that commits one cycle at a time (as etcd) and holds the first write until the test lets it go.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const { store, commits, calls, lost } = await setup({
      fenced: true,
      wrap: (real) => new Proxy(real, {
        get: (target, key) => {
          if (key === 'ordersWrites') return false;
          if (key === 'txn') return async (req: Parameters<EmbeddedStore['txn']>[0]) => (await held, target.txn(req));
          const v = Reflect.get(target, key) as unknown;
          return typeof v === 'function' ? v.bind(target) : v;
        },
      }),
    });
    commits.put('/t/a', () => bytes('a'));
    const settled: boolean[] = [];
    commits.stage(event('/t/event', settled));
    const told: string[] = [];
    commits.after(() => told.push('agent told'));
    const failing = commits.flush();
    await new Promise((r) => setImmediate(r)); // the cycle ran; its write waits
    // Marked for the next commit while that one is in flight: made on memory about to be replaced.
    commits.put('/t/later', () => bytes('later'));
    const laterSettled: boolean[] = [];
    commits.stage(event('/t/later-event', laterSettled));
    commits.after(() => told.push('later agent told'));
    const later = commits.flush();
    release();
    const [first, second] = await Promise.allSettled([failing, later]);
    expect(first).toMatchObject({ status: 'rejected', reason: { code: ErrorCode.NOT_LEADER } });
    expect(second).toMatchObject({ status: 'rejected', reason: { code: ErrorCode.NOT_LEADER } });
    expect(settled).toEqual([false]);
    expect(laterSettled).toEqual([false]);
    expect(told).toEqual([]);
    expect(calls.recovers).toBe(1);
    expect(lost).toHaveLength(1);
    expect((await store.range('/t/')).kvs).toEqual([]);
  });

  it('overlapping commits settle in the order they were cut: a later one durable first waits for the earlier, split one', async () => {
    // The second transaction of the first (split) commit is held until the second commit is durable.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let laterWritten!: () => void;
    const later = new Promise<void>((r) => (laterWritten = r));
    const { commits } = await setup({
      wrap: (real) => new Proxy(real, {
        get: (target, key) => {
          if (key === 'txn') {
            return async (req: Parameters<EmbeddedStore['txn']>[0]) => {
              const has = (k: string) => req.success.some((op) => op.type === 'put' && op.key === k);
              if (has('/t/a149')) await held;
              const r = await target.txn(req);
              if (has('/t/b')) laterWritten();
              return r;
            };
          }
          const v = Reflect.get(target, key) as unknown;
          return typeof v === 'function' ? v.bind(target) : v;
        },
      }),
    });
    const order: string[] = [];
    for (let i = 0; i < 150; i++) commits.put(`/t/a${i}`, () => bytes('a')); // 2 transactions
    commits.after(() => order.push('first: actions'));
    const first = commits.flush().then(() => order.push('first: answered'));
    await new Promise((r) => setImmediate(r)); // the first commit is cut and writing
    commits.put('/t/b', () => bytes('b'));
    commits.after(() => order.push('second: actions'));
    const second = commits.flush().then(() => order.push('second: answered'));
    await later; // the second commit is durable...
    await new Promise((r) => setImmediate(r)); // ...and every continuation of it has run
    expect(order).toEqual([]); // nothing answered or told while the earlier commit is still writing
    release();
    await Promise.all([first, second]);
    expect(order).toEqual(['first: actions', 'first: answered', 'second: actions', 'second: answered']);
  });

  it('a put after a delete of the same key writes it again', async () => {
    const { store, commits } = await setup();
    commits.delete('/t/a');
    commits.put('/t/a', () => bytes('back'));
    await commits.flush();
    expect((await store.get('/t/a'))?.value).toEqual(bytes('back'));
  });

  it('an action that throws does not stop the actions after it, nor the commit', async () => {
    const { store, commits } = await setup();
    const told: string[] = [];
    commits.put('/t/a', () => bytes('a'));
    commits.after(() => {
      throw new Error('controller bug');
    });
    commits.after(() => told.push('second'));
    await commits.flush();
    expect(told).toEqual(['second']);
    commits.put('/t/b', () => bytes('b'));
    await commits.flush();
    expect((await store.range('/t/')).kvs.map((kv) => kv.key)).toEqual(['/t/a', '/t/b']);
  });
});

describe('commit chunks', () => {
  const put = (key: string, bytes: number): Op => ({ type: 'put', key, value: new Uint8Array(bytes) });
  it('split at 100 ops and at STORE_REQUEST_BYTES, in order; one op larger than that goes alone', () => {
    const small = Array.from({ length: 250 }, (_, i) => put(`k${i}`, 10));
    expect(txnChunks(small).map((c) => c.length)).toEqual([100, 100, 50]);
    const big = Array.from({ length: 10 }, (_, i) => put(`b${i}`, 300 * 1024));
    const chunks = txnChunks(big);
    expect(chunks.map((c) => c.length)).toEqual([3, 3, 3, 1]);
    expect(chunks.flat()).toEqual(big);
    const huge = [put('a', 10), put('h', 2 * STORE_REQUEST_BYTES), put('z', 10)];
    expect(txnChunks(huge).map((c) => c.map((o) => (o.type === 'put' ? o.key : '')))).toEqual([['a'], ['h'], ['z']]);
  });

  it('a key under a prefix deleted earlier in the chunk starts the next one (a txn writes a key once)', () => {
    const ops: Op[] = [{ type: 'deletePrefix', prefix: '/g/r/' }, { type: 'delete', key: '/other' }, put('/g', 10), put('/g/r/a', 10), put('/g/r/b', 10)];
    expect(txnChunks(ops).map((c) => c.length)).toEqual([3, 2]);
  });
});

describe('deletePrefix', () => {
  it('deletes the keys under the prefix before what is marked after it, in the same commit; what was marked before it under the prefix is dropped', async () => {
    const { store, commits: c } = await setup();
    await store.put('/p/old', new Uint8Array([1]));
    c.put('/p/early', () => new Uint8Array([2]));
    c.deletePrefix('/p/');
    c.put('/p/new', () => new Uint8Array([3]));
    c.put('/q', () => new Uint8Array([4]));
    await c.flush();
    expect((await store.range('/p/')).kvs.map((kv) => kv.key)).toEqual(['/p/new']);
    expect(await store.get('/q')).toBeDefined();
  });
});

/**
 * The StateStore contract: one vitest suite that every store must pass
 * (embedded.test.ts runs it on EmbeddedStore, test/integration/store-etcd.test.ts
 * on EtcdStore against a real etcd). It pins down the etcd v3 semantics the
 * head relies on, so code written against one store works on the other.
 *
 * Revisions are compared relative to each other, never as absolute numbers,
 * because a shared etcd's revision counter is global. Waits are condition
 * waits with deadlines (`waitFor`), never fixed sleeps.
 *
 * Not part of head's dist: it imports vitest, so the file is named
 * `*.test-suite.ts`, which head's tsconfig excludes. It stays beside the
 * interface it pins down (rather than moving into the test kit, which would
 * make head's own embedded run import the kit above it); tests outside head
 * reach it as `@muster/head/state/contract`, an export with only the
 * `source` condition — vitest resolves it, Node refuses it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '@muster/common';
import { rangeAll, readAll } from './paged.js';
import type { Compare, StateStore, Watch, WatchEvent } from './store.js';

export interface StoreUnderTest {
  store: StateStore;
  cleanup(): Promise<void>;
  /** Compacts watch history below `revision`; the compaction test is skipped without it. */
  compact?(revision: number): Promise<void>;
}

const enc = (s: string) => new TextEncoder().encode(s);
const text = (v: Uint8Array | undefined) => (v === undefined ? undefined : Buffer.from(v).toString('utf8'));
const keyOf = (e: WatchEvent) => (e.type === 'put' ? e.kv.key : e.key);
const revOf = (e: WatchEvent) => (e.type === 'put' ? e.kv.modRevision : e.modRevision);

/** How long the suite waits for a condition (etcd over loopback can be slow on a busy machine). */
const patience = { timeoutMs: 15_000, intervalMs: 20 };

/** Settles `p` or fails after `ms`. */
async function within<T>(what: string, p: Promise<T>, ms = 15_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Drains a watch in the background into `batches`. */
function collect(w: Watch) {
  const c = { batches: [] as WatchEvent[][], error: undefined as unknown, ended: false, done: Promise.resolve() };
  c.done = (async () => {
    try {
      for await (const batch of w) c.batches.push(batch);
    } catch (e) {
      c.error = e;
    }
    c.ended = true;
  })();
  return Object.assign(c, { events: () => c.batches.flat() });
}

async function rejection(p: Promise<unknown>): Promise<{ code?: string; message?: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code?: string };
  }
  throw new Error('expected a rejection');
}

export function describeStoreContract(name: string, open: () => Promise<StoreUnderTest>): void {
  describe(`StateStore contract: ${name}`, () => {
    let sut: StoreUnderTest;
    let s: StateStore;
    beforeEach(async () => {
      sut = await open();
      s = sut.store;
    });
    afterEach(async () => {
      await sut.cleanup();
    });

    describe('keys and values', () => {
      it('put/get track createRevision, modRevision and version', async () => {
        const r1 = await s.put('k', enc('v1'));
        const kv1 = await s.get('k');
        expect(text(kv1?.value)).toBe('v1');
        expect(kv1).toMatchObject({ key: 'k', createRevision: r1.revision, modRevision: r1.revision, version: 1 });
        expect(kv1?.lease).toBeUndefined();
        const r2 = await s.put('k', enc('v2'));
        expect(r2.revision).toBeGreaterThan(r1.revision);
        expect(await s.get('k')).toMatchObject({ createRevision: r1.revision, modRevision: r2.revision, version: 2 });
        expect(await s.get('missing')).toBeUndefined();
        expect(await s.revision()).toBeGreaterThanOrEqual(r2.revision);
      });

      it('values are bytes: binary, empty and large values round-trip unchanged', async () => {
        const all = Uint8Array.from({ length: 256 }, (_, i) => i);
        const large = Uint8Array.from({ length: 256 * 1024 }, (_, i) => (i * 7919) % 251);
        const reused = enc('original');
        await s.put('bin', all);
        await s.put('empty', new Uint8Array(0));
        await s.put('large', large);
        await s.put('reused', reused);
        reused.set(enc('MUTATED!')); // the store must not alias the caller's buffer
        expect(Buffer.from((await s.get('bin'))!.value).equals(Buffer.from(all))).toBe(true);
        expect((await s.get('empty'))!.value.length).toBe(0);
        expect(Buffer.from((await s.get('large'))!.value).equals(Buffer.from(large))).toBe(true);
        expect(text((await s.get('reused'))!.value)).toBe('original');
      });

      it('delete removes one key; deleting a missing key changes nothing', async () => {
        const put = await s.put('d', enc('x'));
        const del = await s.delete('d');
        expect(del.deleted).toBe(1);
        expect(del.revision).toBeGreaterThan(put.revision);
        expect(await s.get('d')).toBeUndefined();
        const again = await s.delete('d');
        expect(again.deleted).toBe(0);
        expect(again.revision).toBeGreaterThanOrEqual(del.revision);
        const back = await s.put('d', enc('y')); // a re-created key starts over
        expect(await s.get('d')).toMatchObject({ version: 1, createRevision: back.revision });
      });

      it('deletePrefix removes exactly the keys under the prefix', async () => {
        for (const k of ['p/', 'p/a', 'p/b/c', 'p0', 'p', 'q/a']) await s.put(k, enc(k));
        expect((await s.deletePrefix('p/')).deleted).toBe(3);
        expect((await s.range('')).kvs.map((kv) => kv.key)).toEqual(['p', 'p0', 'q/a']);
        expect((await s.deletePrefix('nothing/')).deleted).toBe(0);
      });

      it('range returns keys in UTF-8 byte order, honours limit and prefix boundaries', async () => {
        const keys = ['r/b', 'r/a', 'r/a/1', 'r/Z', 'r/', 'r/\u00e9', 'r/\uFFFD', 'r/\u{1F600}', 'r/c'];
        let last = 0;
        for (const k of [...keys, 'r', 'r0', 's/a']) last = (await s.put(k, enc(k))).revision;
        const byBytes = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
        const all = await s.range('r/');
        expect(all.kvs.map((kv) => kv.key)).toEqual(byBytes);
        expect(all.kvs.map((kv) => text(kv.value))).toEqual(byBytes);
        expect(all.revision).toBeGreaterThanOrEqual(last);
        expect((await s.range('r/', { limit: 2 })).kvs.map((kv) => kv.key)).toEqual(byBytes.slice(0, 2));
        expect((await s.range('r/a')).kvs.map((kv) => kv.key)).toEqual(['r/a', 'r/a/1']);
        expect((await s.range('zz/')).kvs).toEqual([]);
        // Pages: each resumes after the last key of the one before, and together they are the whole range.
        const paged: string[] = [];
        for (let after: string | undefined; ; ) {
          const page = (await s.range('r/', { limit: 2, after })).kvs.map((kv) => kv.key);
          if (page.length === 0) break;
          paged.push(...page);
          after = page[page.length - 1];
        }
        expect(paged).toEqual(byBytes);
        expect((await rejection(s.range('r/', { after: 'q' }))).code).toBe('MUSTER_INVALID_ARGUMENT'); // after outside the prefix
      });

      it('range pages: limit + after walk every key once in order, more says when keys follow', async () => {
        const keys = Array.from({ length: 23 }, (_, i) => `pg/${String.fromCharCode(97 + (i % 26))}${i}`);
        for (const k of [...keys, 'pg', 'pg0', 'ph/a']) await s.put(k, enc(k));
        const byBytes = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
        const seen: string[] = [];
        const mores: boolean[] = [];
        let after: string | undefined;
        for (let n = 0; n < 10; n++) {
          const page = await s.range('pg/', { limit: 5, ...(after === undefined ? {} : { after }) });
          seen.push(...page.kvs.map((kv) => kv.key));
          mores.push(page.more);
          if (!page.more) break;
          after = page.kvs.at(-1)!.key;
        }
        expect(seen).toEqual(byBytes);
        expect(mores).toEqual([true, true, true, true, false]);
        expect((await s.range('pg/', { limit: 23 })).more).toBe(false);
        expect((await s.range('pg/')).more).toBe(false);
        expect((await s.range('pg/', { after: byBytes.at(-1)! })).kvs).toEqual([]);
        expect((await rejection(s.range('pg/', { after: 'ph/a' }))).code).toBe('MUSTER_INVALID_ARGUMENT');
      });

      it('rangeAll / readAll read a prefix in pages; a range at the current revision is allowed on every store', async () => {
        const keys = Array.from({ length: 37 }, (_, i) => `ra/${String(i).padStart(3, '0')}`);
        for (const k of keys) await s.put(k, enc(k));
        await s.put('rb/x', enc('x'));
        const pages: string[][] = [];
        for await (const page of rangeAll(s, 'ra/', 10)) pages.push(page.kvs.map((kv) => kv.key));
        expect(pages.map((p) => p.length)).toEqual([10, 10, 10, 7]);
        expect(pages.flat()).toEqual(keys);
        const all = await readAll(s, 'ra/', 4);
        expect(all.kvs.map((kv) => kv.key)).toEqual(keys);
        const now = await s.revision();
        expect(all.revision).toBeLessThanOrEqual(now);
        expect((await s.range('ra/', { limit: 1, revision: now })).kvs.map((kv) => kv.key)).toEqual([keys[0]]);
      });

      it('readAll loads a prefix larger than the message limit (pages shrink to fit)', async () => {
        const value = new Uint8Array(128 * 1024).fill(7);
        const keys = Array.from({ length: 48 }, (_, i) => `big/${String(i).padStart(2, '0')}`); // 6 MiB > MAX_MESSAGE_BYTES
        for (const k of keys) await s.put(k, value);
        const all = await readAll(s, 'big/');
        expect(all.kvs.map((kv) => kv.key)).toEqual(keys);
        expect(all.kvs.every((kv) => kv.value.byteLength === value.byteLength)).toBe(true);
        // Over the network, one range of it is refused as over the limit (and says so).
        if (s.kind === 'etcd') expect((await rejection(s.range('big/'))).code).toBe('MUSTER_RESOURCE_EXHAUSTED');
      });

      it('a snapshot read (snapshotReads) sees the keys as of its revision; a store without them refuses an old revision', async () => {
        await s.put('sn/a', enc('1'));
        const { revision } = await s.put('sn/b', enc('1'));
        await s.put('sn/a', enc('2'));
        await s.delete('sn/b');
        await s.put('sn/c', enc('1'));
        if (s.snapshotReads) {
          const old = await s.range('sn/', { revision });
          expect(old.kvs.map((kv) => `${kv.key}=${text(kv.value)}`)).toEqual(['sn/a=1', 'sn/b=1']);
          expect(old.revision).toBe(revision);
        } else {
          expect((await rejection(s.range('sn/', { revision }))).code).toBe('MUSTER_STORE_COMPACTED');
        }
        expect((await s.range('sn/')).kvs.map((kv) => `${kv.key}=${text(kv.value)}`)).toEqual(['sn/a=2', 'sn/c=1']);
      });

      it('rejects bad input with MUSTER_INVALID_ARGUMENT', async () => {
        expect((await rejection(s.put('', enc('x')))).code).toBe('MUSTER_INVALID_ARGUMENT');
        expect((await rejection(s.put('k', 'text' as unknown as Uint8Array))).code).toBe('MUSTER_INVALID_ARGUMENT');
        expect((await rejection(s.range('a/', { limit: -1 }))).code).toBe('MUSTER_INVALID_ARGUMENT');
        expect((await rejection(s.range('a/', { revision: 0 }))).code).toBe('MUSTER_INVALID_ARGUMENT');
      });
    });

    describe('txn', () => {
      it('compares every target with every op, on present and missing keys', async () => {
        const r1 = (await s.put('t/k', enc('b'))).revision;
        const r2 = (await s.put('t/k', enc('m'))).revision;
        const v = (x: string) => enc(x);
        const cases: [Compare, boolean][] = [
          [{ key: 't/k', target: 'value', op: '==', value: v('m') }, true],
          [{ key: 't/k', target: 'value', op: '==', value: v('x') }, false],
          [{ key: 't/k', target: 'value', op: '!=', value: v('x') }, true],
          [{ key: 't/k', target: 'value', op: '!=', value: v('m') }, false],
          [{ key: 't/k', target: 'value', op: '<', value: v('n') }, true],
          [{ key: 't/k', target: 'value', op: '<', value: v('m') }, false],
          [{ key: 't/k', target: 'value', op: '>', value: v('a') }, true],
          [{ key: 't/k', target: 'value', op: '>', value: v('mm') }, false],
          [{ key: 't/k', target: 'version', op: '==', value: 2 }, true],
          [{ key: 't/k', target: 'version', op: '!=', value: 2 }, false],
          [{ key: 't/k', target: 'version', op: '<', value: 3 }, true],
          [{ key: 't/k', target: 'version', op: '>', value: 2 }, false],
          [{ key: 't/k', target: 'createRevision', op: '==', value: r1 }, true],
          [{ key: 't/k', target: 'createRevision', op: '!=', value: r1 }, false],
          [{ key: 't/k', target: 'createRevision', op: '<', value: r1 }, false],
          [{ key: 't/k', target: 'createRevision', op: '>', value: r1 - 1 }, true],
          [{ key: 't/k', target: 'modRevision', op: '==', value: r2 }, true],
          [{ key: 't/k', target: 'modRevision', op: '!=', value: r1 }, true],
          [{ key: 't/k', target: 'modRevision', op: '<', value: r2 }, false],
          [{ key: 't/k', target: 'modRevision', op: '>', value: r1 }, true],
          // A missing key: version and revisions are 0, and its value is absent (only != holds).
          [{ key: 't/none', target: 'version', op: '==', value: 0 }, true],
          [{ key: 't/none', target: 'version', op: '>', value: 0 }, false],
          [{ key: 't/none', target: 'createRevision', op: '==', value: 0 }, true],
          [{ key: 't/none', target: 'modRevision', op: '<', value: 1 }, true],
          [{ key: 't/none', target: 'value', op: '==', value: v('') }, false],
          [{ key: 't/none', target: 'value', op: '!=', value: v('x') }, true],
          [{ key: 't/none', target: 'value', op: '<', value: v('z') }, false],
          [{ key: 't/none', target: 'value', op: '>', value: v('') }, false],
        ];
        for (const [c, want] of cases) {
          const r = await s.txn({ compare: [c], success: [{ type: 'get', key: 't/k' }], failure: [] });
          expect({ ...c, value: String(c.value), succeeded: r.succeeded }).toEqual({ ...c, value: String(c.value), succeeded: want });
          expect(r.results.length).toBe(want ? 1 : 0);
          expect(r.revision).toBeGreaterThanOrEqual(r2);
        }
        expect(await s.get('t/k')).toMatchObject({ version: 2, modRevision: r2 }); // compares wrote nothing
      });

      it('holds only when all compares hold, missing-key != mixed with others', async () => {
        await s.put('a/k', enc('1'));
        await s.put('a/k', enc('2'));
        const miss = (key: string, x: string): Compare => ({ key, target: 'value', op: '!=', value: enc(x) });
        const ver = (n: number): Compare => ({ key: 'a/k', target: 'version', op: '==', value: n });
        const run = (compare: Compare[]) =>
          s.txn({ compare, success: [{ type: 'put', key: 'a/out', value: enc('s') }, { type: 'get', key: 'a/out' }], failure: [{ type: 'get', key: 'a/k' }] });
        const ok = await run([miss('a/m1', 'x'), miss('a/m2', 'y'), ver(2)]);
        expect(ok.succeeded).toBe(true);
        expect(text(ok.results[1]?.kv?.value)).toBe('s'); // a get sees the earlier put of its txn
        const no = await run([miss('a/m1', 'x'), ver(3)]);
        expect(no.succeeded).toBe(false);
        expect(no.results.map((r) => text(r.kv?.value))).toEqual(['2']);
        const no2 = await run([miss('a/k', '2'), miss('a/m1', 'x')]);
        expect(no2.succeeded).toBe(false);
        expect(no2.results.length).toBe(1);
      });

      it('applies every op of the branch atomically, at one revision', async () => {
        for (const k of ['m/c', 'm/d/1', 'm/d/2']) await s.put(k, enc(k));
        const r = await s.txn({
          compare: [],
          success: [
            { type: 'put', key: 'm/a', value: enc('a') },
            { type: 'put', key: 'm/b', value: enc('b') },
            { type: 'delete', key: 'm/c' },
            { type: 'deletePrefix', prefix: 'm/d/' },
            { type: 'get', key: 'm/a' },
          ],
        });
        expect(r.succeeded).toBe(true);
        expect(r.results.map((x) => x.deleted)).toEqual([undefined, undefined, 1, 2, undefined]);
        expect(r.results[4]?.kv).toMatchObject({ key: 'm/a', modRevision: r.revision });
        const { kvs } = await s.range('m/');
        expect(kvs.map((kv) => [kv.key, kv.modRevision])).toEqual([['m/a', r.revision], ['m/b', r.revision]]);
      });

      it('runs the failure branch, and only it, when a compare fails', async () => {
        const before = await s.put('f/x', enc('x'));
        const r = await s.txn({
          compare: [{ key: 'f/k', target: 'version', op: '==', value: 5 }],
          success: [{ type: 'put', key: 'f/s', value: enc('s') }],
          failure: [{ type: 'put', key: 'f/f', value: enc('f') }, { type: 'get', key: 'f/x' }],
        });
        expect(r.succeeded).toBe(false);
        expect(r.results.length).toBe(2);
        expect(text(r.results[1]?.kv?.value)).toBe('x');
        expect(await s.get('f/s')).toBeUndefined();
        expect(await s.get('f/f')).toMatchObject({ modRevision: r.revision });
        const none = await s.txn({ compare: [{ key: 'f/k', target: 'version', op: '>', value: 0 }], success: [] });
        expect(none).toMatchObject({ succeeded: false, results: [] });
        expect(none.revision).toBeGreaterThan(before.revision);
      });

      it('a txn that cannot apply applies nothing', async () => {
        const bad = (success: Parameters<StateStore['txn']>[0]['success']) => rejection(s.txn({ compare: [], success }));
        const put = (key: string, lease?: string) => ({ type: 'put' as const, key, value: enc(key), lease });
        expect((await bad([put('x/a'), put('x/b', '987654321')])).code).toBe('MUSTER_NOT_FOUND');
        expect((await bad([put('x/a'), put('x/a')])).code).toBe('MUSTER_INVALID_ARGUMENT');
        expect((await bad([put('x/a'), { type: 'deletePrefix', prefix: 'x/' }])).code).toBe('MUSTER_INVALID_ARGUMENT');
        const badCompare = { key: 'x/a', target: 'version', op: '==', value: 'one' } as unknown as Compare;
        expect((await rejection(s.txn({ compare: [badCompare], success: [put('x/a')] }))).code).toBe('MUSTER_INVALID_ARGUMENT');
        expect((await s.range('x/')).kvs).toEqual([]);
      });

      it('concurrent compare-and-swap increments lose no update', async () => {
        const workers = 16;
        const each = 8;
        const increment = async () => {
          for (;;) {
            const kv = await s.get('cas/n');
            const n = kv ? Number(text(kv.value)) : 0;
            const guard: Compare = kv
              ? { key: 'cas/n', target: 'modRevision', op: '==', value: kv.modRevision }
              : { key: 'cas/n', target: 'createRevision', op: '==', value: 0 };
            const r = await s.txn({ compare: [guard], success: [{ type: 'put', key: 'cas/n', value: enc(String(n + 1)) }] });
            if (r.succeeded) return;
          }
        };
        await Promise.all(Array.from({ length: workers }, async () => {
          for (let i = 0; i < each; i++) await increment();
        }));
        const kv = await s.get('cas/n');
        expect(text(kv?.value)).toBe(String(workers * each));
        expect(kv?.version).toBe(workers * each);
      });
    });

    describe('watch', () => {
      it('delivers live changes under the prefix in revision order, with prevKv', async () => {
        const w = await s.watch('w/');
        const c = collect(w);
        const r1 = (await s.put('w/a', enc('1'))).revision;
        const r2 = (await s.put('w/a', enc('2'))).revision;
        await s.put('other', enc('x'));
        const r3 = (await s.put('w/b', enc('3'))).revision;
        const r4 = (await s.delete('w/a')).revision;
        const t = await s.txn({ compare: [], success: [{ type: 'put', key: 'w/c', value: enc('c') }, { type: 'put', key: 'w/d', value: enc('d') }] });
        await waitFor('6 watch events', () => c.events().length >= 6, patience);
        const ev = c.events();
        expect(ev.map((e) => [e.type, keyOf(e), revOf(e)])).toEqual([
          ['put', 'w/a', r1], ['put', 'w/a', r2], ['put', 'w/b', r3], ['delete', 'w/a', r4], ['put', 'w/c', t.revision], ['put', 'w/d', t.revision],
        ]);
        expect(ev[0]?.prevKv).toBeUndefined();
        expect(text(ev[1]?.prevKv?.value)).toBe('1');
        expect(ev[1]?.prevKv?.version).toBe(1);
        expect(text(ev[3]?.prevKv?.value)).toBe('2');
        expect(c.batches.every((b) => b.length > 0)).toBe(true);
        expect(c.batches.some((b) => b.length === 2 && b.every((e) => revOf(e) === t.revision))).toBe(true); // one txn, one batch
        await w.close();
      });

      it('replays history from fromRevision, then continues live', async () => {
        const r1 = (await s.put('h/a', enc('1'))).revision;
        const r2 = (await s.put('h/b', enc('2'))).revision;
        const r3 = (await s.delete('h/a')).revision;
        const w = await s.watch('h/', { fromRevision: r1 });
        const c = collect(w);
        const r4 = (await s.put('h/c', enc('3'))).revision;
        await waitFor('4 watch events', () => c.events().length >= 4, patience);
        expect(c.events().map((e) => [e.type, keyOf(e), revOf(e)])).toEqual([
          ['put', 'h/a', r1], ['put', 'h/b', r2], ['delete', 'h/a', r3], ['put', 'h/c', r4],
        ]);
        await w.close();
        const w2 = await s.watch('h/', { fromRevision: r3 });
        const c2 = collect(w2);
        await waitFor('2 replayed events', () => c2.events().length >= 2, patience);
        expect(c2.events().map(revOf)).toEqual([r3, r4]);
        await w2.close();
      });

      it('a fromRevision ahead of the store delivers only changes from that revision on', async () => {
        const from = (await s.revision()) + 3;
        const w = await s.watch('fu/', { fromRevision: from });
        const c = collect(w);
        const puts: [string, number][] = [];
        for (const k of ['fu/a', 'fu/b', 'fu/c', 'fu/d']) puts.push([k, (await s.put(k, enc(k))).revision]);
        const want = puts.filter(([, rev]) => rev >= from);
        await waitFor(`${want.length} events`, () => c.events().length >= want.length, patience);
        expect(c.events().map((e) => [keyOf(e), revOf(e)])).toEqual(want);
        await w.close();
      });

      it('without fromRevision starts after its creation; close() ends the iteration', async () => {
        await s.put('n/before', enc('x'));
        const w = await s.watch('n/');
        const c = collect(w);
        await s.put('n/after', enc('y'));
        await waitFor('the live event', () => c.events().length >= 1, patience);
        expect(c.events().map(keyOf)).toEqual(['n/after']);
        await w.close();
        await within('iteration to end after close()', c.done);
        expect(c.ended).toBe(true);
        expect(c.error).toBeUndefined();
      });

      it('a compacted fromRevision fails with MUSTER_STORE_COMPACTED', async (ctx) => {
        if (!sut.compact) return ctx.skip();
        const r1 = (await s.put('c/a', enc('1'))).revision;
        await s.put('c/a', enc('2'));
        const r3 = (await s.put('c/a', enc('3'))).revision;
        await sut.compact(r3);
        const err = await (async () => {
          try {
            const c = collect(await s.watch('c/', { fromRevision: r1 }));
            await within('the watch to fail', c.done);
            return c.error;
          } catch (e) {
            return e;
          }
        })();
        expect((err as { code?: string }).code).toBe('MUSTER_STORE_COMPACTED');
        const c = collect(await s.watch('c/', { fromRevision: r3 })); // the compaction point itself is kept
        await waitFor('the event at the compaction revision', () => c.events().length >= 1, patience);
        expect(c.events().map(revOf)).toEqual([r3]);
      });
    });

    describe('leases', () => {
      it('revoke deletes the keys attached to the lease and resolves lost', async () => {
        const lease = await s.grantLease(30);
        await s.put('l/a', enc('a'), { lease: lease.id });
        await s.put('l/b', enc('b'), { lease: lease.id });
        await s.put('l/c', enc('c'));
        expect((await s.get('l/a'))?.lease).toBe(lease.id);
        const c = collect(await s.watch('l/'));
        await lease.revoke();
        await within('lost after revoke', lease.lost);
        expect((await s.range('l/')).kvs.map((kv) => kv.key)).toEqual(['l/c']);
        await waitFor('2 delete events', () => c.events().length >= 2, patience);
        expect(c.events().map((e) => [e.type, keyOf(e)])).toEqual([['delete', 'l/a'], ['delete', 'l/b']]);
        expect(new Set(c.events().map(revOf)).size).toBe(1); // one revision, like etcd
      });

      it('a lease without keepalive expires: its keys go and lost resolves', async () => {
        const lease = await s.grantLease(1, { keepAlive: false });
        await s.put('e/a', enc('a'), { lease: lease.id });
        await within('lease expiry', lease.lost);
        expect(await s.get('e/a')).toBeUndefined();
        expect((await rejection(lease.keepAliveOnce())).code).toBe('MUSTER_NOT_FOUND');
      });

      it('keepalive (automatic or keepAliveOnce) keeps a lease and its keys past their TTL', async () => {
        const auto = await s.grantLease(1);
        const manual = await s.grantLease(1, { keepAlive: false });
        const control = await s.grantLease(1, { keepAlive: false });
        await s.put('k/auto', enc('a'), { lease: auto.id });
        await s.put('k/manual', enc('m'), { lease: manual.id });
        await s.put('k/control', enc('c'), { lease: control.id });
        let expired = false;
        void control.lost.then(() => (expired = true));
        // Renew `manual` by hand until the control lease, granted last, has expired.
        await waitFor('the control lease to expire', async () => (await manual.keepAliveOnce(), expired), patience);
        expect((await s.range('k/')).kvs.map((kv) => kv.key)).toEqual(['k/auto', 'k/manual']);
        await auto.revoke();
        await manual.revoke();
      });

      it('refuses a bad TTL or an unknown lease; a put without lease detaches the key', async () => {
        expect((await rejection(s.grantLease(0))).code).toBe('MUSTER_INVALID_ARGUMENT');
        expect((await rejection(s.grantLease(-5))).code).toBe('MUSTER_INVALID_ARGUMENT');
        expect((await rejection(s.put('u/a', enc('a'), { lease: '987654321' }))).code).toBe('MUSTER_NOT_FOUND');
        const lease = await s.grantLease(30);
        await s.put('u/b', enc('1'), { lease: lease.id });
        await s.put('u/b', enc('2'));
        expect((await s.get('u/b'))?.lease).toBeUndefined();
        await lease.revoke();
        expect(text((await s.get('u/b'))?.value)).toBe('2');
      });
    });
  });
}

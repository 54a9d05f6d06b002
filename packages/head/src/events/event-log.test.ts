import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@muster/common';
import { createLogger } from '@muster/common/log';
import { EmbeddedStore } from '../state/embedded.js';
import { LEADER_KEY, StateWriter, encodeLeaderRecord } from '../state/fence.js';
import { EVENTS_PREFIX, EventLog, trimEvery } from './event-log.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function eventLog(retention: number, dir?: string, opts: { maxAgeMs?: number; clock?: () => number } = {}) {
  dir ??= await mkdtemp(join(tmpdir(), 'muster-events-'));
  const store = await EmbeddedStore.open(dir);
  const { revision } = await store.put(LEADER_KEY, encodeLeaderRecord({ headId: 'me', address: '127.0.0.1:1', sinceMs: 0 }));
  const log = createLogger('test', { level: 'silent' });
  const events = new EventLog(new StateWriter(store, 'me', revision), log, { retention, maxAgeMs: opts.maxAgeMs ?? 86_400_000, subjectPrefix: 'muster', clock: opts.clock });
  await events.load();
  cleanups.push(async () => events.close());
  return { dir, store, events };
}

const count = async (store: EmbeddedStore) => (await store.range(EVENTS_PREFIX)).kvs.length;

describe('event retention', () => {
  it('trims after a tenth of the retention in new events, at most 1,000, so the count stays near the retention', () => {
    expect([1, 50, 2_000, 10_000, 1_000_000].map(trimEvery)).toEqual([1, 5, 200, 1_000, 1_000]);
  });

  it('keeps the newest `retention` events, counting the store once per log and then by what it writes', async () => {
    const { dir, store, events } = await eventLog(50);
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const ids: string[] = [];
    for (let i = 0; i < 3_000; i += 100) {
      const batch = await Promise.all(Array.from({ length: 100 }, (_, j) => events.append('test.event', { message: `event ${i + j}` })));
      ids.push(...batch.map((e) => e.id));
    }
    // A trim runs after every tenth of the retention (5 events here): the one after event 3,000 leaves exactly the newest 50.
    await waitFor('the last trim', async () => (await count(store)) === 50, { timeoutMs: 5_000, intervalMs: 10 });
    expect((await events.history()).map((e) => e.id)).toEqual(ids.slice(-50));

    // A new log over the same store (a new leader term) counts again, then trims by its own count.
    await store.close();
    const next = await eventLog(20, dir);
    cleanups.push(() => next.store.close());
    for (let i = 0; i < 1_000; i += 100) await Promise.all(Array.from({ length: 100 }, () => next.events.append('test.event', { message: 'later' })));
    await waitFor('the next term to trim', async () => (await count(next.store)) === 20, { timeoutMs: 5_000, intervalMs: 10 });
  });

  it('deletes events older than maxAgeMs, oldest first, page by page', async () => {
    let now = 1_000_000;
    const { dir, store, events } = await eventLog(10_000, undefined, { maxAgeMs: 60_000, clock: () => now });
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    for (let i = 0; i < 250; i++) await events.append('old.event', { message: `old ${i}` });
    now += 30_000;
    const young = await events.append('young.event', { message: 'young' });
    now += 40_000; // the 250 old ones are now 70 s old, the young one 40 s
    await store.close();
    // A new term loads (and trims at once): only the young event is left.
    const next = await eventLog(10_000, dir, { maxAgeMs: 60_000, clock: () => now });
    cleanups.push(() => next.store.close());
    await waitFor('age trim', async () => (await count(next.store)) === 1, { timeoutMs: 5_000, intervalMs: 10 });
    expect((await next.events.history()).map((e) => e.id)).toEqual([young.id]);
  });
});

describe('event ids', () => {
  it('never go backwards: not when the clock steps back, nor in a new term whose clock is behind the last one', async () => {
    let now = 5_000_000;
    const { dir, store, events } = await eventLog(10_000, undefined, { clock: () => now });
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await events.append('a', { message: 'before' })).id);
    now -= 3_600_000; // the clock steps back an hour
    for (let i = 0; i < 3; i++) ids.push((await events.append('a', { message: 'after the step' })).id);
    await store.close();
    // The next leader's clock is two hours behind: it continues after the newest stored id.
    const next = await eventLog(10_000, dir, { clock: () => now - 3_600_000 });
    cleanups.push(() => next.store.close());
    const staged = next.events.stage('a', { message: 'staged' });
    await next.store.txn({ compare: [], success: [staged.op] });
    staged.settle(true);
    ids.push((await next.events.append('a', { message: 'next term' })).id);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    const stored = (await next.events.history()).map((e) => e.id);
    expect(stored).toHaveLength(8);
    expect(stored).toEqual([...stored].sort());
    expect(stored.slice(0, 6)).toEqual(ids.slice(0, 6));
    // Resuming after any id gives exactly the events after it.
    expect((await next.events.history(ids[4])).map((e) => e.id)).toEqual(stored.slice(5));
  });
});

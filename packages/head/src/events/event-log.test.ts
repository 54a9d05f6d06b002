import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '@muster/common';
import { createLogger } from '@muster/common/log';
import { EmbeddedStore } from '../state/embedded.js';
import { LEADER_KEY, StateWriter, encodeLeaderRecord } from '../state/fence.js';
import { EVENTS_PREFIX, EventLog } from './event-log.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function eventLog(retention: number, dir?: string) {
  dir ??= await mkdtemp(join(tmpdir(), 'muster-events-'));
  const store = await EmbeddedStore.open(dir);
  const { revision } = await store.put(LEADER_KEY, encodeLeaderRecord({ headId: 'me', address: '127.0.0.1:1', sinceMs: 0 }));
  const events = new EventLog(new StateWriter(store, 'me', revision), createLogger('test', { level: 'silent' }), { retention, subjectPrefix: 'muster' });
  return { dir, store, events };
}

const count = async (store: EmbeddedStore) => (await store.range(EVENTS_PREFIX)).kvs.length;

describe('event retention', () => {
  it('keeps the newest `retention` events, counting the store once per log and then by what it writes', async () => {
    const { dir, store, events } = await eventLog(50);
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const ids: string[] = [];
    for (let i = 0; i < 3_000; i += 100) {
      const batch = await Promise.all(Array.from({ length: 100 }, (_, j) => events.append('test.event', { message: `event ${i + j}` })));
      ids.push(...batch.map((e) => e.id));
    }
    // A trim runs after every 1,000 events: the one after event 3,000 leaves exactly the newest 50.
    await waitFor('the last trim', async () => (await count(store)) === 50, { timeoutMs: 5_000, intervalMs: 10 });
    expect((await events.history()).map((e) => e.id)).toEqual(ids.slice(-50));

    // A new log over the same store (a new leader term) counts again, then trims by its own count.
    await store.close();
    const next = await eventLog(20, dir);
    cleanups.push(() => next.store.close());
    for (let i = 0; i < 1_000; i += 100) await Promise.all(Array.from({ length: 100 }, () => next.events.append('test.event', { message: 'later' })));
    await waitFor('the next term to trim', async () => (await count(next.store)) === 20, { timeoutMs: 5_000, intervalMs: 10 });
  });
});

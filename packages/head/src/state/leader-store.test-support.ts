/**
 * What every controller test starts from: a real embedded store in a temp
 * dir, wrapped in a FaultyStore (writes fail on command), with this head
 * holding the leader key, its fenced writer, a silent logger and an event
 * log. `close()` closes the store and removes the dir. Test support only
 * (`*.test-support.ts` is not compiled into dist).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@muster/common/log';
import { EventLog } from '../events/event-log.js';
import { EmbeddedStore } from './embedded.js';
import { FaultyStore } from './faulty.js';
import { LEADER_KEY, StateWriter, encodeLeaderRecord } from './fence.js';

export async function leaderOnFaultyStore(name: string, opts: { eventRetention?: number } = {}) {
  const dir = await mkdtemp(join(tmpdir(), `muster-${name}-`));
  const inner = await EmbeddedStore.open(dir);
  const store = new FaultyStore(inner);
  const { revision } = await store.put(LEADER_KEY, encodeLeaderRecord({ headId: 'test', address: '127.0.0.1:1', sinceMs: Date.now() }));
  const writer = new StateWriter(store, 'test', revision);
  const log = createLogger('test', { level: 'silent' });
  const events = new EventLog(writer, log, { retention: opts.eventRetention ?? 10_000, subjectPrefix: 'muster' });
  const close = async () => {
    await inner.close();
    await rm(dir, { recursive: true, force: true });
  };
  return { inner, store, writer, log, events, close };
}

/**
 * The standby's state mirror as a term loads from it: pages as the store
 * gives them, and each answered on a later turn of the event loop — never
 * in microtasks alone, which would keep the leader lease's keepalive timer
 * from firing for the whole load (mirror.ts). The mirror against etcd and a
 * real failover: test/integration/ha-election.test.ts, agent-failover.test.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '@muster/common/log';
import { EmbeddedStore } from '../state/embedded.js';
import { StateMirror } from './mirror.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function mirrored(keys: number) {
  const dir = await mkdtemp(join(tmpdir(), 'muster-mirror-'));
  const store = await EmbeddedStore.open(dir);
  cleanups.push(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  const value = new TextEncoder().encode('v');
  for (let i = 0; i < keys; i++) await store.put(`/muster/nodes/n${String(i).padStart(4, '0')}`, value);
  const mirror = new StateMirror(store, createLogger('test', { level: 'silent' }));
  cleanups.push(() => mirror.close());
  expect(await mirror.caughtUp(await store.revision(), 5_000)).toBe(true);
  return mirror;
}

describe('StateMirror.forLoading', () => {
  it('pages the copy like the store, each page on a later turn of the event loop', async () => {
    const mirror = await mirrored(25);
    const { store, loaded } = mirror.forLoading();
    const seen: string[] = [];
    let after: string | undefined;
    let turns = 0;
    for (;;) {
      // A timer-phase marker queued before the page is asked for: it runs before the page is answered.
      let turned = false;
      setImmediate(() => (turned = true));
      const page = await store.range('/muster/nodes/', { limit: 10, ...(after === undefined ? {} : { after }) });
      if (turned) turns++;
      seen.push(...page.kvs.map((kv) => kv.key));
      after = page.kvs.at(-1)?.key;
      if (!page.more) break;
    }
    expect(seen).toHaveLength(25);
    expect(seen).toEqual([...seen].sort());
    expect(turns).toBe(3); // every page, none answered in the same turn
    loaded();
  });
});

import { describe, expect, it } from 'vitest';
import { ErrorCode, MusterError } from '@muster/common';
import { StoreCompactor, type CompactableStore } from './compactor.js';

const log = { debug: () => undefined, warn: () => undefined } as never;

function fakeEtcd(opts: { failWith?: Error } = {}): CompactableStore & { rev: number; compactions: number[] } {
  const s = {
    kind: 'etcd',
    rev: 10,
    compactions: [] as number[],
    revision: async () => s.rev,
    compact: async (r: number) => {
      if (opts.failWith) throw opts.failWith;
      s.compactions.push(r);
    },
  };
  return s;
}

describe('StoreCompactor', () => {
  it('compacts to the revision read at the previous tick, never to the current one', async () => {
    const store = fakeEtcd();
    const c = new StoreCompactor(store, { intervalMs: 300_000, log });
    await c.tick();
    expect(store.compactions).toEqual([]);
    store.rev = 50;
    await c.tick();
    store.rev = 90;
    await c.tick();
    expect(store.compactions).toEqual([10, 50]);
  });

  it('runs on etcd with a non-zero interval only', () => {
    expect(StoreCompactor.applies(fakeEtcd(), 300_000)).toBe(true);
    expect(StoreCompactor.applies(fakeEtcd(), 0)).toBe(false);
    expect(StoreCompactor.applies({ ...fakeEtcd(), kind: 'embedded' }, 300_000)).toBe(false);
  });

  it('a revision compacted already is no failure; another failure is logged and the next tick tries again', async () => {
    const warned: string[] = [];
    const warnLog = { debug: () => undefined, warn: (_o: unknown, m: string) => warned.push(m) } as never;
    const compacted = fakeEtcd({ failWith: new MusterError(ErrorCode.STORE_COMPACTED, 'etcd compact: required revision has been compacted') });
    const a = new StoreCompactor(compacted, { intervalMs: 300_000, log: warnLog });
    await a.tick();
    await a.tick();
    expect(warned).toEqual([]);
    const down = fakeEtcd({ failWith: new MusterError(ErrorCode.UNAVAILABLE, 'etcd compact: unreachable') });
    const b = new StoreCompactor(down, { intervalMs: 300_000, log: warnLog });
    await b.tick();
    await expect(b.tick()).resolves.toBeUndefined();
    expect(warned).toEqual(['store compaction failed; the next tick tries again']);
  });
});

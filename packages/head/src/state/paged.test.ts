import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, MusterError } from '@muster/common';
import { PAGE_BYTES, STORE_PAGE_KEYS } from '@muster/contracts';
import { EmbeddedStore } from './embedded.js';
import { nextLimit, rangeAll, readAll } from './paged.js';
import type { RangeOptions, StateStore } from './store.js';

describe('paged store reads', () => {
  let dir: string;
  let store: EmbeddedStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'muster-paged-'));
    store = await EmbeddedStore.open(dir);
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('sizes pages by the records seen: a probe first, then about PAGE_BYTES, within 1..pageSize', () => {
    expect(nextLimit(STORE_PAGE_KEYS, 0, 0)).toBe(100);
    expect(nextLimit(10, 0, 0)).toBe(10);
    expect(nextLimit(STORE_PAGE_KEYS, 100, 100 * 1_600)).toBe(Math.floor(PAGE_BYTES / 1_600));
    expect(nextLimit(STORE_PAGE_KEYS, 100, 100 * 100)).toBe(STORE_PAGE_KEYS);
    expect(nextLimit(STORE_PAGE_KEYS, 1, 10 * PAGE_BYTES)).toBe(1);
  });

  it('walks large records in pages of about PAGE_BYTES, every key once', async () => {
    const value = new Uint8Array(64 * 1024);
    const keys = Array.from({ length: 120 }, (_, i) => `/big/${String(i).padStart(3, '0')}`);
    for (const k of keys) await store.put(k, value);
    const sizes: number[] = [];
    const seen: string[] = [];
    for await (const page of rangeAll(store, '/big/')) {
      sizes.push(page.kvs.length);
      seen.push(...page.kvs.map((kv) => kv.key));
    }
    expect(seen).toEqual(keys);
    expect(sizes[0]).toBe(100); // the probe
    expect(sizes[1]).toBe(15); // 1 MiB of 64 KiB records
    expect(Math.max(...sizes.slice(1))).toBeLessThanOrEqual(15);
  });

  it('asks again with half the keys when a reply is refused as too large', async () => {
    const keys = Array.from({ length: 50 }, (_, i) => `/r/${String(i).padStart(2, '0')}`);
    for (const k of keys) await store.put(k, new Uint8Array(8));
    const limits: number[] = [];
    const tight = new Proxy(store as StateStore, {
      get(target, prop, receiver) {
        if (prop !== 'range') return Reflect.get(target, prop, receiver) as unknown;
        return (prefix: string, opts: RangeOptions = {}) => {
          limits.push(opts.limit ?? 0);
          if ((opts.limit ?? Infinity) > 12) return Promise.reject(new MusterError(ErrorCode.RESOURCE_EXHAUSTED, 'Received message larger than max'));
          return target.range(prefix, opts);
        };
      },
    });
    const all = await readAll(tight, '/r/');
    expect(all.kvs.map((kv) => kv.key)).toEqual(keys);
    expect(limits.slice(0, 5)).toEqual([100, 50, 25, 12, 12]); // the probe, halved until it fits, then kept
  });
});

/**
 * Paged store reads: every load of the head (controllers, the node registry,
 * the standby mirror) walks its prefix in pages of at most STORE_PAGE_KEYS
 * keys and about PAGE_BYTES (sized by the records already read) instead of
 * one range, so no store request or reply grows with the
 * keyspace (etcd's gRPC limit is MAX_MESSAGE_BYTES on our side, 1.5 MiB
 * requests and a default 2 GiB reply on etcd's; one giant range also holds
 * etcd's read lock and the head's memory twice over).
 *
 * Consistency: on a store with `snapshotReads` (etcd) every page after the
 * first reads at the first page's revision, so the walk is one snapshot; a
 * compaction in the middle restarts it. The embedded store keeps no old
 * versions: its pages are read at the current revision each, so a key
 * changed during the walk may be seen before or after the change. Either
 * way `revision` is the first page's: a watch from `revision + 1` replays
 * every change the walk may have missed, which is what the standby mirror
 * does.
 */
import { ErrorCode, isMusterError } from '@muster/common';
import { PAGE_BYTES, STORE_PAGE_KEYS } from '@muster/contracts';
import type { KeyValue, RangeResult, StateStore } from './store.js';

export interface RangePage {
  kvs: KeyValue[];
  /** The revision of the walk's first page (see above). */
  revision: number;
}

/** How often readAll starts a snapshot walk again after a compaction, before it gives up. */
const RESTARTS = 3;

/** Keys in a walk's first request, before the size of the records is known. */
const PROBE_KEYS = 100;

/**
 * The next page's key limit: as many keys as keep a page near PAGE_BYTES at
 * the mean record size seen so far (records of 12 KiB, a gang with its log
 * tails, make pages of ~85 keys; node records of 1.6 KiB, ~650), never more
 * than `pageSize`, never fewer than one.
 */
export function nextLimit(pageSize: number, seenKeys: number, seenBytes: number): number {
  if (seenKeys === 0) return Math.min(pageSize, PROBE_KEYS);
  const mean = Math.max(1, seenBytes / seenKeys);
  return Math.max(1, Math.min(pageSize, Math.floor(PAGE_BYTES / mean)));
}

/**
 * Yields the keys under `prefix` page by page, in key order: at most
 * `pageSize` keys a request, fewer when records are large (nextLimit), so a
 * reply stays near PAGE_BYTES; a reply refused as over the message limit
 * (MUSTER_RESOURCE_EXHAUSTED) is asked again with half the keys. A compaction between pages of a snapshot walk
 * throws MUSTER_STORE_COMPACTED (pages already yielded cannot be taken back;
 * readAll starts again instead).
 */
export async function* rangeAll(store: StateStore, prefix: string, pageSize: number = STORE_PAGE_KEYS): AsyncGenerator<RangePage> {
  let revision: number | undefined;
  let after: string | undefined;
  let seenKeys = 0;
  let seenBytes = 0;
  let cap = pageSize;
  for (;;) {
    const pinned = store.snapshotReads ? revision : undefined;
    const limit = Math.min(cap, nextLimit(pageSize, seenKeys, seenBytes));
    let page: RangeResult;
    try {
      page = await store.range(prefix, { limit, ...(after === undefined ? {} : { after }), ...(pinned === undefined ? {} : { revision: pinned }) });
    } catch (e) {
      // The reply would pass the message limit: the same page again, half as long.
      if (!(isMusterError(e) && e.code === ErrorCode.RESOURCE_EXHAUSTED && limit > 1)) throw e;
      cap = Math.floor(limit / 2);
      continue;
    }
    revision ??= page.revision;
    for (const kv of page.kvs) seenBytes += kv.key.length + kv.value.byteLength;
    seenKeys += page.kvs.length;
    const last = page.kvs[page.kvs.length - 1];
    yield { kvs: page.kvs, revision };
    if (!page.more || !last) return;
    after = last.key;
  }
}

/** Every key under `prefix`, read in pages; `revision` as in rangeAll. */
export async function readAll(store: StateStore, prefix: string, pageSize?: number): Promise<{ kvs: KeyValue[]; revision: number }> {
  for (let attempt = 0; ; attempt++) {
    const kvs: KeyValue[] = [];
    let revision = 0;
    try {
      for await (const page of rangeAll(store, prefix, pageSize)) {
        kvs.push(...page.kvs);
        revision = page.revision;
      }
      return { kvs, revision };
    } catch (e) {
      if (!(isMusterError(e) && e.code === ErrorCode.STORE_COMPACTED && attempt < RESTARTS)) throw e;
    }
  }
}

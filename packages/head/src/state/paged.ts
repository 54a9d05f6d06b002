/**
 * Paged store reads: every load of the head (controllers, the node registry,
 * the standby mirror) walks its prefix in pages of STORE_PAGE_KEYS keys
 * instead of one range, so no store request or reply grows with the
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
import { STORE_PAGE_KEYS } from '@muster/contracts';
import type { KeyValue, StateStore } from './store.js';

export interface RangePage {
  kvs: KeyValue[];
  /** The revision of the walk's first page (see above). */
  revision: number;
}

/** How often readAll starts a snapshot walk again after a compaction, before it gives up. */
const RESTARTS = 3;

/**
 * Yields the keys under `prefix` page by page, in key order. A compaction
 * between pages of a snapshot walk throws MUSTER_STORE_COMPACTED (pages
 * already yielded cannot be taken back; readAll starts again instead).
 */
export async function* rangeAll(store: StateStore, prefix: string, pageSize: number = STORE_PAGE_KEYS): AsyncGenerator<RangePage> {
  let revision: number | undefined;
  let after: string | undefined;
  for (;;) {
    const pinned = store.snapshotReads ? revision : undefined;
    const page = await store.range(prefix, { limit: pageSize, ...(after === undefined ? {} : { after }), ...(pinned === undefined ? {} : { revision: pinned }) });
    revision ??= page.revision;
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

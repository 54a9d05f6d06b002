/**
 * What the soak measures at each interval, outside the head: the store's
 * keys (counted by prefix with paged ranges) and bytes, and the head's RSS.
 *
 * The embedded store belongs to the running head (its data dir is locked and
 * its log is being appended to), so it is never opened in place: the data
 * dir is copied and the copy opened (recovery may cut a torn last frame — of
 * the copy only). Store bytes are the logical size on both stores: the sum
 * of key and value sizes. The embedded data dir's file sizes are reported
 * too (diskBytes): the log grows to the snapshot threshold (64 MiB) and is
 * then cut, so they saw-tooth and are checked against a cap, not a trend.
 * On etcd the keys are read with the same paged ranges (etcd's own db file
 * only grows until a defrag, which is etcd's business, not ours).
 */
import { cp, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, rangeAll, type EtcdStore, type StateStore } from '@muster/head/state';

export interface StoreSample {
  keys: number;
  /** Logical size: the sum of key and value sizes. */
  bytes: number;
  /** Embedded only: the data dir's files (log segments + snapshot); saw-tooths up to the snapshot threshold. */
  diskBytes?: number;
  /** etcd only: its database file and the bytes in use in it (history until compaction: state/compactor.ts). */
  etcdDb?: { fileBytes: number; inUseBytes: number };
  /** Keys by their first two path segments, e.g. "/muster/gangs". */
  byPrefix: Record<string, number>;
}

/** "/muster/gangs/abc" → "/muster/gangs". */
function prefixOf(key: string): string {
  return key.split('/').slice(0, 3).join('/');
}

async function countKeys(store: StateStore): Promise<{ keys: number; valueBytes: number; byPrefix: Record<string, number> }> {
  let keys = 0;
  let valueBytes = 0;
  const byPrefix: Record<string, number> = {};
  for await (const page of rangeAll(store, '')) {
    for (const kv of page.kvs) {
      keys++;
      valueBytes += kv.key.length + kv.value.byteLength;
      const p = prefixOf(kv.key);
      byPrefix[p] = (byPrefix[p] ?? 0) + 1;
    }
  }
  return { keys, valueBytes, byPrefix };
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) {
    const s = await stat(join(dir, name)).catch(() => undefined); // a segment may be deleted meanwhile
    if (s?.isFile()) total += s.size;
  }
  return total;
}

/** The embedded store of a running head, read from a copy of `dataDir`. */
export async function sampleEmbedded(dataDir: string): Promise<StoreSample> {
  const diskBytes = await dirBytes(dataDir);
  const copy = await mkdtemp(join(tmpdir(), 'muster-soak-copy-'));
  try {
    // Skip the lock and token; a segment deleted mid-copy (after a snapshot) is simply missed.
    await cp(dataDir, copy, { recursive: true, filter: (src) => !/\b(lock|token)$/i.test(src) }).catch(async () => {
      await rm(copy, { recursive: true, force: true });
      await cp(dataDir, copy, { recursive: true, filter: (src) => !/\b(lock|token)$/i.test(src) });
    });
    const store = await openStore({ kind: 'embedded', dataDir: copy, repairWal: true });
    try {
      const c = await countKeys(store);
      return { keys: c.keys, bytes: c.valueBytes, diskBytes, byPrefix: c.byPrefix };
    } finally {
      await store.close();
    }
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
}

/** A store shared with the head (etcd): opened once, read with paged ranges. */
export async function openEtcdSampler(etcd: { endpoint: string; credentials(): { rootCertificate: Buffer; certChain: Buffer; privateKey: Buffer } | undefined }): Promise<{ sample(): Promise<StoreSample>; close(): Promise<void> }> {
  const store = await openStore({ kind: 'etcd', endpoints: [etcd.endpoint], credentials: etcd.credentials() });
  return {
    async sample() {
      const c = await countKeys(store);
      return { keys: c.keys, bytes: c.valueBytes, byPrefix: c.byPrefix, etcdDb: await (store as EtcdStore).dbSize() };
    },
    close: () => store.close(),
  };
}

/** Resident set size of a process, MiB (/proc/<pid>/status). */
export async function rssMiB(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(m?.[1] ?? 0) / 1024);
}

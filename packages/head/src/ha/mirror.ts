/**
 * A standby's copy of the cluster state: every key under /muster/, read once
 * and then followed by watch, so a head that wins an election loads its term
 * from memory — already at the leader's last revision — instead of reading
 * the whole keyspace from etcd while clients wait.
 *
 * The copy is used for loading only (`forLoading`): after the term has
 * loaded, reads go to the store again, because a mirror follows writes with
 * a small lag and a controller must read its own writes. A broken watch
 * (store outage, compaction) is re-established by reading everything again.
 * The leader closes its mirror (it would only echo its own writes) and a
 * head that stands by again starts a new one.
 *
 * The copy is read in pages (readAll: STORE_PAGE_KEYS keys a request, one
 * etcd snapshot), never as one range of the whole keyspace, and the watch
 * resumes from the snapshot's revision. Loads from the copy page the same
 * way (`after`, `limit`), so a term's loads behave as on the store — and,
 * as a store's pages do, each page is answered on a later turn of the event
 * loop (setImmediate), not as an already-resolved promise: a load of 10,000
 * node records answered in microtasks held the event loop for seconds on a
 * busy machine, the leader lease's keepalives could not go out, and a head
 * lost the lease it had just won before its term had loaded (the heads then
 * took turns winning and losing, each load as long as the last).
 */
import type { Logger } from '@muster/common';
import { readAll } from '../state/paged.js';
import type { KeyValue, RangeOptions, RangeResult, StateStore } from '../state/store.js';

const ROOT = '/muster/';

export class StateMirror {
  private readonly kvs = new Map<string, KeyValue>();
  /** The store revision the copy reflects. */
  revision = 0;
  private stopped = false;
  private readonly waiters = new Set<{ revision: number; resolve: () => void }>();
  private closeWatch: (() => Promise<void>) | undefined;
  private readonly loop: Promise<void>;

  constructor(
    private readonly store: StateStore,
    private readonly log: Logger,
  ) {
    this.loop = this.follow();
  }

  get size(): number {
    return this.kvs.size;
  }

  /** Resolves once the copy reflects `revision` (or false after `timeoutMs`). */
  caughtUp(revision: number, timeoutMs: number): Promise<boolean> {
    if (this.revision >= revision) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const w = { revision, resolve: () => finish(true) };
      const timer = setTimeout(() => finish(false), timeoutMs);
      const finish = (ok: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(w);
        resolve(ok);
      };
      this.waiters.add(w);
    });
  }

  /**
   * The store, except that `range` answers from the copy until `loaded()`:
   * for loading a term after `caughtUp` said the copy is current. Writes and
   * everything else go to the store.
   */
  forLoading(): { store: StateStore; loaded(): void } {
    const s = this.store;
    let fromCopy = true;
    let sorted: { keys: string[]; revision: number } | undefined;
    const range = (prefix: string, opts: RangeOptions = {}): Promise<RangeResult> => {
      if (!fromCopy) return s.range(prefix, opts);
      // A later turn of the event loop (see the file comment); the copy is read then.
      return new Promise((resolve) => setImmediate(() => resolve(fromTheCopy(prefix, opts))));
    };
    const fromTheCopy = (prefix: string, opts: RangeOptions): RangeResult => {
      // One sort per revision of the copy, not one per page.
      if (sorted?.revision !== this.revision) sorted = { keys: [...this.kvs.keys()].sort(), revision: this.revision };
      const { keys } = sorted;
      let i = lowerBound(keys, opts.after ?? prefix);
      if (keys[i] === opts.after) i++;
      const kvs: KeyValue[] = [];
      for (; i < keys.length && keys[i]!.startsWith(prefix); i++) {
        if (opts.limit && kvs.length >= opts.limit) return { kvs, revision: this.revision, more: true };
        const kv = this.kvs.get(keys[i]!);
        if (kv) kvs.push(kv);
      }
      return { kvs, revision: this.revision, more: false };
    };
    const store: StateStore = {
      kind: s.kind,
      ordersWrites: s.ordersWrites,
      snapshotReads: false, // the copy keeps no old versions
      range,
      get: (key) => s.get(key),
      put: (key, value, opts) => s.put(key, value, opts),
      delete: (key) => s.delete(key),
      deletePrefix: (prefix) => s.deletePrefix(prefix),
      txn: (req) => s.txn(req),
      watch: (prefix, opts) => s.watch(prefix, opts),
      grantLease: (ttl, opts) => s.grantLease(ttl, opts),
      revision: () => s.revision(),
      close: () => s.close(),
    };
    return { store, loaded: () => (fromCopy = false) };
  }

  async close(): Promise<void> {
    this.stopped = true;
    await this.closeWatch?.();
    await this.loop;
  }

  private async follow(): Promise<void> {
    let failing = false;
    while (!this.stopped) {
      try {
        const { kvs, revision } = await readAll(this.store, ROOT);
        if (failing) this.log.info({ keys: kvs.length, revision }, 'state mirror reads the store again');
        failing = false;
        this.kvs.clear();
        for (const kv of kvs) this.kvs.set(kv.key, kv);
        this.advance(revision);
        const watch = await this.store.watch(ROOT, { fromRevision: revision + 1 });
        this.closeWatch = () => watch.close();
        if (this.stopped) await watch.close();
        for await (const batch of watch) {
          for (const ev of batch) {
            if (ev.type === 'put') {
              this.kvs.set(ev.kv.key, ev.kv);
              this.advance(ev.kv.modRevision);
            } else {
              this.kvs.delete(ev.key);
              this.advance(ev.modRevision);
            }
          }
        }
      } catch (e) {
        if (!this.stopped && !failing) this.log.warn({ err: (e as Error).message }, 'state mirror lost the store; retrying every 500 ms');
        failing = true;
      }
      if (!this.stopped) await new Promise((r) => setTimeout(r, 500));
    }
  }

  private advance(revision: number): void {
    if (revision <= this.revision) return;
    this.revision = revision;
    for (const w of this.waiters) if (w.revision <= revision) w.resolve();
  }
}

/** The first index of sorted `keys` whose key is >= `key`. */
function lowerBound(keys: string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid]! < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

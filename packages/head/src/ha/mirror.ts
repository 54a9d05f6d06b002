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
 */
import type { Logger } from '@muster/common';
import type { KeyValue, RangeOptions, RangeResult, StateStore } from '../state/store.js';
import { compareKeys } from '../state/sorted-keys.js';

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
    const range = (prefix: string, opts: RangeOptions = {}): Promise<RangeResult> => {
      if (!fromCopy) return s.range(prefix, opts);
      const after = opts.after;
      const keys = [...this.kvs.keys()].filter((k) => k.startsWith(prefix) && (after === undefined || compareKeys(k, after) > 0)).sort(compareKeys);
      const kept = opts.limit ? keys.slice(0, opts.limit) : keys;
      return Promise.resolve({ kvs: kept.map((k) => this.kvs.get(k)!), revision: this.revision });
    };
    const store: StateStore = {
      kind: s.kind,
      ordersWrites: s.ordersWrites,
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
        const { kvs, revision } = await this.store.range(ROOT);
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

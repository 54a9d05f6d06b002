/**
 * EmbeddedStore: the zero-setup StateStore. State lives in memory (keyspace.ts)
 * and every change is appended to a write-ahead log in the data directory
 * (wal.ts) before it is acknowledged, so a restart, even after SIGKILL or a
 * power cut, keeps every acknowledged write. See docs/state-store.md.
 *
 * Write path (group commit):
 *
 *   txn() ──apply in memory──▶ record framed into the open batch ──┐
 *   txn() ──apply in memory──▶ ...same batch (same tick)  ─────────┤
 *                                                                  ▼
 *             one write() + one fdatasync() per batch ──▶ watchers get the batch's
 *             events, every txn of the batch resolves
 *
 * Only one batch is on disk at a time; writes arriving meanwhile pile up into
 * the next batch, so under load batches grow and fsyncs per write shrink.
 * Applying in memory first keeps txns serializable with no locking (all of
 * it is synchronous), and nothing is *visible* before it is durable: writers
 * resolve, watchers hear, and readers return only once the state they saw is
 * on disk (a read that sees un-synced writes waits for that batch).
 *
 * This file decides what changes (txns, leases, watches); embedded-log.ts
 * batches the records, syncs them, snapshots, and says when they are durable.
 */
import { mkdir } from 'node:fs/promises';
import { ErrorCode, MusterError } from '@muster/common';
import type {
  Compare, KeyValue, Lease, LeaseOptions, Op, OpResult, RangeOptions, RangeResult, StateStore, TxnRequest, TxnResult, Watch,
  WatchEvent, WatchOptions,
} from './store.js';
import type { Keyspace, Change } from './keyspace.js';
import { eventKey, eventRev, type History } from './history.js';
import { recover } from './recovery.js';
import { lockDataDir } from './lock.js';
import { SegmentWriter } from './wal.js';
import { EmbeddedLog } from './embedded-log.js';
import { WatchQueue } from './watch-queue.js';
import { checkAfter, checkFromRevision, checkKey, checkLimit, checkPrefix, checkRevision, checkTxn, leaseTtl } from './validate.js';

export interface EmbeddedStoreOptions {
  /** Revisions of change history kept for watch replay. Default 10,000. */
  historyRevisions?: number;
  /** Snapshot the state and start a new log segment once the segment is this big. Default 64 MiB. */
  snapshotBytes?: number;
  /**
   * Open a log damaged before its end by truncating it at the bad frame
   * (what is cut is saved beside the segment) instead of refusing. Default false.
   */
  repairWal?: boolean;
  /** Told what recovery cut off the log. Default: process.emitWarning. */
  onWarning?: (message: string, details: Record<string, unknown>) => void;
}

export class EmbeddedStore implements StateStore {
  readonly kind = 'embedded';
  readonly ordersWrites = true;
  /** No old versions are kept: a range reads the current revision only. */
  readonly snapshotReads = false;
  /** Counters for metrics and tests: log batches written (= fdatasyncs), records, snapshots. */
  readonly stats: EmbeddedLog['stats'];
  private readonly log: EmbeddedLog;
  private closed = false;
  private readonly watchers = new Set<{ prefix: string; from: number; queue: WatchQueue }>();
  private readonly leaseTimers = new Map<string, NodeJS.Timeout>();
  private readonly lostSignals = new Map<string, () => void>();

  private constructor(
    readonly dataDir: string,
    private readonly ks: Keyspace,
    private readonly history: History,
    wal: SegmentWriter,
    seq: number,
    private readonly unlock: () => Promise<void>,
    snapshotBytes: number,
  ) {
    this.log = new EmbeddedLog(dataDir, ks, history, wal, seq, snapshotBytes, {
      dispatch: (events) => this.dispatch(events),
      failed: (err) => {
        for (const w of this.watchers) w.queue.fail(err);
      },
    });
    this.stats = this.log.stats;
  }

  /** Opens (creating if needed) the store in `dataDir`: lock, load snapshot, replay log. */
  static async open(dataDir: string, opts: EmbeddedStoreOptions = {}): Promise<EmbeddedStore> {
    await mkdir(dataDir, { recursive: true });
    const lock = await lockDataDir(dataDir);
    try {
      const { ks, history, seq, gen } = await recover(dataDir, {
        historyRevisions: opts.historyRevisions ?? 10_000,
        repairWal: opts.repairWal,
        warn: opts.onWarning ?? ((message) => process.emitWarning(message, 'MusterStoreWarning')),
      });
      const wal = await SegmentWriter.open(dataDir, gen);
      const store = new EmbeddedStore(dataDir, ks, history, wal, seq, lock.release, opts.snapshotBytes ?? 64 << 20);
      lock.lost.then(
        () => store.log.fail(new Error(`the lock on ${dataDir} was lost (its flock process exited)`)),
        () => undefined, // lost never rejects
      );
      // Leases survive a restart with their full TTL (as in etcd): their
      // holders get that long to come back before the keys go.
      for (const [id, lease] of ks.leases) store.armExpiry(id, lease.ttl);
      return store;
    } catch (e) {
      await lock.release();
      throw e;
    }
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.check();
    checkKey(key);
    const kv = this.ks.get(key);
    await this.log.visible();
    return kv;
  }

  async range(prefix: string, opts: RangeOptions = {}): Promise<RangeResult> {
    this.check();
    checkPrefix(prefix);
    const limit = checkLimit(opts.limit) || Infinity;
    const after = checkAfter(opts.after, prefix);
    const at = checkRevision(opts.revision);
    if (at !== undefined && at !== this.ks.rev) {
      const why = at < this.ks.rev ? 'the embedded store keeps no old versions' : 'it is a future revision';
      throw new MusterError(at < this.ks.rev ? ErrorCode.STORE_COMPACTED : ErrorCode.INVALID_ARGUMENT, `cannot read at revision ${at} (now ${this.ks.rev}): ${why}`, { details: { field: 'revision' } });
    }
    const { kvs, more } = this.ks.page(prefix, limit, after);
    const revision = this.ks.rev;
    await this.log.visible();
    return { kvs, revision, more };
  }

  async revision(): Promise<number> {
    this.check();
    const rev = this.ks.rev;
    await this.log.visible();
    return rev;
  }

  async put(key: string, value: Uint8Array, opts: { lease?: string } = {}): Promise<{ revision: number }> {
    const { revision } = await this.txn({ compare: [], success: [{ type: 'put', key, value, lease: opts.lease }] });
    return { revision };
  }

  async delete(key: string): Promise<{ deleted: number; revision: number }> {
    const r = await this.txn({ compare: [], success: [{ type: 'delete', key }] });
    return { deleted: r.results[0]?.deleted ?? 0, revision: r.revision };
  }

  async deletePrefix(prefix: string): Promise<{ deleted: number; revision: number }> {
    const r = await this.txn({ compare: [], success: [{ type: 'deletePrefix', prefix }] });
    return { deleted: r.results[0]?.deleted ?? 0, revision: r.revision };
  }

  /** All of it runs synchronously up to the log append: txns are serial by construction. */
  async txn(req: TxnRequest): Promise<TxnResult> {
    this.check();
    checkTxn(req);
    const succeeded = req.compare.every((c) => holds(this.ks.get(c.key), c));
    const ops = (succeeded ? req.success : req.failure) ?? [];
    for (const op of ops) {
      if (op.type === 'put' && op.lease !== undefined && !this.ks.leases.has(op.lease)) {
        throw new MusterError(ErrorCode.NOT_FOUND, `lease ${op.lease} not found (expired or revoked)`);
      }
    }
    const rev = this.ks.rev + 1;
    const changes: Change[] = [];
    const events: WatchEvent[] = [];
    const results = ops.map((op) => this.applyOp(op, rev, changes, events));
    if (changes.length === 0) {
      const revision = this.ks.rev;
      await this.log.visible();
      return { succeeded, revision, results };
    }
    this.ks.rev = rev;
    await this.log.append({ s: 0, r: rev, ch: changes }, events);
    return { succeeded, revision: rev, results };
  }

  private applyOp(op: Op, rev: number, changes: Change[], events: WatchEvent[]): OpResult {
    const del = (key: string) => {
      const e = this.ks.delete(key, rev);
      if (!e) return 0;
      changes.push([key, null, null]);
      events.push(e);
      return 1;
    };
    switch (op.type) {
      case 'get':
        return { kv: this.ks.get(op.key) };
      case 'put': {
        const value = new Uint8Array(op.value); // the caller may reuse its buffer
        events.push(this.ks.put(op.key, value, op.lease ?? null, rev));
        changes.push([op.key, value, op.lease ?? null]);
        return {};
      }
      case 'delete':
        return { deleted: del(op.key) };
      case 'deletePrefix':
        return { deleted: this.ks.range(op.prefix).reduce((n, kv) => n + del(kv.key), 0) };
    }
  }

  async watch(prefix: string, opts: WatchOptions = {}): Promise<Watch> {
    this.check();
    checkPrefix(prefix);
    checkFromRevision(opts.fromRevision);
    // Replay and registration happen in one synchronous step, and live events
    // are dispatched only at durability points, so no event is missed or
    // delivered twice between history and live.
    const replay = opts.fromRevision === undefined ? [] : this.history.since(opts.fromRevision, this.log.durableRev, prefix);
    // `from` matters when it is ahead of the store: etcd waits for that revision.
    const entry = { prefix, from: opts.fromRevision ?? 0, queue: new WatchQueue(() => void this.watchers.delete(entry)) };
    this.watchers.add(entry);
    entry.queue.push(replay);
    return entry.queue;
  }

  /** Drops watch history below `revision`, as etcd's compact(revision) does. */
  async compact(revision: number): Promise<void> {
    this.check();
    this.history.compact(Math.min(revision, this.log.durableRev + 1) - 1);
  }

  async grantLease(ttlSeconds: number, opts: LeaseOptions = {}): Promise<Lease> {
    this.check();
    const ttl = leaseTtl(ttlSeconds);
    const id = String(this.ks.nextLeaseId++);
    this.ks.leases.set(id, { ttl, keys: new Set() });
    const lost = new Promise<void>((resolve) => this.lostSignals.set(id, resolve));
    // Kept alive in-process: it simply does not expire while the store is open.
    if (opts.keepAlive === false) this.armExpiry(id, ttl);
    await this.log.append({ s: 0, r: this.ks.rev, lg: [id, ttl] }, []);
    return {
      id,
      ttlSeconds: ttl,
      lost,
      keepAliveOnce: async () => {
        this.check();
        if (!this.ks.leases.has(id)) throw new MusterError(ErrorCode.NOT_FOUND, `lease ${id} has expired or was revoked`);
        if (this.leaseTimers.has(id)) this.armExpiry(id, ttl);
      },
      revoke: () => this.revokeLease(id),
    };
  }

  /** Deletes the lease and its keys (one revision), then signals `lost`. */
  private async revokeLease(id: string): Promise<void> {
    this.check();
    const lease = this.ks.leases.get(id);
    if (!lease) return; // already expired or revoked: nothing left to do
    clearTimeout(this.leaseTimers.get(id));
    this.leaseTimers.delete(id);
    const rev = this.ks.rev + 1;
    const changes: Change[] = [];
    const events: WatchEvent[] = [];
    for (const key of [...lease.keys].sort()) {
      const e = this.ks.delete(key, rev);
      if (!e) continue;
      changes.push([key, null, null]);
      events.push(e);
    }
    this.ks.leases.delete(id);
    if (changes.length > 0) this.ks.rev = rev;
    await this.log.append({ s: 0, r: this.ks.rev, ch: changes, lr: id }, events);
    this.lostSignals.get(id)?.();
    this.lostSignals.delete(id);
  }

  private armExpiry(id: string, ttl: number): void {
    clearTimeout(this.leaseTimers.get(id));
    const timer = setTimeout(() => void this.revokeLease(id).catch(() => undefined), ttl * 1000);
    timer.unref();
    this.leaseTimers.set(id, timer);
  }

  private dispatch(events: WatchEvent[]): void {
    if (events.length === 0) return;
    for (const w of this.watchers) {
      w.queue.push(events.filter((e) => eventKey(e).startsWith(w.prefix) && eventRev(e) >= w.from)); // each its own array
    }
  }

  private check(): void {
    if (this.closed) throw new MusterError(ErrorCode.FAILED_PRECONDITION, `embedded store ${this.dataDir} is closed`);
    if (this.log.broken) throw this.log.broken;
  }

  /** Flushes pending writes, stops lease timers and watches, releases the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.leaseTimers.values()) clearTimeout(t);
    this.leaseTimers.clear();
    await this.log.close();
    for (const w of [...this.watchers]) await w.queue.close();
    await this.unlock();
  }
}

function holds(kv: KeyValue | undefined, c: Compare): boolean {
  let r: number;
  if (c.target === 'value') {
    if (!kv) return c.op === '!='; // a missing value equals, and orders against, nothing
    r = Buffer.compare(kv.value, c.value as Uint8Array);
  } else {
    r = Math.sign((kv ? kv[c.target] : 0) - (c.value as number));
  }
  return c.op === '==' ? r === 0 : c.op === '!=' ? r !== 0 : c.op === '<' ? r < 0 : r > 0;
}


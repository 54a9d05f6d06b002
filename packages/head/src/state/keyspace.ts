/**
 * The embedded store's state machine, with no I/O: keys, revisions, leases.
 *
 * The same code applies a write when it happens and when the log is replayed
 * at recovery, so the two cannot drift apart. A write is logged as its
 * *effects* (`Change`s: the keys put and deleted, at one revision), not as the
 * txn that produced them: replay never re-evaluates compares.
 */
import { ErrorCode, MusterError } from '@muster/common';
import type { KeyValue, WatchEvent } from './store.js';
import { SortedKeys, compareKeys } from './sorted-keys.js';

/** One effect of a write: [key, value (null = delete), lease (null = none)]. */
export type Change = [key: string, value: Uint8Array | null, lease: string | null];

/** One log record. `s`: its sequence number; `r`: the store revision after it. */
export interface WalRecord {
  s: number;
  r: number;
  /** Keys put/deleted at revision `r`. */
  ch?: Change[];
  /** Lease granted: [id, ttl seconds]. */
  lg?: [string, number];
  /** Lease revoked or expired (its keys are deleted by `ch` of the same record). */
  lr?: string;
  /**
   * Sequence number of the first record of the batch (one write + fdatasync)
   * this record was written in; recovery uses it to tell a torn last batch
   * from corruption. Absent in logs written before it existed.
   */
  b?: number;
}

interface SnapshotState {
  v: 1;
  /** Last record sequence number the snapshot includes. */
  s: number;
  r: number;
  /** First log segment generation that may hold records after `s`. */
  g: number;
  nl: number;
  kv: [string, Uint8Array, number, number, number, string | null][];
  ls: [string, number][];
}

export interface LeaseEntry {
  ttl: number;
  keys: Set<string>;
}

export class Keyspace {
  rev = 0;
  nextLeaseId = 1;
  readonly leases = new Map<string, LeaseEntry>();
  private readonly kvs = new Map<string, KeyValue>();
  private readonly order = new SortedKeys();

  get size(): number {
    return this.kvs.size;
  }

  get(key: string): KeyValue | undefined {
    return this.kvs.get(key);
  }

  /** Keys starting with `prefix`, in order, at most `limit` of them. */
  range(prefix: string, limit = Infinity, after?: string): KeyValue[] {
    const out: KeyValue[] = [];
    if (limit <= 0) return out;
    const from = after !== undefined && compareKeys(after, prefix) > 0 ? after : prefix;
    for (const key of this.order.from(from)) {
      if (!key.startsWith(prefix)) break;
      if (after !== undefined && compareKeys(key, after) <= 0) continue;
      out.push(this.kvs.get(key)!);
      if (out.length >= limit) break;
    }
    return out;
  }

  /**
   * One page of the keys starting with `prefix`, in order: at most `limit`,
   * only keys after `after` when given; `more` when keys were left out.
   */
  page(prefix: string, limit: number, after?: string): { kvs: KeyValue[]; more: boolean } {
    const kvs: KeyValue[] = [];
    for (const key of this.order.from(after ?? prefix)) {
      if (!key.startsWith(prefix)) break;
      if (key === after) continue;
      if (kvs.length >= limit) return { kvs, more: true };
      kvs.push(this.kvs.get(key)!);
    }
    return { kvs, more: false };
  }

  /** Puts at revision `rev` (the caller bumps `this.rev` once per write). */
  put(key: string, value: Uint8Array, lease: string | null, rev: number): WatchEvent {
    const prev = this.kvs.get(key);
    if (lease !== null && !this.leases.has(lease)) {
      throw new MusterError(ErrorCode.NOT_FOUND, `lease ${lease} not found (expired or revoked)`);
    }
    const kv: KeyValue = {
      key,
      value,
      createRevision: prev ? prev.createRevision : rev,
      modRevision: rev,
      version: prev ? prev.version + 1 : 1,
      lease: lease ?? undefined,
    };
    if (prev?.lease !== undefined && prev.lease !== kv.lease) this.leases.get(prev.lease)?.keys.delete(key);
    if (lease !== null) this.leases.get(lease)!.keys.add(key);
    if (!prev) this.order.insert(key);
    this.kvs.set(key, kv);
    return { type: 'put', kv, prevKv: prev };
  }

  delete(key: string, rev: number): WatchEvent | undefined {
    const prev = this.kvs.get(key);
    if (!prev) return undefined;
    if (prev.lease !== undefined) this.leases.get(prev.lease)?.keys.delete(key);
    this.kvs.delete(key);
    this.order.delete(key);
    return { type: 'delete', key, modRevision: rev, prevKv: prev };
  }

  /** Applies a logged record (recovery). Returns the events it produced. */
  replay(rec: WalRecord): WatchEvent[] {
    const events: WatchEvent[] = [];
    if (rec.lg) this.leases.set(rec.lg[0], { ttl: rec.lg[1], keys: new Set() });
    if (rec.lg && Number(rec.lg[0]) >= this.nextLeaseId) this.nextLeaseId = Number(rec.lg[0]) + 1;
    if (rec.ch && rec.ch.length > 0) {
      if (rec.r !== this.rev + 1) throw new Error(`log record ${rec.s} has revision ${rec.r}, expected ${this.rev + 1}`);
      for (const [key, value, lease] of rec.ch) {
        // Values decode as views into the whole file buffer: copy, so that
        // buffer can be freed.
        const e = value === null ? this.delete(key, rec.r) : this.put(key, new Uint8Array(value), lease, rec.r);
        if (e) events.push(e);
      }
      this.rev = rec.r;
    }
    if (rec.lr !== undefined) this.leases.delete(rec.lr);
    return events;
  }

  /** Encodes the whole state (O(n); done now and then, not per write). */
  snapshot(seq: number, firstGen: number): SnapshotState {
    const kv: SnapshotState['kv'] = [];
    for (const key of this.order.from('')) {
      const e = this.kvs.get(key)!;
      kv.push([key, e.value, e.createRevision, e.modRevision, e.version, e.lease ?? null]);
    }
    const ls: SnapshotState['ls'] = [...this.leases].map(([id, l]) => [id, l.ttl]);
    return { v: 1, s: seq, r: this.rev, g: firstGen, nl: this.nextLeaseId, kv, ls };
  }

  static restore(snap: SnapshotState): Keyspace {
    if (snap.v !== 1) throw new Error(`unknown snapshot version ${String(snap.v)}`);
    const ks = new Keyspace();
    ks.rev = snap.r;
    ks.nextLeaseId = snap.nl;
    for (const [id, ttl] of snap.ls) ks.leases.set(id, { ttl, keys: new Set() });
    for (const [key, value, createRevision, modRevision, version, lease] of snap.kv) {
      const kv: KeyValue = { key, value: new Uint8Array(value), createRevision, modRevision, version, lease: lease ?? undefined };
      ks.kvs.set(key, kv);
      ks.order.insert(key);
      if (lease !== null) ks.leases.get(lease)?.keys.add(key);
    }
    return ks;
  }
}

export type { SnapshotState };

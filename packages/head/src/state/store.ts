/**
 * The head's state store: a small, etcd-shaped key-value API.
 *
 * Two implementations pass one contract suite (contract.ts):
 *  - `EtcdStore` (etcd.ts): production, through the etcd3 client;
 *  - `EmbeddedStore` (embedded.ts): the zero-setup default, in memory with a
 *    write-ahead log in a local data directory, so a head restart keeps state.
 *
 * Model (same as etcd v3): one global `revision` counter that every change
 * increments; each key remembers the revision that created it
 * (`createRevision`), last changed it (`modRevision`) and how many times it was
 * put since creation (`version`). Keys and values are bytes; keys are used as
 * UTF-8 strings by the head ("/muster/nodes/<id>").
 *
 * Compare-and-swap goes through `txn`: all compares hold → the `success` ops
 * run atomically, else the `failure` ops. Leader fencing (a stale head cannot
 * commit) is a compare on the leader key in every write txn.
 */

export interface KeyValue {
  key: string;
  value: Uint8Array;
  createRevision: number;
  modRevision: number;
  version: number;
  /** Lease the key is attached to, or undefined. */
  lease?: string | undefined;
}

export type CompareTarget = 'value' | 'version' | 'createRevision' | 'modRevision';
export type CompareOp = '==' | '!=' | '<' | '>';

/**
 * One condition of a transaction. For a missing key, `version`,
 * `createRevision` and `modRevision` are 0 and `value` compares as absent
 * (only `!=` holds).
 */
export interface Compare {
  key: string;
  target: CompareTarget;
  op: CompareOp;
  value: number | Uint8Array;
}

export type Op =
  | { type: 'put'; key: string; value: Uint8Array; lease?: string | undefined }
  | { type: 'delete'; key: string }
  | { type: 'deletePrefix'; prefix: string }
  | { type: 'get'; key: string };

export interface OpResult {
  /** For 'get': the key value, if any. */
  kv?: KeyValue | undefined;
  /** For deletes: how many keys were removed. */
  deleted?: number | undefined;
}

export interface TxnRequest {
  compare: Compare[];
  success: Op[];
  failure?: Op[];
}

export interface TxnResult {
  succeeded: boolean;
  /** Store revision after the txn (unchanged if only reads ran). */
  revision: number;
  /** One per op of the branch that ran, in order. */
  results: OpResult[];
}

export interface RangeOptions {
  limit?: number;
  /** Start after this full key (exclusive); keys at or before it are skipped. */
  after?: string;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** The store revision the range was read at. */
  revision: number;
  /** True when `limit` cut the range short: more keys follow the last one. */
  more: boolean;
}

/**
 * One page of a range. Pages are walked by key: the next page starts `after`
 * the last key of this one (rangeAll in paged.ts does it).
 */
export interface RangeOptions {
  /** At most this many keys; undefined or 0 = all. */
  limit?: number;
  /** Only keys after this one (exclusive); it must start with the prefix. */
  after?: string;
  /**
   * Read as of this past revision (etcd's MVCC read), so the pages of one
   * walk are one snapshot. Only where `snapshotReads`; the embedded store
   * takes only its current revision and refuses an older one with
   * MUSTER_STORE_COMPACTED.
   */
  revision?: number;
}

export type WatchEvent =
  | { type: 'put'; kv: KeyValue; prevKv?: KeyValue | undefined }
  | { type: 'delete'; key: string; modRevision: number; prevKv?: KeyValue | undefined };

export interface WatchOptions {
  /**
   * Deliver changes with revision >= this one (history replay), then live
   * ones. Undefined: only changes after the watch is created. A revision that
   * has been compacted away makes the watch fail with MUSTER_STORE_COMPACTED.
   */
  fromRevision?: number;
}

/**
 * A running watch. Iterate it to get batches of events in revision order;
 * `close()` ends the iteration. A broken watch throws from the iterator.
 */
export interface Watch extends AsyncIterable<WatchEvent[]> {
  close(): Promise<void>;
}

export interface LeaseOptions {
  /** Renew the lease automatically until revoke()/close(). Default true. */
  keepAlive?: boolean;
}

export interface Lease {
  readonly id: string;
  readonly ttlSeconds: number;
  /** Renew once (for leases created with keepAlive: false). */
  keepAliveOnce(): Promise<void>;
  /** Revoke: every key attached to the lease is deleted. */
  revoke(): Promise<void>;
  /** Resolves when the lease is known to be lost (expired or revoked). */
  readonly lost: Promise<void>;
}

export interface StateStore {
  /** "embedded" or "etcd". */
  readonly kind: string;
  /**
   * True when writes become visible and durable in the order they were
   * issued, even while earlier ones are still in flight (the embedded store:
   * one log, appended in call order). Callers may then pipeline dependent
   * writes without awaiting each; etcd gives no such promise for concurrent
   * requests, so its writers wait for each before issuing the next.
   */
  readonly ordersWrites: boolean;
  /**
   * True when `range` can read at a past revision (RangeOptions.revision):
   * etcd keeps old versions until compaction; the embedded store keeps none.
   */
  readonly snapshotReads: boolean;
  get(key: string): Promise<KeyValue | undefined>;
  /**
   * Keys starting with `prefix`, in key order: all of them, or one page
   * (`limit`, `after`). Loads read in pages (rangeAll), so no request or
   * reply grows with the keyspace.
   */
  range(prefix: string, opts?: RangeOptions): Promise<RangeResult>;
  put(key: string, value: Uint8Array, opts?: { lease?: string }): Promise<{ revision: number }>;
  delete(key: string): Promise<{ deleted: number; revision: number }>;
  deletePrefix(prefix: string): Promise<{ deleted: number; revision: number }>;
  txn(req: TxnRequest): Promise<TxnResult>;
  watch(prefix: string, opts?: WatchOptions): Promise<Watch>;
  grantLease(ttlSeconds: number, opts?: LeaseOptions): Promise<Lease>;
  /** Current revision of the store. */
  revision(): Promise<number>;
  close(): Promise<void>;
}

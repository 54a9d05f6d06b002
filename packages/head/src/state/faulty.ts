/**
 * A store that fails writes on command: the fault-injecting decorator every
 * controller's "a failed write changes nothing" test runs on. Reads, watches
 * and leases pass through; a write (put, delete, deletePrefix, or a txn with
 * any write op) fails with MUSTER_UNAVAILABLE while a fault is armed, and
 * reaches the inner store untouched otherwise. The fault is armed for the
 * next `n` writes, or until `heal()`, may let a few writes through first (a
 * split commit's later part), and may be limited to writes that touch a key
 * prefix, so a test can fail one controller's records and no one else's.
 */
import { ErrorCode, MusterError } from '@muster/common';
import type { LeaseOptions, Op, RangeOptions, StateStore, TxnRequest } from './store.js';

export interface Fault {
  /** Fail only writes touching a key under this prefix (default: every write). */
  prefix?: string;
  /** Fail this many matching writes, then heal (default: until `heal()`). */
  times?: number;
  /** Let this many matching writes through first (default 0): the later part of a split commit. */
  after?: number;
}

export class FaultyStore implements StateStore {
  private fault: Required<Fault> | undefined;
  /** Writes refused so far (a test's proof that the fault was hit). */
  failed = 0;

  constructor(readonly inner: StateStore) {}

  get kind(): string {
    return this.inner.kind;
  }

  get ordersWrites(): boolean {
    return this.inner.ordersWrites;
  }

  get snapshotReads(): boolean {
    return this.inner.snapshotReads;
  }

  /** Arms a fault: the matching writes that follow fail. */
  failWrites(fault: Fault = {}): void {
    this.fault = { prefix: fault.prefix ?? '', times: fault.times ?? Infinity, after: fault.after ?? 0 };
  }

  heal(): void {
    this.fault = undefined;
  }

  get = (key: string) => this.inner.get(key);
  range = (prefix: string, opts?: RangeOptions) => this.inner.range(prefix, opts);
  watch = (prefix: string, opts?: Parameters<StateStore['watch']>[1]) => this.inner.watch(prefix, opts);
  grantLease = (ttlSeconds: number, opts?: LeaseOptions) => this.inner.grantLease(ttlSeconds, opts);
  revision = () => this.inner.revision();
  close = () => this.inner.close();

  async put(key: string, value: Uint8Array, opts?: { lease?: string }) {
    this.check([key]);
    return this.inner.put(key, value, opts);
  }

  async delete(key: string) {
    this.check([key]);
    return this.inner.delete(key);
  }

  async deletePrefix(prefix: string) {
    this.check([prefix]);
    return this.inner.deletePrefix(prefix);
  }

  async txn(req: TxnRequest) {
    this.check([...req.success, ...(req.failure ?? [])].flatMap(writtenKey));
    return this.inner.txn(req);
  }

  private check(keys: string[]): void {
    const f = this.fault;
    if (!f || !keys.some((k) => k.startsWith(f.prefix))) return;
    if (f.after > 0) {
      f.after--;
      return;
    }
    if (--f.times <= 0) this.fault = undefined;
    this.failed++;
    throw new MusterError(ErrorCode.UNAVAILABLE, `injected store fault: write to ${keys.find((k) => k.startsWith(f.prefix))} refused`);
  }
}

function writtenKey(op: Op): string[] {
  switch (op.type) {
    case 'put':
    case 'delete':
      return [op.key];
    case 'deletePrefix':
      return [op.prefix];
    case 'get':
      return [];
  }
}

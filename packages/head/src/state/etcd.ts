/**
 * EtcdStore: the production StateStore, a thin mapping onto etcd v3 through
 * the `etcd3` client. etcd already has this model (revisions, txn, watch,
 * leases); what this file adds is the key prefix, error codes, deadlines, and
 * the one semantic etcd lacks (a value `!=` compare that holds for a missing
 * key, see `txn`).
 *
 * Leases kept alive are renewed from a worker thread too (etcd-lease-keeper.ts:
 * a stalled event loop must not cost the leader its 2 s lease).
 *
 * Calls are never retried here: etcd3's default retry would re-send a txn
 * whose first attempt may have committed (a CAS then reports a false
 * conflict, a plain txn applies twice). Failures surface as
 * MUSTER_UNAVAILABLE, which is retryable, and the caller decides.
 */
import {
  Etcd3, EtcdLeaseInvalidError, GRPCCancelledError, GRPCDeadlineExceededError, GRPCInvalidArgumentError,
  GRPCOutOfRangeError, GRPCUnavailableError, ClientClosedError, Range,
  type ICompare, type IEvent, type IKeyValue, type IOptions, type IRequestOp, type IResponseOp, type ITxnRequest,
  type Lease as EtcdLease,
} from 'etcd3';
import { etcdChannelOptions } from '@muster/contracts';
import { ErrorCode, MusterError, isMusterError } from '@muster/common';
import type {
  Compare, KeyValue, Lease, LeaseOptions, Op, OpResult, RangeOptions, RangeResult, StateStore, TxnRequest, TxnResult, Watch,
  WatchEvent, WatchOptions,
} from './store.js';
import { WatchQueue } from './watch-queue.js';
import { checkAfter, checkFromRevision, checkKey, checkLimit, checkPrefix, checkRevision, checkTxn, checkValue, invalid, leaseTtl } from './validate.js';
import { watchEtcd } from './etcd-watch.js';
import { LeaseKeeper } from './etcd-lease-keeper.js';

export interface EtcdStoreOptions {
  endpoints: string[];
  /** TLS: etcd's CA, and a client certificate and key for etcd's --client-cert-auth (PEM). */
  credentials?: { rootCertificate: Buffer; certChain?: Buffer; privateKey?: Buffer } | undefined;
  /** Prepended to every key, so several stores (tests, clusters) can share one etcd. */
  prefix?: string;
  /** Deadline of each call in ms. Default 5,000. */
  callTimeoutMs?: number;
  /** Time allowed to connect in ms. Default 5,000. */
  dialTimeoutMs?: number;
  /** Renew kept-alive leases from a worker thread too (etcd-lease-keeper.ts). Default true. */
  leaseKeeper?: boolean;
  /** Something the head should log (the lease keeper failed). */
  onWarning?: (msg: string, details: Record<string, unknown>) => void;
}

type GlobalPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;
/** A cockatiel policy that runs the call once (see the file comment). */
const once = {
  execute: (fn: (ctx: { signal: AbortSignal }) => unknown, signal?: AbortSignal) =>
    Promise.resolve().then(() => fn({ signal: signal ?? new AbortController().signal })),
} as unknown as GlobalPolicy;

const targets = { value: 'Value', version: 'Version', createRevision: 'Create', modRevision: 'Mod' } as const;
const results = { '==': 'Equal', '!=': 'NotEqual', '<': 'Less', '>': 'Greater' } as const;
const bytes = (v: Uint8Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

export class EtcdStore implements StateStore {
  readonly kind = 'etcd';
  readonly ordersWrites = false;
  /** etcd's MVCC: a range can read any revision not yet compacted. */
  readonly snapshotReads = true;
  private readonly prefix: string;
  private readonly prefixBytes: number;
  private readonly callTimeoutMs: number;
  private readonly watches = new Set<WatchQueue>();
  private readonly leases = new Map<string, { lease: EtcdLease; stop(): void }>();
  private closed = false;
  /** Renews kept-alive leases from a worker thread as well, so a stalled event loop does not lose them. */
  private keeper: LeaseKeeper | undefined;

  private constructor(
    private readonly client: Etcd3,
    private readonly endpoints: string[],
    private readonly opts: EtcdStoreOptions,
  ) {
    this.prefix = opts.prefix ?? '';
    this.prefixBytes = Buffer.byteLength(this.prefix);
    this.callTimeoutMs = opts.callTimeoutMs ?? 5000;
  }

  /** The worker-thread lease keeper, started with the first kept-alive lease. */
  private leaseKeeper(): LeaseKeeper | undefined {
    if (this.opts.leaseKeeper === false) return undefined;
    this.keeper ??= new LeaseKeeper({
      endpoints: this.endpoints,
      credentials: this.opts.credentials,
      onError: (e) => this.opts.onWarning?.('the etcd lease keeper thread failed; leases are renewed from the main thread only', { err: e.message }),
      onRenewalError: (e) => this.opts.onWarning?.('the etcd lease keeper thread could not renew a lease; it keeps trying, beside the main thread (logged once)', { err: e.message }),
    });
    return this.keeper;
  }

  /** Connects and checks that etcd answers; MUSTER_UNAVAILABLE naming the endpoints if not. */
  static async connect(opts: EtcdStoreOptions): Promise<EtcdStore> {
    if (!Array.isArray(opts.endpoints) || opts.endpoints.length === 0) {
      throw invalid('etcd endpoints must be a non-empty list of URLs', 'endpoints');
    }
    const timeout = opts.callTimeoutMs ?? 5000;
    const client = new Etcd3({
      hosts: opts.endpoints,
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
      dialTimeout: opts.dialTimeoutMs ?? 5000,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
      faultHandling: { global: once },
      grpcOptions: etcdChannelOptions(),
    });
    const store = new EtcdStore(client, opts.endpoints, opts);
    try {
      await store.revision();
    } catch (e) {
      client.close();
      throw e;
    }
    return store;
  }

  /** Runs one etcd call with a deadline and our error codes. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new MusterError(ErrorCode.FAILED_PRECONDITION, 'etcd store is closed');
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      // Backstop for streams (keepalive, watch create), which have no gRPC deadline.
      timer = setTimeout(() => reject(new GRPCDeadlineExceededError(`no answer in ${this.callTimeoutMs} ms`)), this.callTimeoutMs + 1000);
    });
    try {
      return await Promise.race([fn(), deadline]);
    } catch (e) {
      throw this.error(e, what);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Maps anything etcd3 throws to a MusterError. */
  private error(e: unknown, what: string): MusterError {
    if (isMusterError(e)) return e;
    const msg = e instanceof Error ? e.message : String(e);
    const opts = { cause: e, details: { endpoints: this.endpoints } };
    // cockatiel's BrokenCircuitError: etcd3 stops calling a host for 5 s after 3 failures in a row.
    const brokenCircuit = (e as { isBrokenCircuitError?: boolean } | undefined)?.isBrokenCircuitError === true;
    if (/compacted/.test(msg)) return new MusterError(ErrorCode.STORE_COMPACTED, `etcd ${what}: ${msg}`, opts);
    // A reply over the channel's message limit (MAX_MESSAGE_BYTES): rangeAll asks for fewer keys.
    if (/larger than max/.test(msg)) return new MusterError(ErrorCode.RESOURCE_EXHAUSTED, `etcd ${what}: ${msg}`, opts);
    if (e instanceof EtcdLeaseInvalidError) {
      return new MusterError(ErrorCode.NOT_FOUND, `etcd ${what}: lease not found (expired or revoked)`, opts);
    }
    if (e instanceof GRPCInvalidArgumentError || e instanceof GRPCOutOfRangeError) return new MusterError(ErrorCode.INVALID_ARGUMENT, `etcd ${what}: ${msg}`, opts);
    if (
      e instanceof GRPCUnavailableError || e instanceof GRPCDeadlineExceededError || e instanceof GRPCCancelledError ||
      e instanceof ClientClosedError || brokenCircuit || /ECONNREFUSED|No connection established/.test(msg)
    ) {
      return new MusterError(ErrorCode.UNAVAILABLE, `etcd at ${this.endpoints.join(', ')} is unavailable (${what}): ${msg}`, opts);
    }
    return new MusterError(ErrorCode.INTERNAL, `etcd ${what} failed: ${msg}`, opts);
  }

  private key(k: string): Buffer {
    return Buffer.from(this.prefix + k);
  }

  /** The etcd key range of everything under `prefix`. */
  private span(prefix: string): Range {
    return Range.prefix(Buffer.from(this.prefix + prefix));
  }

  private kv(k: IKeyValue): KeyValue {
    return {
      key: k.key.subarray(this.prefixBytes).toString('utf8'),
      value: k.value,
      createRevision: Number(k.create_revision),
      modRevision: Number(k.mod_revision),
      version: Number(k.version),
      lease: k.lease && k.lease !== '0' ? k.lease : undefined,
    };
  }

  private event(ev: IEvent): WatchEvent {
    const prevKv = ev.prev_kv ? this.kv(ev.prev_kv) : undefined;
    if (ev.type === 'Put') return { type: 'put', kv: this.kv(ev.kv), prevKv };
    return { type: 'delete', key: this.kv(ev.kv).key, modRevision: Number(ev.kv.mod_revision), prevKv };
  }

  async get(key: string): Promise<KeyValue | undefined> {
    checkKey(key);
    const res = await this.call('get', () => this.client.kv.range({ key: this.key(key) }));
    const kv = res.kvs[0];
    return kv ? this.kv(kv) : undefined;
  }

  async range(prefix: string, opts: RangeOptions = {}): Promise<RangeResult> {
    checkPrefix(prefix);
    const limit = checkLimit(opts.limit);
    const after = checkAfter(opts.after, prefix);
    const revision = checkRevision(opts.revision);
    const r = this.span(prefix);
    // The smallest key after `after` is `after` + NUL.
    const start = after === undefined ? r.start : Buffer.concat([this.key(after), Buffer.from([0])]);
    const res = await this.call('range', () => this.client.kv.range({ key: start, range_end: r.end, limit, ...(revision === undefined ? {} : { revision }) }));
    const kvs = res.kvs.map((kv) => this.kv(kv));
    // etcd answers with the current header revision; a pinned read reflects the one asked for.
    return { kvs, revision: revision ?? Number(res.header.revision), more: Boolean(res.more) };
  }

  async revision(): Promise<number> {
    const res = await this.call('revision', () => this.client.kv.range({ key: this.key('\0'), count_only: true }));
    return Number(res.header.revision);
  }

  async put(key: string, value: Uint8Array, opts: { lease?: string } = {}): Promise<{ revision: number }> {
    checkKey(key);
    checkValue(value);
    const res = await this.call('put', () => this.client.kv.put({ key: this.key(key), value: bytes(value), lease: opts.lease }));
    return { revision: Number(res.header.revision) };
  }

  async delete(key: string): Promise<{ deleted: number; revision: number }> {
    checkKey(key);
    const res = await this.call('delete', () => this.client.kv.deleteRange({ key: this.key(key) }));
    return { deleted: Number(res.deleted), revision: Number(res.header.revision) };
  }

  async deletePrefix(prefix: string): Promise<{ deleted: number; revision: number }> {
    checkPrefix(prefix);
    const r = this.span(prefix);
    const res = await this.call('deletePrefix', () => this.client.kv.deleteRange({ key: r.start, range_end: r.end }));
    return { deleted: Number(res.deleted), revision: Number(res.header.revision) };
  }

  private op(op: Op): IRequestOp {
    switch (op.type) {
      case 'get':
        return { request_range: { key: this.key(op.key) } };
      case 'put':
        return { request_put: { key: this.key(op.key), value: bytes(op.value), lease: op.lease } };
      case 'delete':
        return { request_delete_range: { key: this.key(op.key) } };
      case 'deletePrefix': {
        const r = this.span(op.prefix);
        return { request_delete_range: { key: r.start, range_end: r.end } };
      }
    }
  }

  private compare(c: Compare): ICompare {
    const base = { key: this.key(c.key), target: targets[c.target], result: results[c.op] };
    if (c.target === 'value') return { ...base, value: bytes(c.value as Uint8Array) };
    const n = c.value as number;
    return c.target === 'version' ? { ...base, version: n } : c.target === 'createRevision' ? { ...base, create_revision: n } : { ...base, mod_revision: n };
  }

  /**
   * etcd fails every value compare on a missing key, `!=` included; our
   * contract says a missing value is `!=` anything. So each value-`!=`
   * compare becomes a guard level around the rest of the txn:
   *
   *   if (version(k) > 0 && value(k) == v) then <failure ops> else <next level>
   *
   * (the compare is false exactly when the key exists with value v). The
   * innermost level holds the other compares and both branches; it is one
   * atomic etcd txn, nested, with each branch written once per level.
   */
  async txn(req: TxnRequest): Promise<TxnResult> {
    checkTxn(req);
    const isGuard = (c: Compare) => c.target === 'value' && c.op === '!=';
    const failure = (req.failure ?? []).map((op) => this.op(op));
    let request: ITxnRequest = {
      compare: req.compare.filter((c) => !isGuard(c)).map((c) => this.compare(c)),
      success: req.success.map((op) => this.op(op)),
      failure,
    };
    const guards = req.compare.filter(isGuard);
    for (const g of [...guards].reverse()) {
      const key = this.key(g.key);
      request = {
        compare: [
          { key, target: 'Version', result: 'Greater', version: 0 },
          { key, target: 'Value', result: 'Equal', value: bytes(g.value as Uint8Array) },
        ],
        success: failure,
        failure: [{ request_txn: request }],
      };
    }
    const res = await this.call('txn', () => this.client.kv.txn(request));
    let level: { succeeded: boolean; responses: IResponseOp[] } = res;
    for (let i = 0; i < guards.length; i++) {
      if (level.succeeded) return { succeeded: false, revision: Number(res.header.revision), results: this.results(level.responses) };
      level = level.responses[0]!.response_txn;
    }
    return { succeeded: level.succeeded, revision: Number(res.header.revision), results: this.results(level.responses) };
  }

  private results(responses: IResponseOp[]): OpResult[] {
    return responses.map((r) => {
      if (r.response_range) {
        const kv = r.response_range.kvs[0];
        return { kv: kv ? this.kv(kv) : undefined };
      }
      if (r.response_delete_range) return { deleted: Number(r.response_delete_range.deleted) };
      return {};
    });
  }

  async watch(prefix: string, opts: WatchOptions = {}): Promise<Watch> {
    checkPrefix(prefix);
    checkFromRevision(opts.fromRevision);
    if (this.closed) throw new MusterError(ErrorCode.FAILED_PRECONDITION, 'etcd store is closed');
    const queue = await watchEtcd({
      client: this.client,
      range: this.span(prefix),
      fromRevision: opts.fromRevision,
      timeoutMs: this.callTimeoutMs,
      toEvent: (ev) => this.event(ev),
      toError: (e, what) => this.error(e, what),
      onClose: (q) => this.watches.delete(q),
    });
    this.watches.add(queue);
    return queue;
  }

  /** etcd's database file and the part of it in use (what compaction frees; only a defrag shrinks the file). */
  async dbSize(): Promise<{ fileBytes: number; inUseBytes: number }> {
    const s = await this.call('status', () => this.client.maintenance.status());
    return { fileBytes: Number(s.dbSize), inUseBytes: Number(s.dbSizeInUse) };
  }

  /** Compacts etcd's history below `revision` (watches from older revisions fail). */
  async compact(revision: number): Promise<void> {
    await this.call('compact', () => this.client.kv.compact({ revision, physical: true }));
  }

  async grantLease(ttlSeconds: number, opts: LeaseOptions = {}): Promise<Lease> {
    const ttl = leaseTtl(ttlSeconds);
    const keepAlive = opts.keepAlive !== false;
    const lease = this.client.lease(ttl, { autoKeepAlive: keepAlive });
    let signal!: () => void;
    const lost = new Promise<void>((resolve) => (signal = resolve));
    let timer: NodeJS.Timeout | undefined;
    let id = '';
    const finish = () => {
      clearTimeout(timer);
      this.leases.delete(id);
      if (keepAlive && id) this.keeper?.drop(id);
      signal();
    };
    lease.on('lost', () => finish()); // also fires when the grant itself fails
    id = await this.call('grantLease', () => lease.grant());
    // etcd3 only learns of an expiry through its keepalive stream; without
    // one, ask etcd when the TTL should have run out.
    const watchdog = (ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        this.client.leaseClient.leaseTimeToLive({ ID: id }).then(
          // TTL -1: gone. 0: under a second left (etcd rounds down), look again soon.
          (r) => (Number(r.TTL) < 0 ? finish() : watchdog(Math.max(Number(r.TTL) * 1000, 250))),
          () => watchdog(1000),
        );
      }, ms);
      timer.unref();
    };
    if (!keepAlive) watchdog(ttl * 1000 + 100);
    else this.leaseKeeper()?.keep(id, ttl);
    this.leases.set(id, { lease, stop: () => clearTimeout(timer) });
    return {
      id,
      ttlSeconds: ttl,
      lost,
      keepAliveOnce: async () => {
        await this.call('keepAliveOnce', () => lease.keepaliveOnce());
        if (!keepAlive) watchdog(ttl * 1000 + 100);
      },
      revoke: async () => {
        // The keeper lets go first: a revoke that fails must not leave its thread renewing the lease for good.
        if (keepAlive) this.keeper?.drop(id);
        await this.call('revokeLease', () => lease.revoke());
        finish();
      },
    };
  }

  /** Ends watches, stops keepalives (the leases then expire on their TTL) and disconnects. */
  async close(): Promise<void> {
    if (this.closed) return;
    for (const w of [...this.watches]) await w.close();
    this.closed = true;
    for (const { lease, stop } of this.leases.values()) {
      stop();
      lease.release();
    }
    this.leases.clear();
    await this.keeper?.close();
    this.client.close();
  }
}

/**
 * Leader election on the state store, the way Kubernetes components elect on
 * a Lease object, built from etcd primitives:
 *
 *  - each head holds a lease (TTL `leaseSeconds`, renewed every third of it);
 *  - campaigning is one transaction: "if the leader key does not exist, put
 *    it, attached to my lease" — the first head to commit leads;
 *  - the others watch the key; when the leader's lease runs out (it died, was
 *    frozen, or lost etcd) etcd deletes the key and the next campaign wins;
 *  - the revision of the winning put is the term's fence: every write of the
 *    term compares the key's modRevision to it (state/fence.ts), so a deposed
 *    leader's writes fail whatever its clock or memory believes.
 *
 * A term ends when its lease is lost (etcd said so, or renewals failed for
 * twice the TTL — the etcd3 client's rule), when the key changes under it, or
 * when a fenced write shows it has; the head then stops the term's work and
 * campaigns again as a standby. A graceful stop resigns (revokes the lease)
 * so a standby takes over at once instead of after the TTL.
 *
 * The embedded store is opened by one process only (it holds a lock file), so
 * a leader key found there belongs to a previous run of this head: it is
 * removed at once rather than waited out.
 */
import { ErrorCode, MusterError, type Logger } from '@muster/common';
import type { KeyValue, Lease, StateStore } from '../state/store.js';
import { LEADER_KEY, StateWriter, encodeLeaderRecord, leaderRecordOf, type LeaderRecord } from '../state/fence.js';

export interface ElectionOptions {
  headId: string;
  /** Address written into the leader key for clients and agents. */
  address: string;
  leaseSeconds: number;
  log: Logger;
}

/** One won election: fenced writes until `ended` resolves with the reason. */
export interface Term {
  readonly writer: StateWriter;
  /** The revision the leader key was written at (the fence). */
  readonly revision: number;
  /** Resolves, once, with why this head stopped leading. */
  readonly ended: Promise<string>;
  /** Ends the term from our side (e.g. a write was fenced). */
  end(reason: string): void;
}

/** Pause after a failed campaign attempt (the store is unreachable). */
const RETRY_MS = 1_000;

export class Election {
  /** The leader as last read from the store; undefined while there is none. */
  leader: LeaderRecord | undefined;
  /** Why the last campaign attempt failed (the store was unreachable), until one succeeds. */
  lastError: string | undefined;
  private lease: Lease | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private readonly stopSignal = new AbortController();

  constructor(
    private readonly store: StateStore,
    private readonly opts: ElectionOptions,
  ) {}

  /**
   * Resolves when this head leads. Keeps trying through store outages (each
   * failure is logged with what it waits on); rejects only when stopped.
   * `onStandby` runs whenever an attempt did not win (another head leads, or
   * the store cannot be reached).
   */
  async campaign(onStandby: () => void = () => {}): Promise<Term> {
    let waitingOn = '';
    while (!this.stopped) {
      try {
        const term = await this.tryOnce();
        this.lastError = undefined;
        if (term) return term;
        const holder = this.leader ? `${this.leader.headId} at ${this.leader.address}` : 'unknown';
        if (waitingOn !== holder) this.opts.log.info({ leader: this.leader }, `standing by: ${holder} leads`);
        waitingOn = holder;
        onStandby();
        await this.untilLeaderKeyChanges();
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        this.lastError = msg;
        if (waitingOn !== msg) this.opts.log.warn({ err: msg }, 'cannot campaign for leadership (state store unreachable?); retrying');
        waitingOn = msg;
        this.leader = undefined;
        onStandby();
        await this.pause(RETRY_MS);
      }
    }
    throw new MusterError(ErrorCode.UNAVAILABLE, 'head is stopping');
  }

  /** Gives leadership up now (the lease is revoked, so a standby wins at once). */
  async resign(): Promise<void> {
    const lease = this.lease;
    this.lease = undefined;
    await lease?.revoke().catch(() => undefined);
  }

  /** Ends any campaign; `resign()` first to hand over without the TTL wait. */
  stop(): void {
    this.stopped = true;
    this.stopSignal.abort();
    this.wake?.();
  }

  private async tryOnce(): Promise<Term | undefined> {
    const lease = await this.currentLease();
    const record: LeaderRecord = { headId: this.opts.headId, address: this.opts.address, sinceMs: Date.now() };
    const r = await this.store.txn({
      compare: [{ key: LEADER_KEY, target: 'createRevision', op: '==', value: 0 }],
      success: [{ type: 'put', key: LEADER_KEY, value: encodeLeaderRecord(record), lease: lease.id }],
      failure: [{ type: 'get', key: LEADER_KEY }],
    });
    if (r.succeeded) {
      this.leader = record;
      return this.startTerm(lease, r.revision);
    }
    const kv = r.results[0]?.kv;
    if (!kv) return undefined; // deleted in between: campaign again
    this.leader = leaderRecordOf(kv.value);
    if (this.isStale(kv)) {
      this.opts.log.info({ leader: this.leader }, 'removing a leader key left by a previous run of this head');
      await this.store.txn({ compare: [{ key: LEADER_KEY, target: 'modRevision', op: '==', value: kv.modRevision }], success: [{ type: 'delete', key: LEADER_KEY }] });
      return this.tryOnce();
    }
    return undefined;
  }

  /** A key no live head can own: the embedded store is single-process; an old key of ours outlived its lease. */
  private isStale(kv: KeyValue): boolean {
    return this.store.kind === 'embedded' || (this.leader?.headId === this.opts.headId && kv.lease !== this.lease?.id);
  }

  private async currentLease(): Promise<Lease> {
    if (this.lease) return this.lease;
    const lease = await this.store.grantLease(this.opts.leaseSeconds);
    this.lease = lease;
    // `lost` only resolves (a lease that is lost says so, it never throws): nothing to catch.
    lease.lost.then(() => {
      if (this.lease === lease) this.lease = undefined;
    }, () => undefined);
    return lease;
  }

  private startTerm(lease: Lease, revision: number): Term {
    let resolve!: (reason: string) => void;
    let done = false;
    const ended = new Promise<string>((r) => (resolve = r));
    const end = (reason: string) => {
      if (done) return;
      done = true;
      resolve(reason);
    };
    const writer = new StateWriter(this.store, this.opts.headId, revision, end);
    lease.lost.then(() => end(`lease ${lease.id} lost (expired, revoked, or not renewed for ${2 * this.opts.leaseSeconds} s)`), () => undefined);
    this.watchOwnKey(revision, end, ended).catch((e: unknown) => {
      // The watch is a second, faster signal; the lease watchdog still ends the term.
      this.opts.log.warn({ err: (e as Error).message }, 'watching the leader key failed; the lease alone now ends this term');
    });
    return { writer, revision, ended, end };
  }

  /** Ends the term as soon as the leader key is deleted or rewritten by anyone. */
  private async watchOwnKey(revision: number, end: (reason: string) => void, ended: Promise<string>): Promise<void> {
    let watch;
    try {
      watch = await this.store.watch(LEADER_KEY, { fromRevision: revision + 1 });
    } catch {
      return; // the lease watchdog still ends the term
    }
    ended.then(() => watch.close()).catch(() => undefined); // closing a watch twice or after a store outage: nothing left to do
    try {
      for await (const batch of watch) {
        const ev = batch.find((e) => (e.type === 'put' ? e.kv.key : e.key) === LEADER_KEY);
        if (!ev) continue;
        end(ev.type === 'delete' ? 'the leader key was deleted (lease expired or revoked)' : `the leader key was rewritten by ${leaderRecordOf(ev.kv.value)?.headId ?? 'unknown'}`);
        return;
      }
    } catch {
      // A broken watch (store outage) says nothing about the lease by itself.
    } finally {
      await watch.close();
    }
  }

  /** Waits for the leader key to change, with a timeout so a missed event cannot strand a standby. */
  private async untilLeaderKeyChanges(): Promise<void> {
    const watch = await this.store.watch(LEADER_KEY);
    // A watch that fails to close ends the wait all the same (its iterator ends or throws below).
    const close = () => void watch.close().catch((e: unknown) => this.opts.log.debug({ err: (e as Error).message }, 'closing the leader-key watch failed'));
    const timeout = setTimeout(close, this.opts.leaseSeconds * 1000);
    const onStop = close;
    this.stopSignal.signal.addEventListener('abort', onStop, { once: true });
    try {
      // The key may have gone between our txn and the watch: look once more.
      if ((await this.store.get(LEADER_KEY)) === undefined) return;
      for await (const batch of watch) {
        if (batch.some((e) => (e.type === 'put' ? e.kv.key : e.key) === LEADER_KEY)) return;
      }
    } finally {
      clearTimeout(timeout);
      this.stopSignal.signal.removeEventListener('abort', onStop);
      await watch.close();
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}

/**
 * The one write path of every controller (placement groups, gangs, replica
 * groups, the node registry): one loop of cycles, each of which changes
 * memory first and then makes all of its changes durable in one fenced write
 * (group commit: 64 concurrent creates cost one write).
 *
 *   kick() ─▶ cycle: step() ─ schedules, marks records (put/delete),
 *                     │       stages events, queues after() actions
 *                     ▼
 *            one txn of every marked record + staged event (split at
 *            TXN_OPS ops or STORE_REQUEST_BYTES) ─▶ durable: events settle, flush() waiters
 *            resolve, after() actions run (wake waiters, tell agents)
 *
 * Nothing is answered or told before it is durable. Cycles run one at a
 * time; on a store that applies writes in call order (embedded), up to
 * MAX_INFLIGHT commits overlap: the next cycle schedules on the memory the
 * previous one left while that write is still in flight, and the store
 * puts both in one fsync. Elsewhere each commit is awaited before the next
 * cycle. A failed commit rejects its waiters, drops its events and actions,
 * and hands over to `recover`: memory ran ahead of the store. What was
 * marked for the next commit meanwhile is dropped the same way (it was made
 * on the memory that `recover` replaces), so nobody is told a change took
 * effect that the store never got.
 */
import type { Histogram } from '@opentelemetry/api';
import type { Logger } from '@muster/common';
import type { StagedEvent } from '../events/event-log.js';
import type { StateWriter } from '../state/fence.js';
import { STORE_REQUEST_BYTES } from '@muster/contracts';
import type { Op } from '../state/index.js';

const TXN_OPS = 100; // etcd allows 128 per transaction
const MAX_INFLIGHT = 4;

type Waiter = { resolve: () => void; reject: (e: unknown) => void };

export interface GroupCommitOptions {
  /** Who commits, for logs ("placement groups", "gangs"). */
  name?: string;
  /** The cycle's in-memory work: runs first in every cycle (none: commit what was marked). */
  step?(): void;
  /**
   * After a failed commit: read the truth back from the store. `partlyWritten`:
   * the commit was split into several transactions and the earlier ones were
   * written before one failed.
   */
  recover(partlyWritten: boolean): Promise<void>;
  metrics?: { cycleSeconds: Histogram; cycleWrites: Histogram } | undefined;
}

export class GroupCommit {
  /** Keys to write, with how to encode their value at commit time (the latest state). */
  private readonly puts = new Map<string, () => Uint8Array>();
  private readonly deletes = new Set<string>();
  /** Prefixes whose keys the next commit deletes, before its puts and deletes. */
  private readonly prefixes = new Set<string>();
  private readonly staged: StagedEvent[] = [];
  private readonly afters: Array<() => void> = [];
  private waiters: Waiter[] = [];
  /** Settles when the last commit cut has answered its waiters and run its actions (or failed). */
  private settledTail: Promise<void> = Promise.resolve();
  private running = false;
  private again = false;
  private readonly inflight: Array<Promise<void>> = [];
  /** The recovery under way: overlapping commits that fail together recover once. */
  private recovering: Promise<void> | undefined;

  constructor(
    private readonly writer: StateWriter,
    private readonly log: Logger,
    private readonly opts: GroupCommitOptions,
  ) {}

  private get name(): string {
    return this.opts.name ?? 'controller';
  }

  /** `key` is written by the next commit, with what `encode` returns then. */
  put(key: string, encode: () => Uint8Array): void {
    this.deletes.delete(key);
    this.puts.set(key, encode);
  }

  /** `key` is deleted by the next commit (a put of it still pending is dropped). */
  delete(key: string): void {
    this.puts.delete(key);
    this.deletes.add(key);
  }

  /**
   * Every key under `prefix` is deleted by the next commit, before the keys
   * it puts (a put or delete of such a key still pending is dropped: the
   * prefix delete supersedes it; one marked after this call is written after
   * it, in a later transaction of the same commit).
   */
  deletePrefix(prefix: string): void {
    for (const key of this.puts.keys()) if (key.startsWith(prefix)) this.puts.delete(key);
    for (const key of this.deletes) if (key.startsWith(prefix)) this.deletes.delete(key);
    this.prefixes.add(prefix);
  }

  /** An event written in the next commit's transaction. */
  stage(event: StagedEvent): void {
    this.staged.push(event);
  }

  /** Runs once the next commit is durable (not at all if it fails). */
  after(action: () => void): void {
    this.afters.push(action);
  }

  /** Resolves once a cycle started after this call has committed. */
  flush(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.kick();
    });
  }

  /** Runs a cycle soon (or one more, after the one running). */
  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    setImmediate(() => {
      // loop() catches each cycle's failure (the next kick runs again); this keeps a bug in it visible.
      this.loop().catch((e: unknown) => {
        this.running = false;
        this.log.error({ err: e instanceof Error ? e.message : e }, `${this.name} loop threw; the next change runs it again`);
      });
    });
  }

  private async loop(): Promise<void> {
    do {
      this.again = false;
      try {
        await this.cycle();
      } catch (e) {
        this.log.error({ err: e instanceof Error ? e.message : e }, `${this.name} cycle failed`);
      }
    } while (this.again);
    this.running = false;
  }

  private async cycle(): Promise<void> {
    const t0 = performance.now();
    this.opts.step?.();
    this.opts.metrics?.cycleSeconds.record((performance.now() - t0) / 1000, { phase: 'schedule' });
    const ops: Op[] = [];
    for (const prefix of this.prefixes) ops.push({ type: 'deletePrefix', prefix });
    this.prefixes.clear();
    for (const key of this.deletes) ops.push({ type: 'delete', key });
    for (const [key, encode] of this.puts) ops.push({ type: 'put', key, value: encode() });
    this.deletes.clear();
    this.puts.clear();
    const staged = this.staged.splice(0);
    for (const s of staged) ops.push(s.op);
    const commit = this.commit(ops, this.waiters.splice(0), staged, this.afters.splice(0));
    this.inflight.push(commit);
    // A failed write reaches its waiters inside commit(); what can still reject is the reload after it.
    commit.finally(() => this.inflight.splice(this.inflight.indexOf(commit), 1)).catch((e: unknown) => {
      this.log.error({ err: e instanceof Error ? e.message : e }, `${this.name}: reloading after a failed commit failed; the next failed commit reloads again`);
    });
    const max = this.writer.store.ordersWrites ? MAX_INFLIGHT : 1;
    while (this.inflight.length >= max) await this.inflight[0];
  }

  private async commit(ops: Op[], waiters: Waiter[], staged: StagedEvent[], afters: Array<() => void>): Promise<void> {
    // Overlapping commits settle in the order they were cut: an earlier one split into more
    // transactions may still be writing when this one is durable, and its waiters, events and
    // actions (a launch order before a stop of the same gang) come first.
    const earlier = this.settledTail;
    let settled!: () => void;
    this.settledTail = new Promise<void>((resolve) => (settled = resolve));
    try {
      await this.write(ops, waiters, staged, afters, earlier);
    } finally {
      settled();
    }
  }

  private async write(ops: Op[], waiters: Waiter[], staged: StagedEvent[], afters: Array<() => void>, earlier: Promise<void>): Promise<void> {
    const t = performance.now();
    let written = 0;
    try {
      for (const chunk of txnChunks(ops)) {
        await this.writer.txn(chunk);
        written++;
      }
    } catch (e) {
      this.log.error({ err: e instanceof Error ? e.message : e }, `${this.name} commit failed; reloading state from the store`);
      // Dropped too: what the next commit would have written, made on the memory recover() replaces.
      this.puts.clear();
      this.deletes.clear();
      this.prefixes.clear();
      this.afters.length = 0;
      for (const s of [...staged, ...this.staged.splice(0)]) s.settle(false);
      for (const w of [...waiters, ...this.waiters.splice(0)]) w.reject(e);
      this.recovering ??= this.opts.recover(written > 0).finally(() => (this.recovering = undefined));
      await this.recovering;
      return;
    }
    await earlier;
    for (const s of staged) s.settle(true);
    for (const w of waiters) w.resolve();
    // An action that throws is a bug in its controller; it must not take the
    // actions after it, the metrics or the loop down with it.
    for (const f of afters) {
      try {
        f();
      } catch (e) {
        this.log.error({ err: e instanceof Error ? e.stack : e }, `${this.name}: an action after a commit threw`);
      }
    }
    this.opts.metrics?.cycleSeconds.record((performance.now() - t) / 1000, { phase: 'commit' });
    this.opts.metrics?.cycleWrites.record(ops.length);
  }
}

/**
 * The commit's ops in txns of at most TXN_OPS ops and STORE_REQUEST_BYTES
 * (one larger op goes alone). A key under a prefix deleted earlier in the
 * chunk starts the next one: a txn may not write one key twice (validate.ts).
 */
export function txnChunks(ops: Op[]): Op[][] {
  const chunks: Op[][] = [];
  let chunk: Op[] = [];
  let bytes = 0;
  for (const op of ops) {
    const size = op.type === 'put' ? op.key.length + op.value.byteLength : op.type === 'deletePrefix' ? op.prefix.length : op.key.length;
    const cleared = op.type !== 'deletePrefix' && op.type !== 'get' && chunk.some((c) => c.type === 'deletePrefix' && op.key.startsWith(c.prefix));
    if (chunk.length > 0 && (cleared || chunk.length === TXN_OPS || bytes + size > STORE_REQUEST_BYTES)) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(op);
    bytes += size;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/**
 * Dynamic batching for `serve()`: unary calls gathered per replica into
 * batches for one handler call, each call still answered on its own.
 *
 *   serve({ batch: { maxBatchSize: 32, preferredBatchSizes: [8, 16], maxQueueDelayMs: 5,
 *                    handler: async (prompts, ctx) => model.generateMany(prompts, { signal: ctx.signal }) } })
 *
 * When a batch is sent is decided by `planBatch` (batch-plan.ts, pure); this
 * file keeps the queue, the timers and the batches running, and knows nothing
 * of NATS: `serve()` adds calls and publishes the outcomes it is handed. Each
 * call has exactly one outcome, settled once:
 *
 *   queued ──(planned into a batch)──▶ running ──(handler returns)──▶ its result, or its Error
 *     │ deadline: DEADLINE_EXCEEDED    │ deadline: signal aborts; nothing sent (the caller's own
 *     │ cancel:   nothing sent         │           timer answers it, as for unary handlers)
 *     │ close:    UNAVAILABLE          │ cancel:   signal aborts; nothing sent (the router closed its inbox)
 *     ▼ (dropped from the queue)       │ close:    signal aborts; the handler's answer still goes
 *                                      │ wrong number of results, a throw: every call still
 *                                      ▼ waiting fails with MUSTER_APPLICATION_ERROR
 *
 * A call leaving early takes nothing from the others: the batch keeps
 * running, and only that call's element of the result is dropped. Calls in a
 * running batch count against the bound until the batch ends (the handler
 * is still working for them).
 *
 * Time comes from a `BatchClock`, so the unit tests drive it by hand.
 */
import { ErrorCode, MusterError } from '@muster/common';
import { planBatch, type ValidBatchOptions } from './batch-plan.js';
import type { RequestContext } from './types.js';

/** A call as the batcher needs it; `serve()` hands its own job objects and gets them back. */
export interface BatchCall {
  id: string;
  /** Epoch ms, on the clock's `now()`. */
  deadline: number;
  payload: unknown;
}

/** A call's one outcome; `send: false` when its caller has stopped listening (past its deadline, or cancelled). */
export type BatchOutcome = { ok: true; result: unknown } | { ok: false; code: ErrorCode; message: string; send: boolean };

export interface BatchClock {
  /** Epoch ms (deadlines are epoch ms). */
  now(): number;
  /** Calls `fn` after `ms` (0: as soon as the current I/O is handled); returns its cancel. */
  setTimer(fn: () => void, ms: number): () => void;
}

/** The longest delay setTimeout takes as given; a timer for a later deadline fires early and is armed again. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const realClock: BatchClock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => {
    if (ms <= 0) {
      const h = setImmediate(fn);
      return () => clearImmediate(h);
    }
    const h = setTimeout(fn, Math.min(ms, MAX_TIMER_MS)); // Node fires a longer one after 1 ms
    return () => clearTimeout(h);
  },
};

export interface BatcherInit<C extends BatchCall> {
  options: ValidBatchOptions;
  /** Calls held (queued + in running batches) before `add` refuses. */
  capacity: number;
  /** Names the replica in errors ("replica r1 of group g"). */
  where: string;
  settle(call: C, outcome: BatchOutcome): void;
  /** A batch was sent: its size and how long each of its calls waited (ms). */
  dispatched?(size: number, waitedMs: number[]): void;
  /** Nothing is queued or running any more (a draining replica waits for it). */
  idle?(): void;
  clock?: BatchClock;
}

interface Entry<C> {
  call: C;
  arrived: number;
  settled: boolean;
  stopDeadline: () => void;
  /** Set once its batch is sent. */
  ac?: AbortController;
  batch?: Running;
}

interface Running {
  open: number;
  ac: AbortController;
}

export class Batcher<C extends BatchCall> {
  /**
   * Queued calls in arrival order, from `head` on. A call that leaves the
   * queue early (cancel, deadline, close) is only marked settled, and skipped
   * when reached: removing it there would cost a scan and a shift per call.
   * The array is compacted once most of it is dead (amortized O(1) a call).
   */
  private queue: Entry<C>[] = [];
  private head = 0;
  /** Calls in `queue` still waiting (not settled, not sent). */
  private live = 0;
  private readonly byId = new Map<string, Entry<C>>();
  private runningBatches = 0;
  private runningCalls = 0;
  private flushing = false;
  private closed = false;
  private stopSoon: (() => void) | undefined;
  /** The delay timer, armed for the entry that was oldest then. */
  private delay: { entry: Entry<C>; stop: () => void; fired: boolean } | undefined;
  private readonly clock: BatchClock;
  private readonly o: ValidBatchOptions;

  constructor(private readonly init: BatcherInit<C>) {
    this.clock = init.clock ?? realClock;
    this.o = init.options;
  }

  /** Calls waiting for a batch. */
  get queued(): number {
    return this.live;
  }

  /** Calls in batches that are running. */
  get running(): number {
    return this.runningCalls;
  }

  /** Queues a call; false (nothing kept) when the replica already holds `capacity` calls. */
  add(call: C): boolean {
    if (this.closed || this.live + this.runningCalls >= this.init.capacity) return false;
    const entry: Entry<C> = { call, arrived: this.clock.now(), settled: false, stopDeadline: () => undefined };
    entry.stopDeadline = this.clock.setTimer(() => this.expire(entry), call.deadline - entry.arrived);
    this.queue.push(entry);
    this.live++;
    this.byId.set(call.id, entry);
    // Not planned at once: the calls of one socket read arrive one by one, and
    // a plan made at the first would send it alone (or a small preferred size).
    if (this.live >= this.o.maxBatchSize) this.pump();
    else this.stopSoon ??= this.clock.setTimer(() => {
      this.stopSoon = undefined;
      this.pump();
    }, 0);
    return true;
  }

  /** The caller cancelled call `id`; false when it is not held here. */
  cancel(id: string): boolean {
    const e = this.byId.get(id);
    if (!e) return false;
    const error = new MusterError(ErrorCode.CANCELLED, `call ${id} was cancelled by its caller`);
    // Not sent: the router closed the call's inbox before it sent the cancel (its caller has its answer already).
    this.leave(e, { ok: false, code: ErrorCode.CANCELLED, message: error.message, send: false }, error);
    return true;
  }

  /** The replica drains: send what is queued without waiting for the delay. */
  flush(): void {
    this.flushing = true;
    this.pump();
  }

  /** The replica closes: queued calls get UNAVAILABLE (never started, so routers retry them); running batches see their signals abort. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopSoon?.();
    this.delay?.stop();
    this.delay = undefined;
    const queued = this.queue.slice(this.head);
    for (const e of queued) this.leave(e, { ok: false, code: ErrorCode.UNAVAILABLE, message: `${this.init.where} closed before starting call ${e.call.id}`, send: true });
    const closing = new MusterError(ErrorCode.CANCELLED, `${this.init.where} is closing`);
    for (const e of this.byId.values()) {
      e.ac?.abort(closing);
      e.batch?.ac.abort(closing);
    }
  }

  /** Sends batches while the plan says so, then arms the delay timer if it says wait. */
  private pump(): void {
    if (this.closed) return; // what is queued is being answered UNAVAILABLE: never started, so never sent
    for (;;) {
      const oldest = this.firstLive();
      const waited = oldest ? this.clock.now() - oldest.arrived : 0;
      // A timer can fire a little before Date.now() says the time is up; it is up all the same.
      const due = this.delay?.fired === true && this.delay.entry === oldest;
      const plan = planBatch({ queued: this.live, oldestWaitedMs: due ? Math.max(waited, this.o.maxQueueDelayMs) : waited, runningBatches: this.runningBatches, flushing: this.flushing }, this.o);
      if ('take' in plan) {
        this.send(this.takeLive(plan.take));
        continue;
      }
      if ('waitMs' in plan && this.delay?.entry !== oldest) {
        this.delay?.stop();
        const d = { entry: oldest!, fired: false, stop: () => undefined as void };
        d.stop = this.clock.setTimer(() => {
          d.fired = true;
          this.pump();
        }, plan.waitMs);
        this.delay = d;
      } else if ('idle' in plan && this.delay) {
        this.delay.stop();
        this.delay = undefined;
      }
      return;
    }
  }

  /** The oldest call still queued; what left before it is skipped for good. */
  private firstLive(): Entry<C> | undefined {
    while (this.head < this.queue.length && this.queue[this.head]!.settled) this.head++;
    return this.queue[this.head];
  }

  /** The `n` oldest calls still queued (the plan counted them: there are that many), out of the queue. */
  private takeLive(n: number): Entry<C>[] {
    const out: Entry<C>[] = [];
    while (out.length < n) {
      const e = this.queue[this.head++]!;
      if (!e.settled) out.push(e);
    }
    this.live -= n;
    this.compact();
    return out;
  }

  /** Drops the sent and settled entries once they outnumber the live ones (and a few dozen). */
  private compact(): void {
    if (this.queue.length - this.live <= Math.max(64, this.live)) return;
    this.queue = this.queue.slice(this.head).filter((e) => !e.settled);
    this.head = 0;
  }

  private send(entries: Entry<C>[]): void {
    const now = this.clock.now();
    const batch: Running = { open: entries.length, ac: new AbortController() };
    const calls: RequestContext[] = [];
    for (const e of entries) {
      e.ac = new AbortController();
      e.batch = batch;
      calls.push({ id: e.call.id, deadline: e.call.deadline, signal: e.ac.signal });
    }
    this.runningBatches++;
    this.runningCalls += entries.length;
    this.init.dispatched?.(entries.length, entries.map((e) => now - e.arrived));
    let out: Promise<unknown>;
    try {
      out = Promise.resolve(this.o.handler(entries.map((e) => e.call.payload), { calls, signal: batch.ac.signal }));
    } catch (err) {
      out = Promise.reject(err);
    }
    void out.then((results) => this.deliver(entries, results), (err: unknown) => this.failAll(entries, messageOf(err))).finally(() => this.end(entries));
  }

  private deliver(entries: Entry<C>[], results: unknown): void {
    if (!Array.isArray(results) || results.length !== entries.length) {
      const got = Array.isArray(results) ? `${results.length} result(s)` : `${results === null ? 'null' : typeof results} instead of an array`;
      return this.failAll(entries, `the batch handler${handlerName(this.o.handler)} of ${this.init.where} returned ${got} for a batch of ${entries.length} call(s); it must return an array with one result (or Error) per payload, in order. Every call of this batch failed`);
    }
    entries.forEach((e, i) => {
      const r: unknown = results[i];
      this.settleFromHandler(e, r instanceof Error ? { ok: false, code: ErrorCode.APPLICATION, message: r.message, send: true } : { ok: true, result: r });
    });
  }

  private failAll(entries: Entry<C>[], message: string): void {
    for (const e of entries) this.settleFromHandler(e, { ok: false, code: ErrorCode.APPLICATION, message, send: true });
  }

  /** The handler's answer for a call still waiting for one (a closing replica's calls included). */
  private settleFromHandler(e: Entry<C>, outcome: BatchOutcome): void {
    if (e.settled) return;
    e.settled = true;
    e.stopDeadline();
    this.byId.delete(e.call.id);
    this.init.settle(e.call, outcome);
  }

  /** A call leaves before its answer: from the queue, or from a running batch (whose other calls go on). */
  private leave(e: Entry<C>, outcome: BatchOutcome, reason?: MusterError): void {
    if (e.settled) return;
    e.settled = true;
    e.stopDeadline();
    this.byId.delete(e.call.id);
    if (!e.batch) {
      this.live--; // skipped when reached (firstLive, takeLive)
      this.compact();
      if (this.delay?.entry === e) this.pump(); // the next oldest gets its own timer (or nothing is left)
    } else {
      e.ac?.abort(reason);
      if (--e.batch.open === 0) e.batch.ac.abort(new MusterError(ErrorCode.CANCELLED, 'every call of the batch was cancelled or passed its deadline'));
    }
    this.init.settle(e.call, outcome);
    this.checkIdle();
  }

  private expire(e: Entry<C>): void {
    const left = e.call.deadline - this.clock.now();
    if (left > 0) return void (e.stopDeadline = this.clock.setTimer(() => this.expire(e), left)); // a far deadline, past one timer's reach
    const late = new MusterError(ErrorCode.DEADLINE_EXCEEDED, `call ${e.call.id} passed its deadline`);
    if (!e.batch) return this.leave(e, { ok: false, code: ErrorCode.DEADLINE_EXCEEDED, message: `call ${e.call.id} waited in ${this.init.where}'s batch queue past its deadline; not started`, send: true });
    // Running: its answer is not sent, so that a late one cannot beat the caller's own timer.
    this.leave(e, { ok: false, code: ErrorCode.DEADLINE_EXCEEDED, message: late.message, send: false }, late);
  }

  private end(entries: Entry<C>[]): void {
    this.runningBatches--;
    this.runningCalls -= entries.length;
    this.pump();
    this.checkIdle();
  }

  private checkIdle(): void {
    if (this.live === 0 && this.runningCalls === 0) this.init.idle?.();
  }
}

function handlerName(f: (...a: never[]) => unknown): string {
  return f.name && f.name !== 'handler' ? ` "${f.name}"` : '';
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

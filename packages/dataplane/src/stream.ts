/**
 * A streaming call: the replica publishes chunks to the attempt's inbox.
 *
 * "Never reached" is detected for streams exactly as for unary calls: the
 * request is published with the inbox as its reply subject, so NATS answers
 * "no responders" at once when nobody serves the replica's subject (and a
 * closing replica answers MUSTER_UNAVAILABLE at seq 0 without starting). We
 * need no separate "accepted" ack: any other first message proves the
 * request arrived. Once a chunk has reached the caller the stream is never
 * sent again, not even for an idempotent call (the caller would see chunks
 * twice). No hedging for streams.
 *
 * Flow control: the request carries a window (STREAM_WINDOW chunks); every
 * STREAM_CREDIT_EVERY chunks the consumer takes, a credit goes to the replica
 * (WireCredit), which sends no chunk past credit + window. So a consumer that
 * stops reading (a slow HTTP client behind the gateway) stops the replica's
 * handler after at most a window of chunks held here, instead of an
 * unbounded buffer. A replica without flow control ignores the credits.
 */
import { encode, ErrorCode, MusterError } from '@muster/common';
import { Call, type Attempt, type CallHost, type ResolvedCallOptions } from './call.js';
import type { ReplicaState } from './balancer.js';
import { STREAM_CREDIT_EVERY, type WireCredit, type WireError } from './types.js';
import { errorFromWire } from './wire.js';

export class StreamCall extends Call {
  private readonly ready: unknown[] = [];
  private head = 0;
  /** Chunks that arrived ahead of their turn, by seq. */
  private readonly early = new Map<number, Record<string, unknown>>();
  private nextSeq = 0;
  private delivered = false;
  private finished = false;
  private error: MusterError | undefined;
  private wake: (() => void) | undefined;
  /** Chunks the consumer has taken, and the attempt they came from (where credits go). */
  private taken = 0;
  private source: Attempt | undefined;

  constructor(host: CallHost, payload: unknown, opts: ResolvedCallOptions) {
    super(host, payload, true, opts);
  }

  /** The next chunk, in seq order; throws the stream's error. */
  async next(): Promise<IteratorResult<unknown>> {
    for (;;) {
      if (this.head < this.ready.length) {
        const value = this.ready[this.head];
        this.ready[this.head++] = undefined;
        if (this.head > 1024 && this.head * 2 > this.ready.length) {
          this.ready.splice(0, this.head);
          this.head = 0;
        }
        if (++this.taken % STREAM_CREDIT_EVERY === 0) this.grant();
        return { value, done: false };
      }
      if (this.error) throw this.error;
      if (this.finished) return { value: undefined, done: true };
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** The consumer stopped early (break/return): cancel on the replica, free the slot. */
  abandon(): void {
    if (this.settle()) this.finished = true;
  }

  fail(e: MusterError): void {
    if (!this.settle(e)) return;
    this.error = e;
    this.notify();
  }

  /** Tells the replica the consumer has taken `taken` chunks (best effort: a lost credit is made up by the next). */
  private grant(): void {
    const a = this.source;
    if (!a || a.ended || this.settled) return;
    try {
      this.host.send(a.replica, encode({ v: 1, id: this.id, credit: this.taken } satisfies WireCredit));
    } catch {
      // connection closed: the call fails by its own path
    }
  }

  protected override delivering(): boolean {
    return this.delivered;
  }

  protected override canResend(): boolean {
    return this.opts.idempotent && !this.delivered;
  }

  protected override send(r: ReplicaState): void {
    // A new attempt starts its own sequence; nothing of an earlier one was delivered (see canResend).
    this.early.clear();
    this.nextSeq = 0;
    super.send(r);
  }

  protected onBody(a: Attempt, body: Record<string, unknown>): void {
    if (typeof body.seq !== 'number') {
      // A reply-shaped error (e.g. the replica could not parse the request) ends the stream too.
      this.end(a, false);
      return this.fail(body.error ? errorFromWire(body.error as WireError, a.replica.info.replicaId) : new MusterError(ErrorCode.INTERNAL, `replica ${a.replica.info.replicaId} sent a stream message without seq`));
    }
    this.source = a;
    this.early.set(body.seq, body);
    for (let c = this.early.get(this.nextSeq); c; c = this.early.get(this.nextSeq)) {
      this.early.delete(this.nextSeq++);
      if ('data' in c) {
        this.ready.push(c.data);
        this.delivered = true;
        continue;
      }
      this.end(a, false);
      if (c.error) return this.fail(errorFromWire(c.error as WireError, a.replica.info.replicaId));
      if (this.settle()) this.finished = true;
      break;
    }
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

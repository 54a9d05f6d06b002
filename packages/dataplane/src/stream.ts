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
 */
import { ErrorCode, MusterError } from '@muster/common';
import { Call, type Attempt, type CallHost, type ResolvedCallOptions } from './call.js';
import type { ReplicaState } from './balancer.js';
import type { WireError } from './types.js';
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
    if (!this.settle()) return;
    this.error = e;
    this.notify();
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

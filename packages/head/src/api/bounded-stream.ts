/**
 * Back-pressure for the head's server streams: one bounded buffer per
 * consumer, so the head's memory never grows with a slow client.
 *
 * Messages go straight to grpc-js while it takes them (`write()` returns
 * true); once it reports its own buffer full, they wait here, and go on
 * after its 'drain'. A consumer that falls `maxQueued` messages behind is
 * cut: `cut` rejects with MUSTER_CONSUMER_TOO_SLOW naming the last id handed
 * to the transport, the handler ends the stream with it, and the client
 * opens the stream again from the last id it received (the SDK does).
 *
 *   send ──► grpc-js (≤ its highWaterMark) ──► client
 *     └─ full? ──► queue (≤ maxQueued) ── 'drain' ──┘
 *                    └─ over? ──► cut: CONSUMER_TOO_SLOW, "resume from id N"
 */
import { ErrorCode, MusterError } from '@muster/common';

/** The part of a grpc-js server stream this needs. */
export interface WritableCall<T> {
  write(message: T): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/** Messages a consumer may fall behind (beyond grpc-js's own buffer) before it is cut. */
export const DEFAULT_MAX_QUEUED = 1_024;

export class BoundedStream<T> {
  private readonly queue: T[] = [];
  private blocked = false;
  private cutError: MusterError | undefined;
  private lastWritten = '';
  private rejectCut: ((e: MusterError) => void) | undefined;
  /** Rejects when the consumer is cut (never resolves). */
  readonly cut: Promise<never>;

  constructor(
    private readonly call: WritableCall<T>,
    private readonly opts: {
      /** Messages queued here at most. */
      maxQueued?: number;
      /** What the stream is, for the error: "events", "the log of gang g rank 0". */
      what: string;
      /** A message's id, for the error's resume hint: the last one handed to the transport. */
      idOf?: (message: T) => string;
    },
  ) {
    this.cut = new Promise<never>((_, reject) => (this.rejectCut = reject));
    this.cut.catch(() => {}); // a stream that is never cut must not leave an unhandled rejection
  }

  /** Messages waiting for the transport. */
  get queued(): number {
    return this.queue.length;
  }

  /** True once the consumer was cut: further sends are dropped. */
  get isCut(): boolean {
    return this.cutError !== undefined;
  }

  /** Hands `message` on, or queues it; cuts the consumer when the queue is full. */
  send(message: T): void {
    if (this.cutError) return;
    if (!this.blocked) {
      this.writeNow(message);
      return;
    }
    if (this.queue.length >= (this.opts.maxQueued ?? DEFAULT_MAX_QUEUED)) {
      this.cutOff();
      return;
    }
    this.queue.push(message);
  }

  /**
   * Resolves when the transport takes more (at once if it does now), or when
   * `signal` aborts (the client went away): for producers that can wait, such
   * as a paged replay, a log read or a feed that keeps only the latest value.
   */
  async ready(signal?: AbortSignal): Promise<void> {
    while (this.blocked && !this.cutError && !signal?.aborted) {
      await new Promise<void>((resolve) => {
        const done = () => {
          signal?.removeEventListener('abort', done);
          resolve();
        };
        this.call.once('drain', done);
        signal?.addEventListener('abort', done, { once: true });
      });
    }
  }

  private writeNow(message: T): void {
    this.lastWritten = this.opts.idOf?.(message) || this.lastWritten;
    if (this.call.write(message)) return;
    this.blocked = true;
    this.call.once('drain', () => this.flush());
  }

  private flush(): void {
    this.blocked = false;
    while (this.queue.length > 0 && !this.blocked && !this.cutError) this.writeNow(this.queue.shift()!);
  }

  private cutOff(): void {
    const from = this.lastWritten;
    const resume = from ? `; resume from id ${from}` : '; open it again to resume';
    this.cutError = new MusterError(
      ErrorCode.CONSUMER_TOO_SLOW,
      `consumer too slow: ${this.opts.what} fell more than ${this.opts.maxQueued ?? DEFAULT_MAX_QUEUED} messages behind${resume}`,
      { details: from ? { resumeFrom: from } : {} },
    );
    this.queue.length = 0;
    this.rejectCut?.(this.cutError);
  }
}

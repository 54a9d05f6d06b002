/**
 * The consumer side of a watch, shared by both stores: the store pushes
 * batches of events as they become visible, the caller iterates them.
 *
 * Batches are buffered without bound (as etcd buffers per watcher): a slow
 * consumer costs memory, never a lost or reordered event. `close()` ends the
 * iteration at once (buffered batches are dropped, the caller asked to stop);
 * `fail()` lets the caller drain what was buffered, then throws.
 */
import type { Watch, WatchEvent } from './store.js';

export class WatchQueue implements Watch {
  private buffered: WatchEvent[][] = [];
  private wake: (() => void) | undefined;
  private ended = false;
  private failure: Error | undefined;
  private closing: Promise<void> | undefined;

  /** `onClose` releases the store's side (unregister, cancel the etcd watcher). */
  constructor(private readonly onClose: () => Promise<void> | void) {}

  push(batch: WatchEvent[]): void {
    if (this.ended || batch.length === 0) return;
    this.buffered.push(batch);
    this.notify();
  }

  /** The watch broke: the iterator throws `err` after the buffered batches. */
  fail(err: Error): void {
    if (this.ended) return;
    this.failure = err;
    this.ended = true;
    this.notify();
  }

  async close(): Promise<void> {
    this.closing ??= (async () => {
      this.ended = true;
      this.failure = undefined;
      this.buffered = [];
      this.notify();
      await this.onClose();
    })();
    return this.closing;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<WatchEvent[]> {
    try {
      for (;;) {
        const batch = this.buffered.shift();
        if (batch) {
          yield batch;
          continue;
        }
        if (this.failure) throw this.failure;
        if (this.ended) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      // A `break` out of for-await lands here too: release the watch.
      await this.close();
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/**
 * Coalescing of placement group creates and removes: the calls an
 * application issues together — in one tick (`Promise.all` over 100
 * `create()`s), or while an earlier batch is still in flight — go to the head
 * as one batched call (CreatePlacementGroups / RemovePlacementGroups), as
 * `ready()` already shares one wait stream (pg-waits.ts). A unary call costs
 * client and head far more than an item of a batch, and the head commits a
 * batch's items in one write.
 *
 * Every guarantee of the single call holds per item: each item is answered
 * with its own group or its own refusal (one bad spec fails only itself), a
 * create keeps its request id across retries, and the batched call is
 * retried across heads like any call (rpc.ts). What a batch changes:
 *
 * - A lone item is sent by the single call: nothing to coalesce.
 * - A batch carries at most MAX_BATCH_ITEMS items and about PG_BATCH_BYTES of
 *   them; more waits for the next batch. At most MAX_IN_FLIGHT batches of
 *   one kind are in flight; items issued meanwhile queue for the next one.
 * - An item refused with a retryable code is sent again by the single call;
 *   one answered by id only (the reply had no room for its record) is read
 *   by id.
 * - A head that does not know the batched call (UNIMPLEMENTED: an older
 *   version) gets single calls from then on.
 */
import { status } from '@grpc/grpc-js';
import { MAX_PG_BATCH, PG_BATCH_BYTES } from '@muster/contracts';
import { errorFromReply, type MusterError } from '@muster/common';
import type { PlacementGroupResult } from '@muster/proto';
import type * as wire from '@muster/proto';

/** Items per batch (the head takes up to MAX_PG_BATCH). */
export const MAX_BATCH_ITEMS = Math.min(256, MAX_PG_BATCH);
/** Batches of one kind in flight at once; later items queue. */
const MAX_IN_FLIGHT = 2;

export interface BatchTransport<I> {
  /** The batched call: one result per item, in order. */
  many(items: I[]): Promise<PlacementGroupResult[]>;
  /** The single call (and the fallback). */
  one(item: I): Promise<wire.PlacementGroup>;
  /** Reads a group by id (GetPlacementGroup): one the reply had no room for. */
  read(id: string): Promise<wire.PlacementGroup>;
  /** About how many bytes the item adds to a request. */
  size(item: I): number;
}

interface Queued<I> {
  item: I;
  bytes: number;
  resolve(pg: wire.PlacementGroup): void;
  reject(e: unknown): void;
}

export class Coalescer<I> {
  private readonly queue: Array<Queued<I>> = [];
  private inFlight = 0;
  private scheduled = false;
  /** The head answered UNIMPLEMENTED: single calls only. */
  private unsupported = false;

  constructor(private readonly transport: BatchTransport<I>) {}

  /** The item's group, as the single call would answer it. */
  submit(item: I): Promise<wire.PlacementGroup> {
    if (this.unsupported) return this.transport.one(item);
    return new Promise((resolve, reject) => {
      this.queue.push({ item, bytes: this.transport.size(item), resolve, reject });
      this.schedule();
    });
  }

  /** Sends what is queued at the end of this turn of the event loop, if a batch may go. */
  private schedule(): void {
    if (this.scheduled || this.inFlight >= MAX_IN_FLIGHT || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.send();
    });
  }

  private send(): void {
    if (this.unsupported) {
      // Learnt while these were queued: no more batched calls, each goes by the single call.
      for (const q of this.queue.splice(0)) void this.single(q);
      return;
    }
    const batch = this.take();
    if (batch.length === 0) return;
    this.inFlight++;
    const done = batch.length === 1 ? this.single(batch[0]!) : this.batched(batch);
    void done.finally(() => {
      this.inFlight--;
      this.schedule();
    });
    this.schedule(); // more queued than one batch takes
  }

  /** The next batch: up to MAX_BATCH_ITEMS items and about PG_BATCH_BYTES (one larger item goes alone). */
  private take(): Array<Queued<I>> {
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && n < MAX_BATCH_ITEMS && (n === 0 || bytes + this.queue[n]!.bytes <= PG_BATCH_BYTES)) {
      bytes += this.queue[n]!.bytes;
      n++;
    }
    return this.queue.splice(0, n);
  }

  private single(q: Queued<I>): Promise<void> {
    return this.transport.one(q.item).then(q.resolve, q.reject);
  }

  private async batched(batch: Array<Queued<I>>): Promise<void> {
    let results: PlacementGroupResult[];
    try {
      results = await this.transport.many(batch.map((q) => q.item));
    } catch (e) {
      if (unimplemented(e)) {
        this.unsupported = true;
        await Promise.all(batch.map((q) => this.single(q)));
        return;
      }
      for (const q of batch) q.reject(e);
      return;
    }
    const again: Array<Promise<void>> = [];
    batch.forEach((q, i) => {
      const r = results[i];
      const err: MusterError | undefined = r?.errorCode ? errorFromReply(r.errorCode, r.errorMessage) : undefined;
      if (r?.group && !err) q.resolve(r.group);
      else if (err && !err.retryable) q.reject(err);
      else if (r && !err && r.id !== '') again.push(this.transport.read(r.id).then(q.resolve, q.reject));
      else again.push(this.single(q)); // retryable (or no answer at all): the single call settles it
    });
    await Promise.all(again);
  }
}

/** The head does not serve the batched method (grpc UNIMPLEMENTED, kept as the MusterError's cause). */
function unimplemented(e: unknown): boolean {
  const cause = (e as { cause?: { code?: unknown } } | undefined)?.cause;
  return cause?.code === status.UNIMPLEMENTED || (e as { code?: unknown } | undefined)?.code === status.UNIMPLEMENTED;
}

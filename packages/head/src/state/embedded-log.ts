/**
 * The embedded store's log pipeline (group commit): records applied in
 * memory are framed into the open batch; one write() + one fdatasync() makes
 * a whole batch durable, then its watch events are dispatched and every
 * writer waiting on it resolves. Only one batch is on disk at a time; writes
 * arriving meanwhile pile up into the next one, so under load batches grow
 * and fsyncs per write shrink. Once the segment is big enough the state is
 * snapshotted and the log moves to a new segment.
 *
 * Split from embedded.ts: the store decides *what* changes (txns, leases,
 * watches); this module only makes it durable, in order, and says when. A
 * failed write breaks the pipeline for good (memory is ahead of disk): the
 * store refuses everything after it and a restart recovers from the log.
 */
import { ErrorCode, MusterError } from '@muster/common';
import type { WatchEvent } from './store.js';
import type { Keyspace, WalRecord } from './keyspace.js';
import type { History } from './history.js';
import { snapshotFrames } from './snapshot.js';
import { type SegmentWriter, frame, writeSnapshot } from './wal.js';

interface Batch {
  /** Sequence number of its first record. */
  first: number;
  frames: Buffer[];
  bytes: number;
  events: WatchEvent[];
  /** Store revision after the batch's last record. */
  rev: number;
  done: Promise<void>;
  resolve(): void;
  reject(e: Error): void;
}

function newBatch(first: number): Batch {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const done = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  done.catch(() => undefined); // rejections reach the writers that await it
  return { first, frames: [], bytes: 0, events: [], rev: 0, done, resolve, reject };
}

/** What the log tells its store. */
export interface EmbeddedLogHooks {
  /** A batch is durable: hand its events to the watchers. */
  dispatch(events: WatchEvent[]): void;
  /** The log broke (the error every later call gets). */
  failed(err: MusterError): void;
}

export class EmbeddedLog {
  /** Counters for metrics and tests: log batches written (= fdatasyncs), records, snapshots. */
  readonly stats = { batches: 0, records: 0, snapshots: 0 };
  /** Store revision that is on disk: watches replay and compact up to here. */
  durableRev: number;
  /** Set by the first failed write; nothing is accepted after it. */
  broken: MusterError | undefined;
  private collecting: Batch | undefined;
  private flushing: Batch | undefined;
  /** The flush loop, while it runs. */
  private loop: Promise<void> | undefined;
  private snapshotting: Promise<void> | undefined;

  constructor(
    private readonly dataDir: string,
    private readonly ks: Keyspace,
    private readonly history: History,
    private readonly wal: SegmentWriter,
    private seq: number,
    private readonly snapshotBytes: number,
    private readonly hooks: EmbeddedLogHooks,
  ) {
    this.durableRev = ks.rev;
  }

  /**
   * Adds one record (already applied to the keyspace, at `ks.rev`) to the
   * open batch; resolves once that batch is durable.
   */
  append(rec: WalRecord, events: WatchEvent[]): Promise<void> {
    rec.s = ++this.seq;
    if (rec.ch?.length === 0) delete rec.ch;
    let b = this.collecting;
    if (!b) {
      b = this.collecting = newBatch(rec.s);
      // Wait out the current tick so every write issued in it joins the batch.
      if (!this.loop) setImmediate(() => this.kick());
    }
    rec.b = b.first;
    let f: Buffer;
    try {
      f = frame(rec);
    } catch (e) {
      this.fail(e); // applied in memory but cannot be logged: memory is ahead of disk
      throw this.broken!;
    }
    b.frames.push(f);
    b.bytes += f.length;
    b.rev = this.ks.rev;
    if (events.length > 0) {
      for (const e of events) b.events.push(e);
      this.history.add(this.ks.rev, events);
    }
    return b.done;
  }

  /** Waits until everything applied so far (what a read just saw) is durable. */
  async visible(): Promise<void> {
    const b = this.collecting ?? this.flushing;
    if (b) await b.done;
  }

  /** A log write failed: memory is now ahead of disk, so stop accepting anything. */
  fail(e: unknown): void {
    if (this.broken) return; // the first failure is the one to report
    const msg = e instanceof Error ? e.message : String(e);
    this.broken = new MusterError(
      ErrorCode.INTERNAL,
      `state log write failed in ${this.dataDir} (${msg}); restart the head to recover from the log`,
      { cause: e },
    );
    for (const b of [this.flushing, this.collecting]) b?.reject(this.broken);
    this.flushing = this.collecting = undefined;
    this.hooks.failed(this.broken);
  }

  /** Waits for pending batches and a snapshot in progress, then closes the segment. */
  async close(): Promise<void> {
    await (this.collecting ?? this.flushing)?.done.catch(() => undefined);
    await this.loop;
    await this.snapshotting;
    await this.wal.close();
  }

  private kick(): void {
    if (this.loop || !this.collecting || this.broken) return;
    this.loop = this.flushLoop().finally(() => {
      this.loop = undefined;
      this.kick(); // a batch opened while the loop was winding down
    });
  }

  private async flushLoop(): Promise<void> {
    while (this.collecting && !this.broken) {
      const b = (this.flushing = this.collecting);
      this.collecting = undefined;
      try {
        await this.wal.append(b.frames, b.bytes);
      } catch (e) {
        this.fail(e);
        break;
      }
      this.flushing = undefined;
      this.stats.batches++;
      this.stats.records += b.frames.length;
      this.durableRev = b.rev;
      this.hooks.dispatch(b.events);
      b.resolve();
      if (this.wal.bytes >= this.snapshotBytes && !this.snapshotting) await this.startSnapshot();
    }
  }

  /**
   * Captures the state (synchronously, so it is exactly "records 1..seq") and
   * moves the log to a new segment; the snapshot file is written in the
   * background while batches keep flowing into the new segment. Records of
   * the open batch are in the snapshot and will also be in the new segment:
   * replay skips them by sequence number.
   */
  private async startSnapshot(): Promise<void> {
    const seq = this.seq;
    let state: Buffer[];
    try {
      state = snapshotFrames(this.ks.snapshot(seq, this.wal.gen + 1));
      await this.wal.rotate();
    } catch (e) {
      this.fail(e);
      return;
    }
    // A failed snapshot loses nothing (the segments stay); the next one retries.
    this.snapshotting = writeSnapshot(this.dataDir, seq, this.wal.gen, state)
      .then(() => void this.stats.snapshots++, () => undefined)
      .finally(() => (this.snapshotting = undefined));
  }
}

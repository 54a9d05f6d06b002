/**
 * Recovery of the embedded store: newest snapshot, then the log segments
 * after it, record by record in sequence order.
 *
 * A crash can leave only one thing damaged: the last batch of the last
 * segment, written but not yet fdatasync'd (so none of it was acknowledged).
 * Its pages may reach the disk in any order, so a bad frame may even be
 * followed by whole frames *of the same batch*. Every record carries the
 * first sequence number of its batch (`b`), which tells the cases apart:
 *
 *   bad frame, nothing whole after it            → torn tail: truncated, with a warning
 *   bad frame, then only frames of its own batch → torn tail (unacknowledged): truncated
 *   bad frame, then a frame of a later batch     → corruption: the bad frame was durable
 *   (or in a segment before the last, or a frame   and acknowledged; refuse to open
 *    from a log without batch numbers)
 *
 * Refusing is the point: serving the state without the damaged record would
 * silently drop an acknowledged write. The error names the file and offset
 * and the ways out: restore the data directory from a backup, or open once
 * with `repairWal` (muster-head --repair-wal), which truncates the log at the
 * bad frame, saving the bytes it cuts beside the segment. A gap in sequence
 * numbers or an unreadable snapshot is corruption too.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, MusterError } from '@muster/common';
import { History } from './history.js';
import { Keyspace, type WalRecord } from './keyspace.js';
import { readSnapshot } from './snapshot.js';
import { listDataDir, readSegment, segmentName, snapshotName, truncateSegment } from './wal.js';

export interface Recovered {
  ks: Keyspace;
  /** Watch history rebuilt from the replayed records (none before the snapshot). */
  history: History;
  /** Sequence number of the last record applied. */
  seq: number;
  /** The segment to append to. */
  gen: number;
}

export interface RecoveryOptions {
  historyRevisions: number;
  /** Truncate the log at a corrupt frame instead of refusing to open. */
  repairWal?: boolean;
  /** Told what recovery cut off (a torn tail, or what a repair dropped). */
  warn(message: string, details: Record<string, unknown>): void;
}

export async function recover(dir: string, opts: RecoveryOptions): Promise<Recovered> {
  const { segments, snapshots } = await listDataDir(dir);
  let ks = new Keyspace();
  let seq = 0;
  let firstGen = 1;
  const latest = snapshots.at(-1);
  if (latest !== undefined) {
    const file = join(dir, snapshotName(latest));
    const snap = readSnapshot(await readFile(file));
    if ('error' in snap) throw corrupt(`snapshot ${file} is unreadable (${snap.error}); restore the data directory from a backup`);
    ks = Keyspace.restore(snap);
    seq = snap.s;
    firstGen = snap.g;
  }
  const history = new History(opts.historyRevisions, ks.rev);
  let live = segments.filter((g) => g >= firstGen); // older ones are covered by the snapshot
  for (const [i, gen] of live.entries()) {
    const last = i === live.length - 1;
    const seg = await readSegment<WalRecord>(dir, gen);
    for (const rec of seg.records) {
      if (rec.s <= seq) continue; // already in the snapshot
      if (rec.s !== seq + 1) throw corrupt(`log record ${seq + 1} is missing in ${dir}`);
      const events = ks.replay(rec);
      seq = rec.s;
      if (events.length > 0) history.add(rec.r, events);
    }
    if (seg.validBytes === seg.size) continue;
    const dropped = seg.size - seg.validBytes;
    const at = { file: seg.path, offset: seg.validBytes, droppedBytes: dropped };
    // The bad frame would have been record seq + 1; frames of its own batch started at or before it.
    const badSeq = (seg.records.at(-1)?.s ?? seq) + 1;
    const laterBatch = seg.after.find((f) => f.record.b === undefined || f.record.b > badSeq);
    if (last && !laterBatch) {
      opts.warn(`state log ${seg.path} ends in a torn write (never acknowledged): dropping ${dropped} bytes from byte ${seg.validBytes}`, at);
      await truncateSegment(seg.path, seg.validBytes, false);
      continue;
    }
    const later = live.slice(i + 1);
    const what = laterBatch
      ? `a bad frame at byte ${seg.validBytes} is followed by valid records written after it (record ${laterBatch.record.s} at byte ${laterBatch.offset})`
      : `a bad frame at byte ${seg.validBytes} is followed by ${later.length} more log segment(s)`;
    if (!opts.repairWal) {
      throw corrupt(
        `${seg.path}: ${what}, so acknowledged writes would be lost. Restore the data directory from a backup, ` +
          `or start once with --repair-wal to truncate the log at byte ${seg.validBytes} (dropping ${dropped} bytes` +
          `${later.length > 0 ? ` and ${later.length} later segment(s)` : ''}; what is cut is saved beside the segment)`,
        at,
      );
    }
    opts.warn(`repairing state log ${seg.path}: ${what}; truncating at byte ${seg.validBytes}, dropping ${dropped} bytes and ${later.length} later segment(s) (saved as ${seg.path}.dropped-${seg.validBytes})`, at);
    await truncateSegment(seg.path, seg.validBytes, true);
    for (const g of later) {
      const path = join(dir, segmentName(g));
      await truncateSegment(path, 0, true);
      await rm(path);
    }
    live = live.slice(0, i + 1);
    break;
  }
  return { ks, history, seq, gen: live.at(-1) ?? firstGen };
}

function corrupt(message: string, details?: Record<string, unknown>): MusterError {
  return new MusterError(ErrorCode.STORE_CORRUPT, `embedded store data is corrupt: ${message}`, details ? { details } : undefined);
}

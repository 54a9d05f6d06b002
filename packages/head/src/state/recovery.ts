/**
 * Recovery of the embedded store: newest snapshot, then the log segments
 * after it, record by record in sequence order.
 *
 * Only the last segment may end in a torn record (that is where a crash
 * stops the writer); it is cut off and the store goes on appending there.
 * Anything else that does not read back (a damaged middle segment, a gap in
 * sequence numbers, an unreadable snapshot) is corruption: the store refuses
 * to open rather than serve state with silent holes.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, MusterError } from '@muster/common';
import { History } from './history.js';
import { Keyspace, type SnapshotState, type WalRecord } from './keyspace.js';
import { listDataDir, readFrames, readSegment, snapshotName } from './wal.js';

export interface Recovered {
  ks: Keyspace;
  /** Watch history rebuilt from the replayed records (none before the snapshot). */
  history: History;
  /** Sequence number of the last record applied. */
  seq: number;
  /** The segment to append to. */
  gen: number;
}

export async function recover(dir: string, historyRevisions: number): Promise<Recovered> {
  const { segments, snapshots } = await listDataDir(dir);
  let ks = new Keyspace();
  let seq = 0;
  let firstGen = 1;
  const latest = snapshots.at(-1);
  if (latest !== undefined) {
    const file = join(dir, snapshotName(latest));
    const snap = readFrames<SnapshotState>(await readFile(file)).records[0];
    if (!snap) throw corrupt(`snapshot ${file} is unreadable`);
    ks = Keyspace.restore(snap);
    seq = snap.s;
    firstGen = snap.g;
  }
  const history = new History(historyRevisions, ks.rev);
  const live = segments.filter((g) => g >= firstGen); // older ones are covered by the snapshot
  for (const [i, gen] of live.entries()) {
    const last = i === live.length - 1;
    const { records, torn } = await readSegment<WalRecord>(dir, gen, last);
    if (torn && !last) throw corrupt(`log segment ${gen} in ${dir} is damaged before its end`);
    for (const rec of records) {
      if (rec.s <= seq) continue; // already in the snapshot
      if (rec.s !== seq + 1) throw corrupt(`log record ${seq + 1} is missing in ${dir}`);
      const events = ks.replay(rec);
      seq = rec.s;
      if (events.length > 0) history.add(rec.r, events);
    }
  }
  return { ks, history, seq, gen: live.at(-1) ?? firstGen };
}

function corrupt(message: string): MusterError {
  return new MusterError(ErrorCode.INTERNAL, `embedded store data is corrupt: ${message}`);
}

/**
 * The snapshot's form on disk: a header frame, then the keys in chunks of
 * about `SNAPSHOT_CHUNK_BYTES`, so no frame comes near the frame limit the
 * reader enforces (wal.ts `MAX_FRAME`) however large the state grows.
 *
 *   frame 0: { v: 2, s, r, g, nl, ls, n }   n = number of key chunks
 *   frame 1..n: { kv: [...] }               keys in order
 *
 * Version 1 (the whole state in one frame) is still read. A snapshot file
 * is complete once it exists (written to .tmp, fdatasync'd, renamed), so
 * anything short of exactly n + 1 whole frames is corruption.
 */
import { splitBySize } from '@muster/common';
import type { SnapshotState } from './keyspace.js';
import { frame, readFrames } from './wal.js';

/** Target payload size of one chunk of keys. */
export const SNAPSHOT_CHUNK_BYTES = 4 << 20;

type Header = Omit<SnapshotState, 'v' | 'kv'> & { v: 2; n: number };
interface Chunk {
  kv: SnapshotState['kv'];
}

/** Frames a captured state; a key larger than a chunk gets a chunk of its own. */
export function snapshotFrames(state: SnapshotState, chunkBytes = SNAPSHOT_CHUNK_BYTES): Buffer[] {
  // Each key's size: key, value, revisions and lease. No keys, no chunk.
  const chunks = state.kv.length === 0 ? [] : splitBySize(state.kv, (entry) => Buffer.byteLength(entry[0]) + entry[1].length + 48, chunkBytes, 0);
  const { v: _v, kv: _kv, ...rest } = state;
  const header: Header = { ...rest, v: 2, n: chunks.length };
  return [frame(header), ...chunks.map((kv) => frame({ kv } satisfies Chunk))];
}

/** The state in a snapshot file, or why it cannot be read. */
export function readSnapshot(buf: Buffer): SnapshotState | { error: string } {
  const { records, validBytes } = readFrames<Header | SnapshotState | Chunk>(buf, 0);
  if (validBytes !== buf.length) return { error: `bad frame at byte ${validBytes} of ${buf.length}` };
  const head = records[0];
  if (!head || !('v' in head)) return { error: 'no header frame' };
  if (head.v === 1) return records.length === 1 ? head : { error: 'extra frames after a version 1 snapshot' };
  if (head.v !== 2) return { error: `unknown snapshot version ${String((head as { v: unknown }).v)}` };
  if (records.length !== head.n + 1) return { error: `${records.length - 1} key chunks where the header says ${head.n}` };
  const kv: SnapshotState['kv'] = [];
  for (const chunk of records.slice(1)) {
    if (!('kv' in chunk) || 'v' in chunk) return { error: 'a key chunk is malformed' };
    for (const entry of chunk.kv) kv.push(entry);
  }
  const { n: _n, v: _v, ...rest } = head;
  return { ...rest, v: 1, kv };
}

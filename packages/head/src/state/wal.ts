/**
 * The embedded store's files: write-ahead log segments and snapshots.
 *
 * Every record on disk is one frame:
 *
 *   [u32 LE payload length][u32 LE crc32(payload)][payload: msgpack]
 *
 * A crash can leave the last batch of the last segment half-written; the
 * length and checksum catch that (a zero-filled tail, which some filesystems
 * leave after a crash, is caught by the length, as no payload is empty).
 * Whether a bad frame is such a torn tail or corruption of written data is
 * decided by recovery.ts from what `readFrames` finds after it.
 *
 * Layout of the data directory:
 *   LOCK                   held with flock(2) by the process that has the store open (lock.ts)
 *   wal-<gen>.log          log segments, replayed in generation order
 *   snap-<seq>.snap        full state as of record `seq` (newest wins), one or more frames
 * A snapshot is written to a .tmp file, fdatasync'd and renamed, so a
 * snapshot file that exists is complete; segments it covers are deleted after.
 */
import { open, readdir, readFile, rename, rm, truncate, writeFile, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { join } from 'node:path';
import { ErrorCode, MusterError, decode, encode } from '@muster/common';

const HEADER = 8;
/**
 * The largest payload a frame may carry, on write and on read: a length above
 * it is garbage, not a record. Writers that could exceed it (the snapshot)
 * split their data into several frames (snapshot.ts).
 */
export const MAX_FRAME = 1 << 30;

export function frame(value: unknown): Buffer {
  const payload = encode(value);
  if (payload.length > MAX_FRAME) {
    throw new MusterError(ErrorCode.INTERNAL, `a ${payload.length}-byte record exceeds the log's frame limit of ${MAX_FRAME} bytes`);
  }
  const buf = Buffer.allocUnsafe(HEADER + payload.length);
  buf.writeUInt32LE(payload.length, 0);
  buf.writeUInt32LE(crc32(payload), 4);
  buf.set(payload, HEADER);
  return buf;
}

/** The whole frame at `pos` and where it ends, or undefined if its length, checksum or payload is bad. */
function frameAt<T>(buf: Buffer, pos: number): { record: T; end: number } | undefined {
  if (pos + HEADER > buf.length) return undefined;
  const len = buf.readUInt32LE(pos);
  if (len === 0 || len > MAX_FRAME || pos + HEADER + len > buf.length) return undefined;
  const payload = buf.subarray(pos + HEADER, pos + HEADER + len);
  if (crc32(payload) !== buf.readUInt32LE(pos + 4)) return undefined;
  try {
    return { record: decode<T>(payload), end: pos + HEADER + len };
  } catch {
    return undefined;
  }
}

export interface FrameScan<T> {
  /** The whole frames at the start of the buffer. */
  records: T[];
  /** Where the first bad frame starts (buf.length when all are whole). */
  validBytes: number;
  /**
   * Whole frames found after the first bad one (at most `maxAfter`), with
   * their offsets: evidence that the bad frame is not simply a torn tail.
   */
  after: { offset: number; record: T }[];
}

/**
 * Reads the frames of a segment or snapshot. Past the first bad frame it
 * keeps looking for whole frames: first where the bad frame's own length
 * says the next one starts (a flipped payload byte leaves the length
 * intact), then byte by byte. A random match needs a plausible length and a
 * matching CRC-32 and a decodable payload, so it is practically impossible.
 */
export function readFrames<T>(buf: Buffer, maxAfter = 1_000): FrameScan<T> {
  const records: T[] = [];
  let pos = 0;
  for (let f = frameAt<T>(buf, pos); f; f = frameAt<T>(buf, pos)) {
    records.push(f.record);
    pos = f.end;
  }
  const after: FrameScan<T>['after'] = [];
  if (pos < buf.length) {
    const len = buf.length - pos >= HEADER ? buf.readUInt32LE(pos) : 0;
    const skip = len > 0 && pos + HEADER + len < buf.length ? pos + HEADER + len : undefined;
    let p = skip !== undefined && frameAt(buf, skip) ? skip : pos + 1;
    while (p + HEADER <= buf.length && after.length < maxAfter) {
      const f = frameAt<T>(buf, p);
      if (!f) {
        p++;
        continue;
      }
      after.push({ offset: p, record: f.record });
      p = f.end;
    }
  }
  return { records, validBytes: pos, after };
}

const pad = (n: number, width: number) => String(n).padStart(width, '0');
export const segmentName = (gen: number) => `wal-${pad(gen, 10)}.log`;
export const snapshotName = (seq: number) => `snap-${pad(seq, 16)}.snap`;

/** What the data directory holds, oldest first. */
export async function listDataDir(dir: string): Promise<{ segments: number[]; snapshots: number[] }> {
  const names = await readdir(dir);
  const num = (re: RegExp) =>
    names.flatMap((n) => {
      const m = re.exec(n);
      return m ? [Number(m[1])] : [];
    }).sort((a, b) => a - b);
  return { segments: num(/^wal-(\d+)\.log$/), snapshots: num(/^snap-(\d+)\.snap$/) };
}

/** Makes a directory entry change (create, rename) itself durable. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Reads one segment whole: its frames, and what follows the first bad one. */
export async function readSegment<T>(dir: string, gen: number): Promise<FrameScan<T> & { path: string; size: number }> {
  const path = join(dir, segmentName(gen));
  const buf = await readFile(path);
  return { ...readFrames<T>(buf), path, size: buf.length };
}

/**
 * Cuts a segment at `offset`. The bytes cut off are first saved beside it
 * (`<segment>.dropped-<offset>`), so even a repair loses nothing for good.
 */
export async function truncateSegment(path: string, offset: number, keepDropped: boolean): Promise<void> {
  if (keepDropped) {
    const buf = await readFile(path);
    await writeFile(`${path}.dropped-${offset}`, buf.subarray(offset));
  }
  await truncate(path, offset);
}

async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
}

/** Appends batches of frames to the current segment; one write + fdatasync per batch. */
export class SegmentWriter {
  private constructor(
    private fh: FileHandle,
    private readonly dir: string,
    public gen: number,
    public bytes: number,
  ) {}

  static async open(dir: string, gen: number): Promise<SegmentWriter> {
    const fh = await open(join(dir, segmentName(gen)), 'a');
    const { size } = await fh.stat();
    await syncDir(dir);
    return new SegmentWriter(fh, dir, gen, size);
  }

  async append(frames: Buffer[], bytes: number): Promise<void> {
    const buf = frames.length === 1 ? frames[0]! : Buffer.concat(frames, bytes);
    await writeAll(this.fh, buf);
    await this.fh.datasync();
    this.bytes += buf.length;
  }

  /** Starts the next segment; later batches go there. */
  async rotate(): Promise<void> {
    const next = await SegmentWriter.open(this.dir, this.gen + 1);
    await this.fh.close();
    this.fh = next.fh;
    this.gen = next.gen;
    this.bytes = next.bytes;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** Writes a snapshot atomically, then deletes the files it makes obsolete. */
export async function writeSnapshot(dir: string, seq: number, firstGen: number, frames: Buffer[]): Promise<void> {
  const tmp = join(dir, `${snapshotName(seq)}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    for (const f of frames) await writeAll(fh, f);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, snapshotName(seq)));
  await syncDir(dir);
  const { segments, snapshots } = await listDataDir(dir);
  for (const g of segments) if (g < firstGen) await rm(join(dir, segmentName(g)), { force: true });
  for (const s of snapshots) if (s < seq) await rm(join(dir, snapshotName(s)), { force: true });
  for (const n of await readdir(dir)) if (n.endsWith('.snap.tmp')) await rm(join(dir, n), { force: true }); // left by a crash
}

/**
 * The embedded store's files: write-ahead log segments, snapshots, the lock.
 *
 * Every record on disk is one frame:
 *
 *   [u32 LE payload length][u32 LE crc32(payload)][payload: msgpack]
 *
 * A crash can leave the last frame of the last segment half-written; the
 * length and checksum catch that (a zero-filled tail, which some filesystems
 * leave after a crash, is caught by the length, as no payload is empty), and
 * recovery drops the torn frame and truncates it away, so an incomplete record
 * is never read as a short or garbled one.
 *
 * Layout of the data directory:
 *   LOCK                   pid of the process that has the store open
 *   wal-<gen>.log          log segments, replayed in generation order
 *   snap-<seq>.snap        full state as of record `seq` (newest wins)
 * A snapshot is written to a .tmp file, fdatasync'd and renamed, so a
 * snapshot file that exists is complete; segments it covers are deleted after.
 */
import { open, readdir, readFile, rename, rm, truncate, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { join } from 'node:path';
import { ErrorCode, MusterError, decode, encode } from '@muster/common';

const HEADER = 8;
/** Larger than any sane record: a length above it is garbage, not a record. */
const MAX_FRAME = 1 << 30;

export function frame(value: unknown): Buffer {
  const payload = encode(value);
  const buf = Buffer.allocUnsafe(HEADER + payload.length);
  buf.writeUInt32LE(payload.length, 0);
  buf.writeUInt32LE(crc32(payload), 4);
  buf.set(payload, HEADER);
  return buf;
}

/**
 * Decodes the complete frames at the start of `buf`. `validBytes` is where the
 * first torn or corrupt frame starts (buf.length when all are whole).
 */
export function readFrames<T>(buf: Buffer): { records: T[]; validBytes: number } {
  const records: T[] = [];
  let pos = 0;
  while (pos + HEADER <= buf.length) {
    const len = buf.readUInt32LE(pos);
    if (len === 0 || len > MAX_FRAME || pos + HEADER + len > buf.length) break;
    const payload = buf.subarray(pos + HEADER, pos + HEADER + len);
    if (crc32(payload) !== buf.readUInt32LE(pos + 4)) break;
    try {
      records.push(decode<T>(payload));
    } catch {
      break;
    }
    pos += HEADER + len;
  }
  return { records, validBytes: pos };
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

/** Reads one segment; a torn tail is cut off the file when `repair` is set. */
export async function readSegment<T>(dir: string, gen: number, repair: boolean): Promise<{ records: T[]; torn: boolean }> {
  const path = join(dir, segmentName(gen));
  const buf = await readFile(path);
  const { records, validBytes } = readFrames<T>(buf);
  const torn = validBytes < buf.length;
  if (torn && repair) await truncate(path, validBytes);
  return { records, torn };
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
    let off = 0;
    while (off < buf.length) off += (await this.fh.write(buf, off, buf.length - off)).bytesWritten;
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
export async function writeSnapshot(dir: string, seq: number, firstGen: number, state: Buffer): Promise<void> {
  const tmp = join(dir, `${snapshotName(seq)}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(state);
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

/**
 * Takes the data directory's lock: LOCK is created exclusively and holds our
 * pid. A lock whose pid is alive (this process included: two stores in one
 * process would corrupt each other just the same) is refused; the lock of a
 * dead process is taken over. Returns the release function.
 */
export async function lockDataDir(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, 'LOCK');
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return async () => {
        const owner = await readFile(path, 'utf8').catch(() => '');
        if (Number.parseInt(owner, 10) === process.pid) await rm(path, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw e;
    }
    const pid = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
      throw new MusterError(
        ErrorCode.FAILED_PRECONDITION,
        `state directory ${dir} is locked by process ${pid} (another head is using it); stop that process or use another --data-dir`,
        { details: { dataDir: dir, pid } },
      );
    }
    await rm(path, { force: true }); // stale: its process is gone
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

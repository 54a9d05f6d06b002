/**
 * Shard log files: `<dataDir>/logs/<gangId>/<attempt>/rank-<rank>.log`, one per
 * rank, stdout and stderr interleaved, written by the shard itself through an
 * O_APPEND fd (no pipe through the agent, so an agent crash loses no output).
 *
 * Size bound, by truncate-copy: the child holds the fd, so the file cannot be
 * renamed away from under it (it would keep writing into the renamed file).
 * Instead the supervisor checks the size every few hundred ms and, past
 * logMaxBytes, copies the file to `<file>.1` (replacing the older copy) and
 * truncates the original to 0; thanks to O_APPEND the child's next write lands
 * at the new end. Costs, accepted: the bound is soft (a shard may write one
 * check period's worth past it), and bytes written between the copy and the
 * truncate are lost (logrotate's copytruncate has the same window).
 */
import { closeSync, copyFileSync, fstatSync, mkdirSync, openSync, readSync, statSync, truncateSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export function logPathOf(dataDir: string, gangId: string, attempt: number, rank: number): string {
  return join(dataDir, 'logs', gangId, String(attempt), `rank-${rank}.log`);
}

/** Opens (creating the directories) the log file for appending; the fd is handed to the child. */
export function openLogFd(file: string): number {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  return openSync(file, 'a', 0o600);
}

/** Truncate-copy rotation when `file` reached `maxBytes`; true when it rotated. */
export function rotateIfNeeded(file: string, maxBytes: number): boolean {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    return false;
  }
  if (size < maxBytes) return false;
  copyFileSync(file, `${file}.1`);
  truncateSync(file, 0);
  return true;
}

/**
 * The last lines of a rank's log across its rotation: a rotation just before
 * the rank exits leaves the current file empty or short, and its last lines
 * in `<file>.1`; those come first, then the current file's, within the same
 * bounds.
 */
export function readTailRotated(file: string, maxBytes = 4096, maxLines = 20): string {
  const now = readTail(file, maxBytes, maxLines);
  const have = now === '' ? 0 : now.split('\n').length;
  if (have >= maxLines || Buffer.byteLength(now) >= maxBytes / 2) return now;
  const before = readTail(`${file}.1`, maxBytes - Buffer.byteLength(now), maxLines - have);
  return before === '' ? now : now === '' ? before : `${before}\n${now}`;
}

/** The last `maxLines` lines within the last `maxBytes` of the file ('' when there is none). */
export function readTail(file: string, maxBytes = 4096, maxLines = 20): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const start = Math.max(0, size - maxBytes);
    const buf = Buffer.alloc(size - start);
    const n = readSync(fd, buf, 0, buf.length, start);
    let lines = buf.subarray(0, n).toString('utf8').split('\n');
    if (start > 0) lines = lines.slice(1); // the first one was cut mid-line
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-maxLines).join('\n');
  } finally {
    closeSync(fd);
  }
}

export interface FollowOptions {
  tailBytes: number;
  follow: boolean;
  signal?: AbortSignal | undefined;
  /** True once nothing more will be written (the shard exited): follow then ends after a last read. */
  isDone: () => boolean;
  pollMs: number;
}

const CHUNK = 64 * 1024;

/**
 * The last `tailBytes` of `file`, then (follow) what gets appended, by polling
 * the size. A size below our position means a rotation happened: the bytes we
 * had not read yet are at the same offsets in `<file>.1`, read from there, then
 * go on from 0. (Best effort: two rotations between polls lose the middle.)
 */
export async function* followLog(file: string, o: FollowOptions): AsyncGenerator<Uint8Array> {
  const fh = await open(file, 'r');
  try {
    let pos = Math.max(0, (await fh.stat()).size - o.tailBytes);
    for (;;) {
      if (o.signal?.aborted) return;
      const done = o.isDone(); // sampled before reading: once done, this read is the last one
      const size = (await fh.stat()).size;
      if (size < pos) {
        yield* readFrom(`${file}.1`, pos);
        pos = 0;
      }
      for await (const chunk of readRange(fh, pos, size)) {
        pos += chunk.length;
        yield chunk;
      }
      if (!o.follow || done) return;
      await sleep(o.pollMs, o.signal);
    }
  } finally {
    await fh.close();
  }
}

async function* readFrom(file: string, pos: number): AsyncGenerator<Uint8Array> {
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch {
    return;
  }
  try {
    yield* readRange(fh, pos, (await fh.stat()).size);
  } finally {
    await fh.close();
  }
}

async function* readRange(fh: FileHandle, from: number, to: number): AsyncGenerator<Uint8Array> {
  let pos = from;
  while (pos < to) {
    const buf = Buffer.alloc(Math.min(CHUNK, to - pos));
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
    if (bytesRead === 0) return;
    pos += bytesRead;
    yield buf.subarray(0, bytesRead);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(finish, ms);
    function finish(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', finish);
      resolve();
    }
    signal?.addEventListener('abort', finish, { once: true });
  });
}

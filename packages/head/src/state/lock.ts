/**
 * The data directory's lock: an flock(2) lock on `<dir>/LOCK`, held for as
 * long as the store is open, so two processes never write one log.
 *
 * Why a kernel lock and not a pid file: a pid file says who *was* there. A
 * container restarted with the pid of its dead predecessor finds its own pid
 * in the file; a head on another host sharing the volume sees a pid that means
 * nothing on its host. An flock lock is dropped by the kernel whenever its
 * holder dies, however it dies, and Linux carries it across hosts on NFS (as
 * a POSIX lock through the lock manager).
 *
 * Node has no flock in core, and the packages that add it are native addons
 * (`fs-ext` compiles with node-gyp at install, with no prebuilt binaries, and
 * would need pnpm's build-script allowance everywhere the project installs);
 * `proper-lockfile` is a mkdir + mtime lease that a paused process loses, not
 * a lock. So the lock is held by util-linux's `flock(1)` in a child process:
 *
 *   flock --exclusive --timeout T --close LOCK sh -c 'echo locked; exec cat'
 *
 * It prints `locked` once it holds the lock, and holds it until its stdin
 * (a pipe only this process writes) closes: on release, or when this process
 * dies, even by SIGKILL. It runs in its own process group, so a Ctrl-C meant
 * for the head does not drop the lock under it; if it exits anyway, `lost`
 * resolves and the store stops writing.
 *
 * The file's content names the holder (pid, host, start time) for the error
 * a second process gets; it is information only, never the lock itself.
 */
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, MusterError } from '@muster/common';

export interface DataDirLock {
  /** Releases the lock (idempotent). */
  release(): Promise<void>;
  /** Resolves if the lock is lost while held (its holder process was killed). */
  lost: Promise<void>;
  /** The flock(1) process holding the lock (for diagnostics and tests). */
  holderPid: number;
}

/** How long a start waits for a lock whose holder is going away (a head killed a moment ago). */
const WAIT_SECONDS = 2;
/** Exit code flock(1) is told to use when the lock is held by someone else. */
const CONFLICT = 75;

export async function lockDataDir(dir: string, waitSeconds = WAIT_SECONDS): Promise<DataDirLock> {
  const path = join(dir, 'LOCK');
  const child = spawn('flock', ['--exclusive', '--timeout', String(waitSeconds), '--conflict-exit-code', String(CONFLICT), '--close', path, 'sh', '-c', 'echo locked; exec cat'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  child.stdin.on('error', () => undefined); // EPIPE once the holder is gone: `lost` reports that
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2_000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const locked = await new Promise<boolean>((resolve, reject) => {
    child.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new MusterError(
          ErrorCode.FAILED_PRECONDITION,
          e.code === 'ENOENT'
            ? `cannot lock state directory ${dir}: the flock command (util-linux) is not installed`
            : `cannot lock state directory ${dir}: ${e.message}`,
          { cause: e },
        ),
      ),
    );
    child.stdout.once('data', () => resolve(true));
    exited.then(() => resolve(false), () => resolve(false)); // exited never rejects
  });
  if (!locked) {
    const code = await exited;
    const holder = (await readFile(path, 'utf8').catch(() => '')).trim();
    if (code === CONFLICT) {
      throw new MusterError(
        ErrorCode.FAILED_PRECONDITION,
        `state directory ${dir} is locked by another process${holder ? ` (${holder})` : ''}: another head is using it; stop that head or use another --data-dir`,
        { details: { dataDir: dir, holder } },
      );
    }
    throw new MusterError(ErrorCode.FAILED_PRECONDITION, `cannot lock state directory ${dir}: flock exited with ${String(code)}: ${stderr.trim()}`);
  }
  for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { unref?: () => void }).unref?.();
  child.unref(); // the lock does not keep the process alive, as an open file would not

  let released = false;
  const lost = exited.then(() => {
    if (!released) return;
    return new Promise<void>(() => undefined); // released on purpose: never "lost"
  });
  await writeFile(path, `pid ${process.pid} on ${hostname()} since ${new Date().toISOString()}\n`);
  return {
    lost,
    holderPid: child.pid!,
    release: async () => {
      if (released) return;
      released = true;
      await writeFile(path, '').catch(() => undefined); // still ours until stdin closes
      child.ref(); // until it has let go: a process exiting right after must not outrun the release
      child.stdin.end();
      await exited;
    },
  };
}

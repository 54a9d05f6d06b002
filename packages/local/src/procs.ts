/**
 * Child processes for tests and `muster up`: every process is started in its
 * own process group (so a stop reaches its children too), tagged with
 * MUSTER_TEST_RUN when set (so the suite can prove nothing was left behind),
 * stopped with SIGTERM → grace → SIGKILL, and killed when this process exits.
 *
 * Tags: the test run's id (MUSTER_TEST_RUN, set by the suite's global setup),
 * or a narrower tag below it, `<run id>/<more>` (a LocalCluster tags its own
 * children so that it can tell its shards from another cluster's); both count
 * as the run's processes for `findTaggedProcesses(runId)`.
 *
 * No secret on a command line: argv is readable by every user of the
 * machine (`ps`, /proc/<pid>/cmdline), so `spawnManaged` refuses a flag that
 * carries one (`--token`, `--nats-password`, …; SECRET_FLAG) and says to pass
 * it by file or environment variable, as the kit itself does.
 */
import { CLIENT_ENV, SHARD_ENV } from '@muster/contracts';
import { readdir, readFile } from 'node:fs/promises';
import { execa, type ResultPromise } from 'execa';

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  readonly running: boolean;
  /** Everything the process wrote to stdout+stderr so far (bounded). */
  output(): string;
  /** Resolves with the first output line that `match` accepts; rejects on exit or timeout. */
  waitForLine(match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
  /**
   * SIGTERM the process group, SIGKILL after `graceMs`. A frozen (SIGSTOPped)
   * process is sent SIGCONT right after the SIGTERM, so it can act on it.
   */
  stop(graceMs?: number): Promise<void>;
  /** Send a signal to the whole process group. */
  signal(sig: NodeJS.Signals): void;
}

export interface SpawnOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Called with each output line (for forwarding or logging). */
  onLine?: (line: string) => void;
  /** Bytes of output kept for output(); default 256 KiB. */
  keepBytes?: number;
  /** MUSTER_TEST_RUN for this child; default: this process's MUSTER_TEST_RUN. */
  tag?: string;
}

const live = new Set<ManagedProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const p of live) p.signal('SIGKILL');
  });
}

/**
 * The client variables (CLIENT_ENV) unset: heads and workers read settings of
 * their own under several of the same names (MUSTER_TLS_CERT, MUSTER_INSECURE,
 * MUSTER_ADDRESS, ...), so a launcher's child must not inherit what a user
 * exported for the CLI (`muster up` prints such exports).
 */
export const WITHOUT_CLIENT_ENV: Readonly<Record<string, undefined>> = Object.freeze(Object.fromEntries(Object.values(CLIENT_ENV).map((k) => [k, undefined])));

/** Flags whose value is a secret (as `--flag value` or `--flag=value`). */
export const SECRET_FLAG = /^--(token|nats-password|password|seed|api-key)(=|$)/;

export function spawnManaged(name: string, file: string, args: string[], opts: SpawnOptions = {}): ManagedProcess {
  const secret = args.find((a) => SECRET_FLAG.test(a));
  if (secret !== undefined) {
    throw new Error(`${name}: ${secret.split('=')[0]} would put a secret on its command line, which every user of this machine can read; pass it by file (--token-file) or environment variable instead`);
  }
  installExitHook();
  const tag = opts.tag ?? process.env[SHARD_ENV.TEST_RUN];
  const child: ResultPromise = execa(file, args, {
    cwd: opts.cwd,
    env: { ...opts.env, ...(tag ? { [SHARD_ENV.TEST_RUN]: tag } : {}) },
    extendEnv: true,
    detached: true,
    cleanup: true,
    reject: false,
    stdin: 'ignore',
    all: true,
    buffer: false,
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: could not start ${file}`);
  const keep = opts.keepBytes ?? 256 * 1024;
  // Output kept as chunks, trimmed from the front: a chatty child must not
  // cost a copy of the whole buffer per chunk.
  const chunks: string[] = [];
  let kept = 0;
  let partial = '';
  const out = () => {
    const all = chunks.join('');
    return all.length > keep ? all.slice(-keep) : all;
  };
  let running = true;
  const waiters = new Set<(line: string) => void>();
  child.all?.setEncoding('utf8');
  child.all?.on('data', (chunk: string) => {
    chunks.push(chunk);
    kept += chunk.length;
    while (chunks.length > 1 && kept - chunks[0]!.length >= keep) kept -= chunks.shift()!.length;
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      opts.onLine?.(line);
      for (const w of [...waiters]) w(line);
    }
  });
  const exited = child.then((r) => {
    running = false;
    live.delete(proc);
    return r.signal ?? r.exitCode ?? -1;
  });

  const proc: ManagedProcess = {
    name,
    pid,
    exited,
    get running() {
      return running;
    },
    output: out,
    waitForLine(match, timeoutMs = 30_000) {
      return new Promise<string>((resolve, reject) => {
        const done = (err: Error | null, line?: string) => {
          clearTimeout(timer);
          waiters.delete(onLine);
          if (err) reject(err);
          else resolve(line!);
        };
        const onLine = (line: string) => {
          if (match(line)) done(null, line);
        };
        const timer = setTimeout(
          () => done(new Error(`${name}: no matching output line within ${timeoutMs} ms\n${out().slice(-4000)}`)),
          timeoutMs,
        );
        waiters.add(onLine);
        void exited.then((code) => done(new Error(`${name} exited (${code}) before the awaited line\n${out().slice(-4000)}`)));
      });
    },
    signal(sig) {
      try {
        process.kill(-pid, sig);
      } catch {
        // already gone
      }
    },
    async stop(graceMs = 5_000) {
      if (!running) return;
      proc.signal('SIGTERM');
      // A stopped (SIGSTOP) process keeps SIGTERM pending until it runs again.
      proc.signal('SIGCONT');
      const timer = setTimeout(() => proc.signal('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      // The leader is gone; make sure nothing of its group lingers.
      proc.signal('SIGKILL');
    },
  };
  live.add(proc);
  return proc;
}

export interface TaggedProcess {
  pid: number;
  cmdline: string;
}

/** Processes whose environment carries MUSTER_TEST_RUN=<runId> or MUSTER_TEST_RUN=<runId>/<anything>. */
export async function findTaggedProcesses(runId: string): Promise<TaggedProcess[]> {
  const needle = `MUSTER_TEST_RUN=${runId}`;
  const found: TaggedProcess[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const env = await readFile(`/proc/${entry}/environ`, 'utf8');
      if (!env.split('\0').some((v) => v === needle || v.startsWith(`${needle}/`))) continue;
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      if (/\) Z /.test(stat)) continue; // zombie: already dead, awaiting its parent
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').join(' ').trim();
      found.push({ pid: Number(entry), cmdline });
    } catch {
      // process vanished or is not ours to read
    }
  }
  return found;
}

export async function killTagged(runId: string): Promise<void> {
  for (const p of await findTaggedProcesses(runId)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

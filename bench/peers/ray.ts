/**
 * Ray's side of bench/peers, driven from TypeScript: make (once) the
 * virtualenv with the pinned Ray, start `ray_peers.py` in it and read its JSON
 * lines. The Python file does the measuring; this file only starts it, reads
 * its results, and lets the runner point wrk at Serve's proxy while Ray is up.
 *
 * The virtualenv lives under ~/.cache/muster/peers-venv (BENCH_PEERS_VENV
 * moves it) and is reused when its Ray is the pinned version; `python3 -m venv`
 * and pip are the only tools it needs (pip reaches PyPI, or a mirror pip is
 * configured for).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The Ray release measured; docs/benchmarks.md names it with every Ray number. */
export const RAY_VERSION = '2.60.0';

const script = fileURLToPath(new URL('./ray_peers.py', import.meta.url));

export function venvDir(): string {
  return process.env.BENCH_PEERS_VENV ?? join(homedir(), '.cache', 'muster', 'peers-venv');
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status}`);
}

/** The virtualenv's python, with ray[serve]==RAY_VERSION installed in it (made or mended when not). */
export function ensureRayVenv(): string {
  const dir = venvDir();
  const python = join(dir, 'bin', 'python');
  const version = existsSync(python) ? spawnSync(python, ['-c', 'import ray, ray.serve; print(ray.__version__)'], { encoding: 'utf8' }).stdout?.trim() : undefined;
  if (version === RAY_VERSION) return python;
  if (!existsSync(python)) {
    console.error(`bench/peers: making a virtualenv at ${dir} (python3 -m venv)`);
    run('python3', ['-m', 'venv', dir]);
  }
  console.error(`bench/peers: installing ray[serve]==${RAY_VERSION} into ${dir} (a few minutes, once)`);
  run(python, ['-m', 'pip', 'install', '--quiet', `ray[serve]==${RAY_VERSION}`]);
  return python;
}

/** One line the Python side printed: a result ({shape}) or an event ({event}). */
export type RayLine = { shape: string; [k: string]: unknown } | { event: string; [k: string]: unknown };

export interface RaySession {
  /** The next line with `shape` or `event` equal to `name`; rejects if Ray exits first. */
  next(name: string, timeoutMs: number): Promise<Record<string, unknown>>;
  /** Tells the Python side its HTTP shape is measured (it shuts Serve and Ray down). */
  release(): void;
  /** Waits for the Python process to exit (kills it after `graceMs`). */
  close(graceMs?: number): Promise<void>;
}

/**
 * Starts `ray_peers.py` with `args`. Lines are queued as they come; `next`
 * takes them in order, so the caller reads results shape by shape.
 */
export function startRay(python: string, args: string[]): RaySession {
  const child: ChildProcess = spawn(python, [script, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    // Ray's defaults (its token authentication included), without usage statistics.
    env: { ...process.env, RAY_USAGE_STATS_ENABLED: '0', PYTHONUNBUFFERED: '1' },
  });
  const lines: Array<Record<string, unknown>> = [];
  let wake: (() => void) | undefined;
  let exited: string | undefined;
  const stderrTail: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    try {
      lines.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      stderrTail.push(l); // Ray itself writes to stdout now and then
    }
    wake?.();
  });
  createInterface({ input: child.stderr! }).on('line', (l) => {
    stderrTail.push(l);
    if (stderrTail.length > 40) stderrTail.shift();
  });
  child.once('exit', (code, signal) => {
    exited = `ray_peers.py exited (${signal ?? code}); its last lines:\n${stderrTail.join('\n')}`;
    wake?.();
  });
  const exitPromise = new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
  return {
    async next(name, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = lines.findIndex((l) => l.shape === name || l.event === name);
        if (i >= 0) return lines.splice(i, 1)[0]!;
        if (exited) throw new Error(`waiting for Ray's "${name}": ${exited}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`Ray's "${name}" did not come within ${timeoutMs} ms; its last lines:\n${stderrTail.join('\n')}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          wake = () => (clearTimeout(t), resolve());
        });
        wake = undefined;
      }
    },
    release() {
      child.stdin?.end('\n');
    },
    async close(graceMs = 60_000) {
      child.stdin?.end();
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exitPromise;
      clearTimeout(t);
    },
  };
}

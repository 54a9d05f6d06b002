/**
 * The GPUs' utilisation and memory from ONE long-running nvidia-smi, instead
 * of a process started per sample (tens of ms of CPU each on an 8-GPU node,
 * and a stall whenever the driver is busy):
 *
 *   nvidia-smi --query-gpu=index,uuid,memory.used,memory.total,utilization.gpu
 *              --format=csv,noheader,nounits -lms <intervalMs>
 *
 * Its stdout is one block of rows, one per GPU, every interval
 * (smi-blocks.ts: bounded lines, blocks by the GPU count); each block is
 * parsed as one run's output (gpu.ts) and the latest kept for the sampler.
 *
 *   start ─▶ running ──block──▶ latest sample (fresh for STALE_INTERVALS intervals)
 *              │  exits, or no output for hangAfterMs (then SIGTERM, SIGKILL after the grace)
 *              ▼
 *           waiting ──backoff (1 s doubling to 30 s, jittered; reset by a good block)──▶ running
 *   stop (any state) ─▶ no timer, child SIGTERM → SIGKILL after killGraceMs, awaited
 *
 * What the sampler sees: `latest()` is undefined — the sampler's "no GPU
 * values" — before the first block, after a block that is torn or does not
 * parse (until the next good one), once the child has exited, and when the
 * last block is older than STALE_INTERVALS intervals. Each failure streak is
 * logged once, its end once. The child is killed with the worker too: execa's
 * `cleanup` on a normal exit, and on a crash its stdout closes, so its next
 * write ends it (SIGPIPE) within an interval.
 */
import { execa } from 'execa';
import { ExponentialBackoff, type IBackoff } from 'cockatiel';
import { gpuLoopArgs, parseGpuBlock, SMI_TIMEOUT_MS, type GpuUse } from './gpu.js';
import { FailureStreak, type StreakLog } from './failure-streak.js';
import { BlockAssembler, LineBuffer } from './smi-blocks.js';

/** The reader's period: the resource reports' (reporter.ts), so each report reads a block under a second old. */
export const GPU_READ_INTERVAL_MS = 1_000;
/** A sample older than this many intervals is not reported. */
export const STALE_INTERVALS = 3;

export interface GpuReaderOptions {
  /** Rows per block: the GPUs nvidia-smi lists here (the inventory's). */
  gpus: number;
  /** The nvidia-smi binary (default: `nvidia-smi` on PATH). */
  bin?: string;
  intervalMs?: number;
  /** No output for this long is a hang: the child is killed and restarted (default: 5 intervals, at least SMI_TIMEOUT_MS). */
  hangAfterMs?: number;
  /** Between SIGTERM and SIGKILL (default 2 s). */
  killGraceMs?: number;
  /** The restart backoff's first and largest delay (default 1 s, 30 s). */
  restartMs?: { initial: number; max: number };
  log: StreakLog;
}

export class GpuUseReader {
  private child: { pid?: number | undefined; kill(signal: NodeJS.Signals): boolean } | undefined;
  private exited: Promise<unknown> | undefined;
  private sample: { gpus: GpuUse[]; at: number } | undefined;
  private lastOutputAt = 0;
  private started = false;
  private stopped = false;
  private readonly streak: FailureStreak;
  private backoff: IBackoff<unknown> | undefined;
  private readonly backoffs: ExponentialBackoff<unknown>;
  private restartTimer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private readonly intervalMs: number;
  private readonly hangAfterMs: number;

  constructor(private readonly opts: GpuReaderOptions) {
    this.intervalMs = opts.intervalMs ?? GPU_READ_INTERVAL_MS;
    this.hangAfterMs = opts.hangAfterMs ?? Math.max(5 * this.intervalMs, SMI_TIMEOUT_MS);
    this.streak = new FailureStreak(opts.log, 'GPU reader failing: no GPU metrics in resource reports until nvidia-smi answers again (gpu-* autoscaling holds)');
    const restart = opts.restartMs ?? { initial: 1_000, max: 30_000 };
    this.backoffs = new ExponentialBackoff({ initialDelay: restart.initial, maxDelay: restart.max });
    if (!Number.isInteger(opts.gpus) || opts.gpus < 1) throw new Error(`the GPU reader needs the GPU count, not ${opts.gpus}`);
  }

  /** Starts the child (once; a stopped reader stays stopped). */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.spawn();
    this.watchdog = setInterval(() => this.checkHang(), this.intervalMs);
    this.watchdog.unref();
  }

  /** The GPUs' use from the latest block, or undefined (see the top of this file). */
  latest(): GpuUse[] | undefined {
    if (!this.sample || performance.now() - this.sample.at > STALE_INTERVALS * this.intervalMs) return undefined;
    return this.sample.gpus;
  }

  /** The running child's pid (tests). */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Stops restarting and ends the child: SIGTERM, SIGKILL after the grace; resolves once it has exited. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    clearInterval(this.watchdog);
    this.sample = undefined;
    this.child?.kill('SIGTERM');
    await this.exited;
  }

  private spawn(): void {
    const blocks = new BlockAssembler(this.opts.gpus);
    const lines = new LineBuffer(
      (line) => {
        const event = blocks.push(line);
        if (event) this.onBlock(event);
      },
      () => {
        blocks.tear();
        this.streak.failed('an over-long line from nvidia-smi was dropped');
      },
    );
    const child = execa(this.opts.bin ?? 'nvidia-smi', gpuLoopArgs(this.intervalMs), {
      reject: false,
      buffer: false,
      stdin: 'ignore',
      stderr: 'ignore',
      forceKillAfterDelay: this.opts.killGraceMs ?? 2_000,
      cleanup: true,
    });
    this.child = child;
    this.lastOutputAt = performance.now();
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      this.lastOutputAt = performance.now();
      lines.push(chunk);
    });
    this.exited = child.then((r) => {
      if (this.child === child) this.child = undefined;
      this.sample = undefined;
      if (this.stopped) return;
      this.streak.failed(r.code === 'ENOENT' ? 'nvidia-smi not found' : `nvidia-smi exited (${r.signal ?? `code ${r.exitCode}`})`);
      this.backoff = this.backoff ? this.backoff.next(undefined) : this.backoffs.next();
      this.restartTimer = setTimeout(() => this.spawn(), this.backoff.duration);
      this.restartTimer.unref();
    });
  }

  private onBlock(event: { rows: string[] } | { torn: true }): void {
    if (this.stopped) return; // the last of a stopping child's output
    if ('torn' in event) {
      this.sample = undefined;
      this.streak.failed('a block from nvidia-smi missed rows');
      return;
    }
    try {
      this.sample = { gpus: parseGpuBlock(event.rows), at: performance.now() };
    } catch (e) {
      this.sample = undefined;
      this.streak.failed(`nvidia-smi output did not parse: ${(e as Error).message}`);
      return;
    }
    this.backoff = undefined;
    this.streak.ok();
  }

  private checkHang(): void {
    if (!this.child || performance.now() - this.lastOutputAt <= this.hangAfterMs) return;
    this.sample = undefined;
    this.streak.failed(`no output from nvidia-smi for ${this.hangAfterMs} ms: restarting it`);
    this.lastOutputAt = performance.now(); // one kill per hang, however long SIGKILL takes
    this.child.kill('SIGTERM');
  }
}

/**
 * The processes' GPU memory (`nvidia-smi --query-compute-apps`, gpu.ts
 * `queryApps`) at a bounded cadence instead of once per sample: a process's
 * GPU memory moves slowly (a model is loaded once, vLLM preallocates its KV
 * cache), while each query is a process of its own (tens of ms of CPU on an
 * 8-GPU node, a stall while the driver is busy).
 *
 *   get(ranks) ─▶ due? ── no ─▶ the last good answer (undefined after a failure)
 *                   │ yes: APPS_QUERY_INTERVAL_MS since the last query ended,
 *                   │      or a GPU rank the last query was not asked for
 *                   ▼
 *                 one query (a second caller awaits the same one) ─▶ its answer
 *
 * A new rank (`ranks` holds one key per rank that holds GPUs: pid and start
 * time, so a rank restarted on a recycled pid is new too) is queried for at
 * once, so its memory is in the first sample that sees it if nvidia-smi
 * lists a process of it then; if not (a model still loading) it is absent,
 * never 0, until a query finds one: at most one interval after nvidia-smi
 * lists it. Any value is at most the interval plus one query's run time old.
 * A rank that leaves asks for nothing: the others' values do not change.
 *
 * A failed query (a timeout, a failure, output that does not parse) leaves
 * no answer until the next one, logged once per streak; the next one runs
 * after the interval, never sooner — a new rank does not hurry it either, so
 * a broken driver costs one query per interval whatever the ranks do.
 */
import { FailureStreak, type StreakLog } from './failure-streak.js';
import type { AppUse } from './gpu.js';

/**
 * The cadence, counted from the end of the last query: 5 s. A process's GPU
 * memory changes over tens of seconds (a model's load) or not at all (a
 * preallocated KV cache), a `gpu-memory` policy waits 30 s by default before
 * scaling down, so it still sees six reads in that window; and a query that
 * hangs to its deadline (SMI_TIMEOUT_MS, also 5 s) leaves the driver idle at
 * least half the time. Five times fewer processes than one per sample.
 */
export const APPS_QUERY_INTERVAL_MS = 5_000;

export interface ComputeAppsOptions {
  /** One compute-app query; rejects when it fails. */
  query: () => Promise<AppUse[]>;
  /** Monotonic clock, ms. */
  now: () => number;
  intervalMs?: number;
  log: StreakLog;
}

export class ComputeApps {
  private answer: AppUse[] | undefined;
  /** The GPU ranks the last query was run for. */
  private askedFor: ReadonlySet<string> = new Set();
  private nextAt = -Infinity;
  private inFlight: Promise<void> | undefined;
  private readonly streak: FailureStreak;

  constructor(private readonly opts: ComputeAppsOptions) {
    this.streak = new FailureStreak(opts.log, 'nvidia-smi failed: no GPU metrics in resource reports until it answers (gpu-* autoscaling holds)');
  }

  /** The processes on the GPUs: the last good answer, refreshed first when due (see the top of this file); undefined while the last query failed. */
  async get(ranks: ReadonlySet<string>): Promise<AppUse[] | undefined> {
    if (!this.inFlight && this.due(ranks)) this.inFlight = this.run(ranks).finally(() => (this.inFlight = undefined));
    await this.inFlight;
    return this.answer;
  }

  private due(ranks: ReadonlySet<string>): boolean {
    if (this.opts.now() >= this.nextAt) return true;
    return !this.streak.failing && [...ranks].some((r) => !this.askedFor.has(r));
  }

  private async run(ranks: ReadonlySet<string>): Promise<void> {
    this.askedFor = new Set(ranks);
    try {
      this.answer = await this.opts.query();
      this.streak.ok();
    } catch (e) {
      this.answer = undefined;
      this.streak.failed((e as Error).message);
    }
    this.nextAt = this.opts.now() + (this.opts.intervalMs ?? APPS_QUERY_INTERVAL_MS);
  }
}

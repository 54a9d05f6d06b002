/**
 * The engine scraper: for rank 0 of an HTTP replica, the agent reads the
 * engine's Prometheus endpoint (http://127.0.0.1:<port><path>, every
 * `intervalMs`) and keeps the latest values of the configured metrics
 * (waiting, running, KV-cache use, and up to 8 named ones). The HTTP bridge
 * puts them into the replica's load report (`engine`), which the head's
 * autoscaler targets with `metric: engine-waiting` and friends.
 *
 *   scrape ──ok──▶ latest = values, at = now ──▶ load report carries them
 *     │ slow (SCRAPE_TIMEOUT_MS) or no connection
 *     │   → next try after one interval, as after a success: a slow
 *     │     /metrics is an engine under load, exactly when scaling matters
 *     │ refused (HTTP error status, not Prometheus text, body over the bound)
 *     │   → the next try waits interval × 2^refusals, at most BACKOFF_MAX_MS
 *     │     (an HTTP shard without /metrics costs one request per 30 s)
 *     ▼
 *   latest kept until it is STALE_INTERVALS old, then dropped (the report
 *   carries no `engine`: the autoscaler holds rather than read zeros).
 *
 * A scrape that succeeds but lacks a configured name (a non-vLLM engine, a
 * typo) logs that name once: the report then lacks the value, and an
 * autoscaler reading it holds (docs/autoscaling.md says how).
 *
 * Bounds: one scrape at a time (the next is timed from the end of the last),
 * SCRAPE_TIMEOUT_MS per scrape, a body of at most MAX_BODY_BYTES, at most
 * MAX_SERIES sample lines. Values outside what a load report may carry (a
 * negative count, a KV-cache fraction over 1) are left out by the contracts'
 * `engineLoadOf`, so one odd metric never costs the report.
 */
import type { Logger } from '@muster/common';
import { engineLoadOf, type EngineLoad, type EngineScrapeConfig } from '@muster/contracts';
import { sumSeries } from './prometheus-text.js';
import { readCapped } from './read-capped.js';

/** The largest /metrics body read (vLLM's is ~100 KiB with several models). */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
export const STALE_INTERVALS = 3;
/** One scrape's deadline, whatever the interval: an engine under load answers slowly, not never. */
export const SCRAPE_TIMEOUT_MS = 5_000;
/** The longest wait between tries of an endpoint that keeps refusing. */
export const BACKOFF_MAX_MS = 30_000;

/** The endpoint answered, with something that is not metrics: worth backing off from. */
class Refused extends Error {}

export class EngineScraper {
  private values: EngineLoad | undefined;
  private at = 0;
  /** Failures in a row (any kind), for the log. */
  private fails = 0;
  /** Refusals in a row: the backoff's exponent. */
  private refusals = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private readonly wanted: Set<string>;
  /** Configured names a successful scrape lacked, each logged once. */
  private readonly missing = new Set<string>();

  constructor(
    private readonly port: number,
    private readonly cfg: EngineScrapeConfig,
    private readonly log: Pick<Logger, 'warn' | 'info'>,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.wanted = new Set([cfg.waitingMetric, cfg.runningMetric, cfg.kvCacheMetric, ...cfg.metrics]);
  }

  /** Scrapes now, then again nextDelayMs() after each scrape ends, until stop(). */
  start(): void {
    if (this.timer || this.abort.signal.aborted) return;
    // scrapeOnce never throws; the catch only keeps a bug from becoming an unhandled rejection.
    const next = (wait: number) => {
      this.timer = setTimeout(() => {
        this.scrapeOnce().then(
          () => {
            if (!this.abort.signal.aborted) next(this.nextDelayMs());
          },
          () => undefined,
        );
      }, wait);
      this.timer.unref();
    };
    next(0);
  }

  stop(): void {
    this.abort.abort();
    clearTimeout(this.timer);
  }

  /** How long after the last scrape the next one starts: the interval, doubled per refusal in a row, at most BACKOFF_MAX_MS. */
  nextDelayMs(): number {
    const { intervalMs } = this.cfg;
    return this.refusals === 0 ? intervalMs : Math.max(intervalMs, Math.min(BACKOFF_MAX_MS, intervalMs * 2 ** Math.min(this.refusals, 16)));
  }

  /** The latest values, or undefined when none were read in the last STALE_INTERVALS intervals. */
  latest(): EngineLoad | undefined {
    if (!this.values || this.now() - this.at > STALE_INTERVALS * this.cfg.intervalMs) return undefined;
    return this.values;
  }

  /** One scrape (public for tests); never throws. */
  async scrapeOnce(): Promise<void> {
    try {
      const text = await this.fetchText();
      let sums: Map<string, number>;
      try {
        sums = sumSeries(text, this.wanted, undefined, new Set([this.cfg.kvCacheMetric]));
      } catch (e) {
        throw new Refused((e as Error).message);
      }
      this.values = this.pick(sums);
      this.at = this.now();
      if (this.fails > 0) this.log.info({ port: this.port, path: this.cfg.path }, 'engine metrics readable again');
      this.fails = 0;
      this.refusals = 0;
      this.warnMissing(sums);
    } catch (e) {
      if (this.abort.signal.aborted) return;
      const refused = e instanceof Refused;
      if (refused) this.refusals++;
      if (this.fails++ === 0) {
        const then = refused ? `backing off up to ${BACKOFF_MAX_MS / 1000} s` : 'retrying every interval';
        this.log.warn({ port: this.port, path: this.cfg.path, err: (e as Error).message }, `engine metrics unreadable; ${then} (engine-* autoscaling holds once the last values are ${STALE_INTERVALS} intervals old)`);
      }
    }
  }

  private async fetchText(): Promise<string> {
    const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(SCRAPE_TIMEOUT_MS)]);
    const res = await fetch(`http://127.0.0.1:${this.port}${this.cfg.path}`, { signal, headers: { accept: 'text/plain' } });
    if (!res.ok || !res.body) {
      await res.body?.cancel().catch(() => undefined);
      throw new Refused(`HTTP ${res.status}`);
    }
    return readCapped(res, MAX_BODY_BYTES, (max) => new Refused(`body over ${max} bytes`));
  }

  /** Logs each configured name a successful scrape lacked, once per name. */
  private warnMissing(sums: Map<string, number>): void {
    for (const name of this.wanted) {
      if (sums.has(name) || this.missing.has(name)) continue;
      this.missing.add(name);
      this.log.warn({ port: this.port, path: this.cfg.path, metric: name }, `engine metric ${name} is not in ${this.cfg.path}: a policy reading it holds (check the engine and engineMetrics' names)`);
    }
  }

  /** The configured metrics out of one scrape; the contracts drop what a report may not carry. */
  private pick(sums: Map<string, number>): EngineLoad {
    const named = Object.fromEntries(this.cfg.metrics.flatMap((m) => (sums.has(m) ? [[m, sums.get(m)]] : [])));
    return engineLoadOf({ waiting: sums.get(this.cfg.waitingMetric), running: sums.get(this.cfg.runningMetric), kvCache: sums.get(this.cfg.kvCacheMetric), named }) ?? {};
  }
}

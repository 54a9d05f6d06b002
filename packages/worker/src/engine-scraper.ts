/**
 * The engine scraper: for rank 0 of an HTTP replica, the agent reads the
 * engine's Prometheus endpoint (http://127.0.0.1:<port><path>, every
 * `intervalMs`) and keeps the latest values of the configured metrics
 * (waiting, running, KV-cache use, and up to 8 named ones). The HTTP bridge
 * puts them into the replica's load report (`engine`), which the head's
 * autoscaler targets with `metric: engine-waiting` and friends.
 *
 *   scrape ──ok──▶ latest = values, at = now ──▶ load report carries them
 *     │ fail (HTTP error, timeout, not Prometheus text, over the bounds)
 *     ▼
 *   latest kept until it is STALE_INTERVALS old, then dropped (the report
 *   carries no `engine`: the autoscaler holds rather than read zeros);
 *   after FAILS_BEFORE_BACKOFF failures in a row, one try per BACKOFF_MS
 *   (an HTTP shard without /metrics costs one request per 30 s)
 *
 * Bounds: one scrape at a time, a per-scrape timeout (the interval, at most
 * 5 s), a body of at most MAX_BODY_BYTES, at most MAX_SERIES sample lines.
 * Values outside what a load report may carry (a negative count, a KV-cache
 * fraction over 1) are left out, so one odd metric never costs the report.
 */
import type { Logger } from '@muster/common';
import { type EngineLoad, type EngineScrapeConfig, MAX_ENGINE_VALUE } from '@muster/contracts';
import { sumSeries } from './prometheus-text.js';
import { readCapped } from './read-capped.js';

/** The largest /metrics body read (vLLM's is ~100 KiB with several models). */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
export const STALE_INTERVALS = 3;
export const FAILS_BEFORE_BACKOFF = 3;
export const BACKOFF_MS = 30_000;
const MAX_COUNT = 10_000_000;

export class EngineScraper {
  private values: EngineLoad | undefined;
  private at = 0;
  private fails = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private readonly wanted: Set<string>;

  constructor(
    private readonly port: number,
    private readonly cfg: EngineScrapeConfig,
    private readonly log: Pick<Logger, 'warn' | 'info'>,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.wanted = new Set([cfg.waitingMetric, cfg.runningMetric, cfg.kvCacheMetric, ...cfg.metrics]);
  }

  /** Scrapes now, then every interval until stop(). */
  start(): void {
    if (this.timer || this.abort.signal.aborted) return;
    // scrapeOnce never throws; the catch only keeps a bug from becoming an unhandled rejection.
    const next = (wait: number) => {
      this.timer = setTimeout(() => {
        this.scrapeOnce().then(
          () => {
            if (!this.abort.signal.aborted) next(this.fails >= FAILS_BEFORE_BACKOFF ? BACKOFF_MS : this.cfg.intervalMs);
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

  /** The latest values, or undefined when none were read in the last STALE_INTERVALS intervals. */
  latest(): EngineLoad | undefined {
    if (!this.values || this.now() - this.at > STALE_INTERVALS * this.cfg.intervalMs) return undefined;
    return this.values;
  }

  /** One scrape (public for tests); never throws. */
  async scrapeOnce(): Promise<void> {
    try {
      const text = await this.fetchText();
      this.values = this.pick(sumSeries(text, this.wanted));
      this.at = this.now();
      if (this.fails >= FAILS_BEFORE_BACKOFF) this.log.info({ port: this.port, path: this.cfg.path }, 'engine metrics readable again');
      this.fails = 0;
    } catch (e) {
      if (this.abort.signal.aborted) return;
      if (++this.fails === FAILS_BEFORE_BACKOFF) {
        this.log.warn({ port: this.port, path: this.cfg.path, err: (e as Error).message }, `engine metrics unreadable ${FAILS_BEFORE_BACKOFF} times in a row; trying every ${BACKOFF_MS / 1000} s (engine-* autoscaling holds meanwhile)`);
      }
    }
  }

  private async fetchText(): Promise<string> {
    const signal = AbortSignal.any([this.abort.signal, AbortSignal.timeout(Math.min(this.cfg.intervalMs, 5_000))]);
    const res = await fetch(`http://127.0.0.1:${this.port}${this.cfg.path}`, { signal, headers: { accept: 'text/plain' } });
    if (!res.ok || !res.body) {
      await res.body?.cancel().catch(() => undefined);
      throw new Error(`HTTP ${res.status}`);
    }
    return readCapped(res, MAX_BODY_BYTES, (max) => new Error(`body over ${max} bytes`));
  }

  /** The configured metrics out of one scrape, each only if a load report may carry it. */
  private pick(sums: Map<string, number>): EngineLoad {
    const count = (v: number | undefined) => (v !== undefined && Number.isFinite(v) && v >= 0 && v <= MAX_COUNT ? v : undefined);
    const waiting = count(sums.get(this.cfg.waitingMetric));
    const running = count(sums.get(this.cfg.runningMetric));
    const kv = sums.get(this.cfg.kvCacheMetric);
    const kvCache = kv !== undefined && kv >= 0 && kv <= 1 ? kv : undefined;
    const named: Record<string, number> = {};
    for (const m of this.cfg.metrics) {
      const v = sums.get(m);
      if (v !== undefined && Number.isFinite(v) && Math.abs(v) <= MAX_ENGINE_VALUE) named[m] = v;
    }
    return {
      ...(waiting === undefined ? {} : { waiting }),
      ...(running === undefined ? {} : { running }),
      ...(kvCache === undefined ? {} : { kvCache }),
      ...(Object.keys(named).length ? { named } : {}),
    };
  }
}

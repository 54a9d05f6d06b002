/**
 * Engine metrics: what the worker reads from an HTTP shard's Prometheus
 * endpoint (vLLM's `/metrics`, TGI's, any engine's) and reports with the
 * replica's load, so the autoscaler can target the engine's own queue
 * (`vllm:num_requests_waiting`, as KEDA's seed recipe does) or KV-cache use.
 *
 * Two contracts cross process boundaries here, so they are defined once:
 *  - the scrape configuration the head gives rank 0 of an HTTP replica in
 *    `MUSTER_ENGINE_METRICS` (JSON of EngineScrapeConfig), read by the worker;
 *  - the `engine` part of a LoadReport (subjects.ts), built by the worker and
 *    decoded by the head and routers with the one `engineLoadOf`, which drops
 *    each value a report may not carry (a negative or absurd count, a
 *    KV-cache value outside [0, 1], a bad name) and keeps the rest.
 *
 * Bounds: at most MAX_NAMED_ENGINE_METRICS extra names, each a Prometheus
 * metric name of at most MAX_ENGINE_METRIC_NAME characters; counts up to
 * MAX_REPORTED_COUNT (the bound of every count a load report carries,
 * imported by subjects.ts); the KV-cache value is a fraction in [0, 1]; a
 * named metric's value is finite and within ±MAX_ENGINE_VALUE. Engine counts
 * are sums of gauges over the metric's series, so they may be fractional
 * (a load report's own counts may not).
 */

/** vLLM's metric names, the documented defaults. */
export const ENGINE_METRICS_DEFAULTS = {
  path: '/metrics',
  intervalMs: 1_000,
  waitingMetric: 'vllm:num_requests_waiting',
  runningMetric: 'vllm:num_requests_running',
  kvCacheMetric: 'vllm:gpu_cache_usage_perc',
} as const;

/** Scrape period bounds: faster than 4 Hz costs the engine for nothing; slower than a minute is not autoscaling. */
export const ENGINE_INTERVAL_MS = { min: 250, max: 60_000 } as const;
export const MAX_NAMED_ENGINE_METRICS = 8;
export const MAX_ENGINE_METRIC_NAME = 200;
export const MAX_ENGINE_PATH = 512;
/** A named metric's value beyond this is not a real engine's. */
export const MAX_ENGINE_VALUE = 1e12;
/** Counts above this are not a real process's: ten million requests in flight or waiting (every count of a load report). */
export const MAX_REPORTED_COUNT = 10_000_000;

/** A Prometheus metric name (the text format's, colons allowed as recording rules and vLLM use them). */
export const PROMETHEUS_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

export interface EngineScrapeConfig {
  path: string;
  intervalMs: number;
  waitingMetric: string;
  runningMetric: string;
  kvCacheMetric: string;
  /** Extra names, reported under `named` for `engine:<name>` policies. */
  metrics: string[];
}

/** What a replica reports of its engine; a value the scrape did not find is absent. */
export interface EngineLoad {
  /** Requests the engine holds in its queue (summed over the metric's series). */
  waiting?: number;
  /** Requests the engine is running. */
  running?: number;
  /** KV-cache use, a fraction in [0, 1]. */
  kvCache?: number;
  /** The extra names' values. */
  named?: Record<string, number>;
}

/** Whether `v` is a metric name the worker may scrape and a report may carry (also `engine:<name>` policies). */
export function isEngineMetricName(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_ENGINE_METRIC_NAME && PROMETHEUS_NAME.test(v);
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= MAX_REPORTED_COUNT;
const isFraction = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 1;
const isValue = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && Math.abs(v) <= MAX_ENGINE_VALUE;

/** Why a scrape configuration is not one (undefined: it is); used by the head's validation and the worker's reader. */
export function engineScrapeProblem(c: EngineScrapeConfig): string | undefined {
  if (!c.path.startsWith('/') || c.path.length > MAX_ENGINE_PATH || /[\s#]/.test(c.path)) return `path: "${c.path.slice(0, 80)}" must be an absolute URL path ("/metrics") of at most ${MAX_ENGINE_PATH} characters`;
  if (!Number.isInteger(c.intervalMs) || c.intervalMs < ENGINE_INTERVAL_MS.min || c.intervalMs > ENGINE_INTERVAL_MS.max) return `intervalMs: ${c.intervalMs} is outside ${ENGINE_INTERVAL_MS.min} … ${ENGINE_INTERVAL_MS.max} ms`;
  for (const k of ['waitingMetric', 'runningMetric', 'kvCacheMetric'] as const) {
    if (!isEngineMetricName(c[k])) return `${k}: "${String(c[k]).slice(0, 80)}" is not a Prometheus metric name`;
  }
  if (c.metrics.length > MAX_NAMED_ENGINE_METRICS) return `metrics: ${c.metrics.length} names; the limit is ${MAX_NAMED_ENGINE_METRICS}`;
  const bad = c.metrics.findIndex((m) => !isEngineMetricName(m));
  if (bad >= 0) return `metrics[${bad}]: "${String(c.metrics[bad]).slice(0, 80)}" is not a Prometheus metric name`;
  return undefined;
}

/** The configuration with defaults filled for empty strings and zeros (proto3's "unset"). */
export function engineScrapeConfig(given: Partial<EngineScrapeConfig> | undefined): EngineScrapeConfig {
  const d = ENGINE_METRICS_DEFAULTS;
  return {
    path: given?.path || d.path,
    intervalMs: given?.intervalMs || d.intervalMs,
    waitingMetric: given?.waitingMetric || d.waitingMetric,
    runningMetric: given?.runningMetric || d.runningMetric,
    kvCacheMetric: given?.kvCacheMetric || d.kvCacheMetric,
    metrics: [...(given?.metrics ?? [])],
  };
}

/** `MUSTER_ENGINE_METRICS`'s value for a configuration. */
export function encodeEngineScrapeConfig(c: EngineScrapeConfig): string {
  return JSON.stringify(c);
}

/** Reads `MUSTER_ENGINE_METRICS`; absent → the defaults; malformed → an Error naming the problem. */
export function decodeEngineScrapeConfig(value: string | undefined): EngineScrapeConfig {
  if (!value) return engineScrapeConfig(undefined);
  let o: unknown;
  try {
    o = JSON.parse(value);
  } catch {
    throw new Error('MUSTER_ENGINE_METRICS is not JSON');
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new Error('MUSTER_ENGINE_METRICS is not an object');
  const r = o as Record<string, unknown>;
  const c = engineScrapeConfig({
    path: typeof r.path === 'string' ? r.path : undefined,
    intervalMs: typeof r.intervalMs === 'number' ? r.intervalMs : undefined,
    waitingMetric: typeof r.waitingMetric === 'string' ? r.waitingMetric : undefined,
    runningMetric: typeof r.runningMetric === 'string' ? r.runningMetric : undefined,
    kvCacheMetric: typeof r.kvCacheMetric === 'string' ? r.kvCacheMetric : undefined,
    metrics: Array.isArray(r.metrics) ? (r.metrics as string[]) : [],
  });
  const problem = engineScrapeProblem(c);
  if (problem) throw new Error(`MUSTER_ENGINE_METRICS: ${problem}`);
  return c;
}

/**
 * A load report's `engine` part from what a scrape found or what msgpack
 * decoded: each value a report may not carry is dropped, the rest kept (one
 * odd metric never costs the others). Undefined only when `v` is not an
 * object at all.
 */
export function engineLoadOf(v: unknown): EngineLoad | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  let named: Record<string, number> | undefined;
  if (typeof o.named === 'object' && o.named !== null && !Array.isArray(o.named)) {
    for (const [k, x] of Object.entries(o.named as Record<string, unknown>)) {
      if (!isEngineMetricName(k) || !isValue(x)) continue;
      named ??= {};
      named[k] = x;
      if (Object.keys(named).length === MAX_NAMED_ENGINE_METRICS) break;
    }
  }
  return {
    ...(isCount(o.waiting) ? { waiting: o.waiting } : {}),
    ...(isCount(o.running) ? { running: o.running } : {}),
    ...(isFraction(o.kvCache) ? { kvCache: o.kvCache } : {}),
    ...(named === undefined ? {} : { named }),
  };
}

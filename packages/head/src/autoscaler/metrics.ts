/**
 * The metrics an autoscaling policy may target, in one table: the type
 * (`AutoscalingMetric`), the policy check, whether a metric is a count of
 * calls or a level, whether it reads the engine, and how it is read out of a
 * replica's load report all derive from it, so a new metric is one row.
 *
 * Counts (calls) are summed with the routers' waiting calls and sized by
 * replica; levels (KV-cache use, a named engine metric) are not. `engine:<name>`
 * is a level read from the report's `named` values; its name must be a
 * Prometheus metric name (the contracts' isEngineMetricName, the same check
 * the worker's scrape configuration passes).
 *
 * Why its own file and not policy.ts: types.ts needs the type and policy.ts
 * imports types.ts; a table here keeps the modules free of cycles.
 */
import { isEngineMetricName, type EngineLoad } from '@muster/contracts';

/** What a metric is read from (a LoadSample's fields). */
interface Report {
  queued: number;
  inFlight: number;
  engine?: EngineLoad | undefined;
}

interface MetricRow {
  /** A count of calls (true) or a level (false). */
  count: boolean;
  /** Read from the engine's scraped metrics (HTTP groups only; may be absent from a report). */
  engine: boolean;
  read: (r: Report) => number | undefined;
}

export const BUILT_IN_METRICS = {
  queue: { count: true, engine: false, read: (r) => Math.max(0, r.queued) },
  ongoing: { count: true, engine: false, read: (r) => Math.max(0, r.queued) + Math.max(0, r.inFlight) },
  'engine-waiting': { count: true, engine: true, read: (r) => r.engine?.waiting },
  'engine-running': { count: true, engine: true, read: (r) => r.engine?.running },
  'engine-kv-cache': { count: false, engine: true, read: (r) => r.engine?.kvCache },
} as const satisfies Record<string, MetricRow>;

export type BuiltInMetric = keyof typeof BUILT_IN_METRICS;
const NAMED = 'engine:';
export type AutoscalingMetric = BuiltInMetric | `${typeof NAMED}${string}`;

const builtIn = (m: string): m is BuiltInMetric => Object.hasOwn(BUILT_IN_METRICS, m);

/** The Prometheus name in `engine:<name>`, or undefined for the built-in metrics. */
export function namedMetricOf(metric: string): string | undefined {
  return metric.startsWith(NAMED) ? metric.slice(NAMED.length) : undefined;
}

/** Why `m` is not a metric a policy may target (undefined: it is one). */
export function metricProblem(m: string): string | undefined {
  const named = namedMetricOf(m);
  if (named !== undefined) return isEngineMetricName(named) ? undefined : `"${String(named).slice(0, 80)}" is not a Prometheus metric name`;
  if (builtIn(m)) return undefined;
  return `"${m.slice(0, 80)}" is not a metric: use one of ${Object.keys(BUILT_IN_METRICS).join(', ')} or ${NAMED}<metric name>`;
}

/** Whether the metric counts calls (summed with the routers' waiting calls); levels do not. */
export function isCountMetric(m: AutoscalingMetric): boolean {
  return builtIn(m) && BUILT_IN_METRICS[m].count;
}

/** Whether the metric comes from the engine's scraped metrics (only HTTP groups have them; a report may lack them). */
export function readsEngine(m: AutoscalingMetric): boolean {
  return builtIn(m) ? BUILT_IN_METRICS[m].engine : true;
}

/** One replica's value of the metric; undefined when its report does not carry it. */
export function metricValue(m: AutoscalingMetric, r: Report): number | undefined {
  if (builtIn(m)) return BUILT_IN_METRICS[m].read(r);
  const named = namedMetricOf(m);
  return named === undefined ? undefined : r.engine?.named?.[named];
}

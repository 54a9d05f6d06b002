/**
 * The metrics an autoscaling policy may target, in one table: the type
 * (`AutoscalingMetric`), the policy check, whether a metric is a count of
 * calls or a level, whether it reads the engine, and how it is read out of a
 * replica's load report all derive from it, so a new metric is one row.
 *
 * Counts (calls) are summed with the routers' waiting calls and sized by
 * replica; levels (KV-cache use, a named engine metric, resources, custom
 * gauges) are not. `engine:<name>` is a level read from the report's `named`
 * values; its name must be a Prometheus metric name (the contracts'
 * isEngineMetricName, the same check the worker's scrape configuration
 * passes). The resource metrics (`cpu` cores, `memory` bytes,
 * `gpu-utilization` 0…1, `gpu-memory` bytes) are read from what the workers
 * measured of the replica's ranks (contracts' resource-usage.ts), and
 * `custom:<name>` from the gauges the shard set itself (serve()'s
 * `customMetrics`). Every metric but `queue` and `ongoing` may be absent
 * from a report (decide.ts then holds on it: rule 5). `maxTarget` bounds a
 * policy's target in the metric's unit.
 *
 * Why its own file and not policy.ts: types.ts needs the type and policy.ts
 * imports types.ts; a table here keeps the modules free of cycles.
 */
import { isCustomMetricName, isEngineMetricName, type EngineLoad, type ResourceUsage } from '@muster/contracts';

/** What a metric is read from (a LoadSample's fields). */
interface Report {
  queued: number;
  inFlight: number;
  engine?: EngineLoad | undefined;
  resources?: ResourceUsage | undefined;
  custom?: Record<string, number> | undefined;
}

interface MetricRow {
  /** A count of calls (true) or a level (false). */
  count: boolean;
  /** Read from the engine's scraped metrics (HTTP groups only; may be absent from a report). */
  engine: boolean;
  /** The largest target a policy may give it, in its unit. */
  maxTarget: number;
  read: (r: Report) => number | undefined;
}

const COUNTS = 1e6;
/** A PiB, in bytes. */
const BYTES = 1e15;

export const BUILT_IN_METRICS = {
  queue: { count: true, engine: false, maxTarget: COUNTS, read: (r) => Math.max(0, r.queued) },
  ongoing: { count: true, engine: false, maxTarget: COUNTS, read: (r) => Math.max(0, r.queued) + Math.max(0, r.inFlight) },
  'engine-waiting': { count: true, engine: true, maxTarget: COUNTS, read: (r) => r.engine?.waiting },
  'engine-running': { count: true, engine: true, maxTarget: COUNTS, read: (r) => r.engine?.running },
  // Its bound stays the counts' (policies written before the bounds by unit keep validating).
  'engine-kv-cache': { count: false, engine: true, maxTarget: COUNTS, read: (r) => r.engine?.kvCache },
  cpu: { count: false, engine: false, maxTarget: 1e4, read: (r) => r.resources?.cpu },
  memory: { count: false, engine: false, maxTarget: BYTES, read: (r) => r.resources?.memoryBytes },
  'gpu-utilization': { count: false, engine: false, maxTarget: 1, read: (r) => r.resources?.gpuUtilization },
  'gpu-memory': { count: false, engine: false, maxTarget: BYTES, read: (r) => r.resources?.gpuMemoryBytes },
} as const satisfies Record<string, MetricRow>;

export type BuiltInMetric = keyof typeof BUILT_IN_METRICS;
const NAMED = 'engine:';
const CUSTOM = 'custom:';
export type AutoscalingMetric = BuiltInMetric | `${typeof NAMED}${string}` | `${typeof CUSTOM}${string}`;

const builtIn = (m: string): m is BuiltInMetric => Object.hasOwn(BUILT_IN_METRICS, m);

/** The Prometheus name in `engine:<name>`, or undefined for the built-in metrics. */
export function namedMetricOf(metric: string): string | undefined {
  return metric.startsWith(NAMED) ? metric.slice(NAMED.length) : undefined;
}

/** The gauge name in `custom:<name>`, or undefined for the other metrics. */
export function customMetricOf(metric: string): string | undefined {
  return metric.startsWith(CUSTOM) ? metric.slice(CUSTOM.length) : undefined;
}

/** Why `m` is not a metric a policy may target (undefined: it is one). */
export function metricProblem(m: string): string | undefined {
  const named = namedMetricOf(m);
  if (named !== undefined) return isEngineMetricName(named) ? undefined : `"${String(named).slice(0, 80)}" is not a Prometheus metric name`;
  const custom = customMetricOf(m);
  if (custom !== undefined) return isCustomMetricName(custom) ? undefined : `"${String(custom).slice(0, 80)}" is not a metric name (letters, digits, _ and :, not starting with a digit)`;
  if (builtIn(m)) return undefined;
  return `"${m.slice(0, 80)}" is not a metric: use one of ${Object.keys(BUILT_IN_METRICS).join(', ')}, ${NAMED}<metric name> or ${CUSTOM}<gauge name>`;
}

/** The largest target a policy may set for `m`, in its unit (1 for fractions). */
export function maxTargetOf(m: AutoscalingMetric): number {
  return builtIn(m) ? BUILT_IN_METRICS[m].maxTarget : 1e12;
}

/**
 * Whether the policy default target (5) applies to `m`: to the call counts
 * and engine metrics, as always. The resource metrics and gauges have units
 * (cores, bytes, a fraction) in which 5 means nothing: a policy names their
 * target.
 */
export function hasDefaultTarget(m: AutoscalingMetric): boolean {
  return readsEngine(m) || m === 'queue' || m === 'ongoing';
}

/** Whether a report may lack the metric (every metric but `queue` and `ongoing`): decide.ts holds on it then. */
export function mayBeAbsent(m: AutoscalingMetric): boolean {
  return m !== 'queue' && m !== 'ongoing';
}

/** Whether the metric counts calls (summed with the routers' waiting calls); levels do not. */
export function isCountMetric(m: AutoscalingMetric): boolean {
  return builtIn(m) && BUILT_IN_METRICS[m].count;
}

/** Whether the metric comes from the engine's scraped metrics (only HTTP groups have them; a report may lack them). */
export function readsEngine(m: AutoscalingMetric): boolean {
  return builtIn(m) ? BUILT_IN_METRICS[m].engine : namedMetricOf(m) !== undefined;
}

/** One replica's value of the metric; undefined when its report does not carry it. */
export function metricValue(m: AutoscalingMetric, r: Report): number | undefined {
  if (builtIn(m)) return BUILT_IN_METRICS[m].read(r);
  const named = namedMetricOf(m);
  if (named !== undefined) return r.engine?.named?.[named];
  const custom = customMetricOf(m);
  return custom === undefined ? undefined : r.custom?.[custom];
}

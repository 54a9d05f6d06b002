/**
 * Resource metrics: what a replica's ranks use (CPU, memory, GPU), measured
 * by the workers that run them, and gauges a shard sets itself — the inputs
 * of `cpu`, `memory`, `gpu-utilization`, `gpu-memory` and `custom:<name>`
 * autoscaling policies (docs/autoscaling.md, "Resource metrics").
 *
 * Defined once here, for both sides of the process boundary:
 *  - the values of a node's share of a replica's use (ResourceUsage), which
 *    the worker agent sends every second on its own authenticated stream to
 *    the head (AgentMessage.usage, at most MAX_USAGE_ENTRIES replicas a
 *    message) and the head sums over the nodes heard in the last
 *    RESOURCE_REPORT_FRESH_MS;
 *  - the `custom` part of a LoadReport: gauges `serve()` was given
 *    (`customMetrics`), decoded by `customMetricsOf`.
 *
 * Reports come from other processes, so they are decoded, not trusted: a
 * value a report may not carry (negative, not finite, absurd, a utilisation
 * outside [0, 1], a bad name) is dropped (`resourceUsageOf`), and the head
 * refuses a usage entry carrying one (`isExactResourceUsage`).
 *
 * Earlier workers published a `{ kind: "resources" }` report on the group's
 * load subject with the group's NATS credential; no LoadReport decoder takes
 * one, so the head drops (and counts) what an older worker still sends.
 */

/** A replica's (or one node's share of a replica's) resource use; a value not measured is absent. */
export interface ResourceUsage {
  /** CPU cores busy: CPU seconds per second of the ranks' processes and their children. */
  cpu?: number;
  /** Resident memory of those processes, bytes. */
  memoryBytes?: number;
  /** Mean utilisation of the ranks' GPUs, 0…1. */
  gpuUtilization?: number;
  /** GPU memory held by those processes, bytes. */
  gpuMemoryBytes?: number;
  /** How many GPUs `gpuUtilization` is the mean of (a sum over nodes weighs by it). */
  gpus?: number;
}

/** Shard-set gauges per report, at most. */
export const MAX_CUSTOM_METRICS = 8;
/** A custom metric's name: a Prometheus-style name, as engine metrics' (`custom:<name>` in a policy). */
export const CUSTOM_METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
export const MAX_CUSTOM_METRIC_NAME = 200;
/** Bounds of what a report may carry: 1e12 for a gauge, 1e6 cores, 1e15 bytes (a PiB), 1e5 GPUs. */
export const MAX_CUSTOM_VALUE = 1e12;
const MAX_CORES = 1e6;
const MAX_BYTES = 1e15;
const MAX_GPUS = 100_000;
/** How long the head counts a node's share of a replica's use as current (three report periods). */
export const RESOURCE_REPORT_FRESH_MS = 3_000;
/**
 * Replicas in one usage message of an agent, at most. Every entry is a
 * replica with at least one rank running on the node, and a node runs few:
 * a GPU server holds at most 32 GPUs (the scheduler's MAX_GPUS_PER_NODE), so
 * a few dozen replicas even when every GPU is sliced or shared. 256 leaves
 * room for CPU-only replicas, while one message of 256 entries with the
 * longest names allowed (SPEC_LIMITS.refLength) stays near 140 KiB: a
 * heartbeat written after it waits behind little. A node with more
 * replicas sends several messages; the head drops entries past the cap.
 */
export const MAX_USAGE_ENTRIES = 256;

export function isCustomMetricName(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_CUSTOM_METRIC_NAME && CUSTOM_METRIC_NAME.test(v);
}

const within = (v: unknown, max: number): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= max;

/** The values of `v` a report may carry (each checked alone); undefined when `v` is not an object. */
export function resourceUsageOf(v: unknown): ResourceUsage | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  return {
    ...(within(o.cpu, MAX_CORES) ? { cpu: o.cpu } : {}),
    ...(within(o.memoryBytes, MAX_BYTES) ? { memoryBytes: o.memoryBytes } : {}),
    ...(within(o.gpuUtilization, 1) ? { gpuUtilization: o.gpuUtilization } : {}),
    ...(within(o.gpuMemoryBytes, MAX_BYTES) ? { gpuMemoryBytes: o.gpuMemoryBytes } : {}),
    ...(within(o.gpus, MAX_GPUS) && Number.isInteger(o.gpus) ? { gpus: o.gpus } : {}),
  };
}

/** A LoadReport's `custom` gauges: valid names and values only, at most MAX_CUSTOM_METRICS; undefined when none. */
export function customMetricsOf(v: unknown): Record<string, number> | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  let out: Record<string, number> | undefined;
  let n = 0;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (!isCustomMetricName(k) || typeof x !== 'number' || !Number.isFinite(x) || Math.abs(x) > MAX_CUSTOM_VALUE) continue;
    out ??= {};
    out[k] = x;
    if (++n === MAX_CUSTOM_METRICS) break;
  }
  return out;
}

/**
 * Whether `v` carries only values a report may carry (an absent value is
 * fine, a present bad one is not): the head keeps a usage entry whole or not
 * at all, so a malformed one is seen in the dropped-reports count rather
 * than half-kept.
 */
export function isExactResourceUsage(v: Partial<Record<keyof ResourceUsage, number | undefined>>): boolean {
  const kept = resourceUsageOf(v);
  if (!kept) return false;
  return (Object.keys(v) as Array<keyof ResourceUsage>).every((k) => v[k] === undefined || kept[k] !== undefined);
}

/**
 * One replica's use from its nodes' shares: CPU and memory summed, GPU
 * utilisation the mean over all its GPUs (each node's weighed by its GPU
 * count). A value is present when at least one share has it.
 */
export function sumResourceUsage(parts: Iterable<ResourceUsage>): ResourceUsage {
  const out: ResourceUsage = {};
  let weighed = 0;
  let gpus = 0;
  for (const p of parts) {
    if (p.cpu !== undefined) out.cpu = (out.cpu ?? 0) + p.cpu;
    if (p.memoryBytes !== undefined) out.memoryBytes = (out.memoryBytes ?? 0) + p.memoryBytes;
    if (p.gpuMemoryBytes !== undefined) out.gpuMemoryBytes = (out.gpuMemoryBytes ?? 0) + p.gpuMemoryBytes;
    if (p.gpuUtilization !== undefined) {
      const w = Math.max(1, p.gpus ?? 1);
      weighed += p.gpuUtilization * w;
      gpus += w;
    }
  }
  if (gpus > 0) {
    out.gpuUtilization = Math.min(1, weighed / gpus);
    out.gpus = gpus;
  }
  return out;
}

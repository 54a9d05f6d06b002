/**
 * The autoscaler's vocabulary. The decision core is pure (decide.ts): the
 * controller feeds it load samples and the clock, and applies what it
 * returns; every decision carries its inputs and a reason, recorded as an
 * event.
 */
import type { EngineLoad, ResourceUsage } from '@muster/contracts';
import type { AutoscalingMetric } from './metrics.js';

/** What a replica reports every second on <prefix>.load.<group>. */
export interface LoadSample {
  timeMs: number;
  replicaId: string;
  /** Calls its handlers are running. */
  inFlight: number;
  /** Calls waiting inside the replica for a handler slot. */
  queued: number;
  /** An HTTP replica's engine metrics, as the worker last scraped them. */
  engine?: EngineLoad | undefined;
  /** What its ranks use, summed over the nodes that reported in the last few seconds (contracts' resource-usage.ts). */
  resources?: ResourceUsage | undefined;
  /** Gauges the shard set (serve()'s customMetrics). */
  custom?: Record<string, number> | undefined;
}

/** What a router reports every second while calls wait for a replica (scale from zero, back-pressure). */
export interface DemandSample {
  timeMs: number;
  routerId: string;
  /** Calls waiting in the router for a replica or a free slot. */
  waiting: number;
}

/** The policy after validation (policy.ts), defaults filled. */
export interface AutoscalingPolicy {
  /**
   * Every metric the policy reads, each with its target (at least one; a
   * spec's single `metric`/`target` is a list of one). Each is judged on its
   * own (rules 5–8 of decide.ts, its own timers); the count is the largest
   * any of them asks for, as HPA does. The first also names rules 1–4.
   */
  metrics: [MetricTarget, ...MetricTarget[]];
  min: number;
  max: number;
  /** The metric must stay above target × (1 + tolerance) this long before scaling up. */
  upscaleDelayMs: number;
  /** …below target × (1 − tolerance) this long before scaling down. */
  downscaleDelayMs: number;
  /** Replicas added or removed by one decision, at most. */
  maxStep: number;
  /** Relative dead band around the target. */
  tolerance: number;
  /** Scale from min ≥ 1 down to 0 after no traffic at all for this long (0: never to zero). */
  scaleToZeroAfterMs: number;
  /** Samples older than this are not used. */
  lookbackMs: number;
  /** Raise `min` during cron windows. */
  floors: Array<{ cron: string; durationMs: number; timezone: string; min: number }>;
}

export interface MetricTarget {
  /**
   * `queue`: requests waiting per replica; `ongoing`: in flight + waiting per
   * replica; `engine-waiting` / `engine-running`: the engine's own queue /
   * running requests (vLLM's num_requests_waiting / _running, scraped by the
   * worker); `engine-kv-cache`: KV-cache use (0…1); `engine:<name>`: a
   * metric named in the group's engineMetrics.metrics; `cpu` (cores),
   * `memory` (bytes), `gpu-utilization` (0…1), `gpu-memory` (bytes): what the
   * ranks use; `custom:<name>`: a gauge the shard sets.
   */
  metric: AutoscalingMetric;
  /** Desired value of the metric per replica. */
  target: number;
}

/** One metric's timers and hysteresis (rules 6 and 7 of decide.ts). */
export interface MetricTimers {
  /** Since when the metric has been above the upscale threshold (undefined: it is not). */
  aboveSinceMs?: number | undefined;
  belowSinceMs?: number | undefined;
  /**
   * Hysteresis: the highest metric seen in the last downscaleDelayMs while
   * below the band (a scale-down sizes for it), from `belowPeaks`. Read only
   * from a state without `belowPeaks` (stored by an older head): then it
   * counts as seen now, and so holds for one more window.
   */
  belowPeak?: number | undefined;
  /**
   * …and the highest count of running calls (in flight, or the engine's
   * running) seen in that window: under `queue` / `engine-waiting` the calls
   * a removed replica was running are counted as waiting, sized for this peak.
   */
  belowRunningPeak?: number | undefined;
  /** The sliding window the two peaks are taken over, oldest first, at most PEAK_SLICES (decide-metric.ts). */
  belowPeaks?: PeakSlice[] | undefined;
  /** …the lowest since aboveSinceMs (a scale-up sizes for it). */
  aboveLow?: number | undefined;
}

/**
 * One slice of rule 7's sliding peak: the highest values the decisions of one
 * slice of downscaleDelayMs saw, and when the latest of them ran. The slice
 * counts while that time is inside the window, so the window is never
 * shorter than downscaleDelayMs, and at most one slice longer.
 */
export interface PeakSlice {
  timeMs: number;
  peak: number;
  runningPeak: number;
}

/**
 * Carried from one decision to the next (and persisted, so a new head does
 * not start blind). Its own timers are the first metric's; a policy of
 * several metrics keeps the others' in `others`, by metric.
 */
export interface AutoscalerState extends MetricTimers {
  /** Since when there has been no traffic at all. */
  idleSinceMs?: number | undefined;
  lastChangeMs?: number | undefined;
  others?: Record<string, MetricTimers> | undefined;
}

export interface Decision {
  /** The replica count to have. */
  desired: number;
  /** Whether it differs from `current`. */
  changed: boolean;
  /** Why, in one sentence ("queue 9.2/replica > 5 × 1.1 for 1.0 s: 2 → 4 (max step 2)"). */
  reason: string;
  /**
   * The metric that drove it, and its target: of several, the one asking for
   * the largest count (ties: the one furthest above its target, a metric not
   * reported counting as furthest, since it is what keeps the count up).
   */
  metric: AutoscalingMetric;
  target: number;
  /** The numbers it was based on (the driving metric's), for the event. */
  inputs: { metric: number; perReplica: number; replicas: number; waiting: number; samples: number; floor: number };
  state: AutoscalerState;
}

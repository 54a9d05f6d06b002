/**
 * The autoscaling policy: a zod schema with documented defaults
 * (docs/autoscaling.md), validated once at the edge. A bad policy is refused
 * with one MusterError naming every bad field; nothing is half-applied.
 */
import { ErrorCode, MusterError, limitedArray, limitedString } from '@muster/common';
import { SPEC_LIMITS } from '@muster/contracts';
import { z } from 'zod';
import { cronOf } from './floors.js';
import { hasDefaultTarget, maxTargetOf, metricProblem, type AutoscalingMetric } from './metrics.js';
import type { AutoscalingPolicy, MetricTarget } from './types.js';

/** Defaults, in one place (the docs table mirrors it). */
export const POLICY_DEFAULTS = {
  metric: 'queue',
  target: 5,
  min: 1,
  max: 10,
  /** Fast up: one second filters a single noisy report (replicas report every second). */
  upscaleDelayMs: 1_000,
  /** Slow down. */
  downscaleDelayMs: 30_000,
  maxStep: 4,
  tolerance: 0.1,
  /** 0: never to zero. */
  scaleToZeroAfterMs: 0,
  lookbackMs: 5_000,
} as const satisfies Omit<AutoscalingPolicy, 'floors' | 'metrics'> & MetricTarget;

/** Metrics of one policy, at most (`metrics`). */
export const MAX_POLICY_METRICS = 8;

const DAY_MS = 86_400_000;

/** The metric, checked against the one table of metrics (metrics.ts). */
const metricSchema = z.string().check((ctx) => {
  const message = metricProblem(ctx.value);
  if (message) ctx.issues.push({ code: 'custom', input: ctx.value, message });
}) as z.ZodType<AutoscalingMetric, string>;
const target = z.number().positive('must be > 0').max(1e15);
const metricTargetSchema = z.strictObject({ metric: metricSchema, target });
const delay = z.int().min(0, 'must be ≥ 0 ms').max(DAY_MS, 'must be ≤ 1 day');

function validZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const floorSchema = z
  .strictObject({
    cron: limitedString('floorFieldLength').min(1, 'must be a cron pattern'),
    durationMs: z.int().min(1, 'must be > 0 ms').max(31 * DAY_MS, 'must be ≤ 31 days'),
    timezone: limitedString('floorFieldLength').default('UTC'),
    min: z.int().min(0, 'must be ≥ 0').max(SPEC_LIMITS.replicas),
  })
  .superRefine((f, ctx) => {
    if (!validZone(f.timezone)) {
      ctx.addIssue({ code: 'custom', path: ['timezone'], message: `unknown time zone "${f.timezone}" (use an IANA name such as Europe/Berlin)` });
      return;
    }
    try {
      cronOf(f.cron, f.timezone);
    } catch (e) {
      ctx.addIssue({ code: 'custom', path: ['cron'], message: `invalid cron "${f.cron}": ${(e as Error).message}` });
    }
  });

export const policySchema = z
  .strictObject({
    metric: metricSchema.optional(),
    target: target.optional(),
    metrics: z.array(metricTargetSchema).min(1, 'must list at least one metric').max(MAX_POLICY_METRICS, `at most ${MAX_POLICY_METRICS} metrics`).optional(),
    min: z.int().min(0, 'must be ≥ 0').max(SPEC_LIMITS.replicas).default(POLICY_DEFAULTS.min),
    max: z.int().min(1, 'must be ≥ 1').max(SPEC_LIMITS.replicas).default(POLICY_DEFAULTS.max),
    upscaleDelayMs: delay.default(POLICY_DEFAULTS.upscaleDelayMs),
    downscaleDelayMs: delay.default(POLICY_DEFAULTS.downscaleDelayMs),
    maxStep: z.int().min(1, 'must be ≥ 1').max(SPEC_LIMITS.replicas).default(POLICY_DEFAULTS.maxStep),
    tolerance: z.number().min(0, 'must be ≥ 0').lt(1, 'must be < 1').default(POLICY_DEFAULTS.tolerance),
    scaleToZeroAfterMs: delay.default(POLICY_DEFAULTS.scaleToZeroAfterMs),
    lookbackMs: z.int().min(250, 'must be ≥ 250 ms').max(600_000).default(POLICY_DEFAULTS.lookbackMs),
    floors: limitedArray(floorSchema, 'floors').default([]),
  })
  .superRefine((p, ctx) => {
    if (p.metrics && (p.metric !== undefined || p.target !== undefined)) {
      ctx.addIssue({ code: 'custom', path: [p.metric !== undefined ? 'metric' : 'target'], message: 'give either metric and target, or metrics, not both' });
    }
    const seen = new Set<string>();
    (p.metrics ?? []).forEach((m, i) => {
      if (seen.has(m.metric)) ctx.addIssue({ code: 'custom', path: ['metrics', i, 'metric'], message: `"${m.metric}" is listed twice` });
      seen.add(m.metric);
      if (m.target > maxTargetOf(m.metric)) ctx.addIssue({ code: 'custom', path: ['metrics', i, 'target'], message: `must be ≤ ${maxTargetOf(m.metric)} for ${m.metric}` });
    });
    const single = p.metric ?? POLICY_DEFAULTS.metric;
    if (p.target !== undefined && p.target > maxTargetOf(single)) ctx.addIssue({ code: 'custom', path: ['target'], message: `must be ≤ ${maxTargetOf(single)} for ${single}` });
    if (p.target === undefined && !hasDefaultTarget(single)) ctx.addIssue({ code: 'custom', path: ['target'], message: `${single} has no default target: give one per replica (docs/autoscaling.md, "Resource metrics")` });
    if (p.min > p.max) ctx.addIssue({ code: 'custom', path: ['max'], message: `max ${p.max} is below min ${p.min}` });
    p.floors.forEach((f, i) => {
      if (f.min > p.max) ctx.addIssue({ code: 'custom', path: ['floors', i, 'min'], message: `floor min ${f.min} is above max ${p.max}` });
    });
  })
  .transform(({ metric, target: t, metrics, ...rest }): AutoscalingPolicy => {
    // One list either way: a spec's single metric/target (the proto's fields) is a list of one.
    const single: MetricTarget = { metric: metric ?? POLICY_DEFAULTS.metric, target: t ?? POLICY_DEFAULTS.target };
    const [first = single, ...others] = metrics ?? [];
    return { ...rest, metrics: [first, ...others] };
  });

/** What a caller may write: every field optional, defaults as in POLICY_DEFAULTS. */
export type AutoscalingPolicyInput = z.input<typeof policySchema>;

function fieldOf(path: readonly PropertyKey[]): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join('') || '(policy)';
}

/** Validates a policy and fills its defaults; throws INVALID_ARGUMENT naming each bad field. */
export function parsePolicy(input: unknown): AutoscalingPolicy {
  const r = policySchema.safeParse(input ?? {});
  if (r.success) return r.data;
  const fields = r.error.issues.map((i) => fieldOf(i.path));
  const msgs = r.error.issues.map((i, n) => `${fields[n]}: ${i.message}`);
  throw new MusterError(ErrorCode.INVALID_ARGUMENT, `invalid autoscaling policy: ${msgs.join('; ')}`, { details: { fields } });
}

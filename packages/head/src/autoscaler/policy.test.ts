import { ErrorCode, isMusterError } from '@muster/common';
import { describe, expect, it } from 'vitest';
import { BUILT_IN_METRICS, isCountMetric, readsEngine } from './metrics.js';
import { POLICY_DEFAULTS, parsePolicy, type AutoscalingPolicyInput } from './policy.js';

function refusal(input: unknown): { message: string; fields: unknown } {
  try {
    parsePolicy(input);
  } catch (e) {
    if (!isMusterError(e)) throw e;
    expect(e.code).toBe(ErrorCode.INVALID_ARGUMENT);
    return { message: e.message, fields: e.details.fields };
  }
  throw new Error('policy was accepted');
}

describe('parsePolicy', () => {
  it('fills the documented defaults', () => {
    const { metric, target, ...rest } = POLICY_DEFAULTS;
    // The single metric/target defaults become the one metric of the list; the policy has no copy of them beside it.
    expect(parsePolicy({})).toEqual({ ...rest, floors: [], metrics: [{ metric, target }] });
    expect(parsePolicy(undefined).metrics).toEqual([{ metric: 'queue', target: 5 }]);
    expect(POLICY_DEFAULTS).toMatchObject({ metric: 'queue', upscaleDelayMs: 1000, downscaleDelayMs: 30_000, maxStep: 4, tolerance: 0.1, scaleToZeroAfterMs: 0, lookbackMs: 5000 });
  });

  it('keeps what is given and defaults a floor to UTC', () => {
    const input: AutoscalingPolicyInput = { metric: 'ongoing', target: 2, min: 0, max: 8, scaleToZeroAfterMs: 60_000, floors: [{ cron: '0 8 * * 1-5', durationMs: 43_200_000, min: 4 }] };
    const p = parsePolicy(input);
    expect(p).toMatchObject({ metrics: [{ metric: 'ongoing', target: 2 }], min: 0, max: 8, scaleToZeroAfterMs: 60_000 });
    expect(p.floors).toEqual([{ cron: '0 8 * * 1-5', durationMs: 43_200_000, timezone: 'UTC', min: 4 }]);
  });

  it.each<[string, unknown, string]>([
    ['min > max', { min: 5, max: 2 }, 'max: max 2 is below min 5'],
    ['negative upscale delay', { upscaleDelayMs: -1 }, 'upscaleDelayMs: must be ≥ 0 ms'],
    ['negative downscale delay', { downscaleDelayMs: -5 }, 'downscaleDelayMs: must be ≥ 0 ms'],
    ['negative idle delay', { scaleToZeroAfterMs: -1 }, 'scaleToZeroAfterMs: must be ≥ 0 ms'],
    ['target 0', { target: 0 }, 'target: must be > 0'],
    ['negative target', { target: -3 }, 'target: must be > 0'],
    ['max step 0', { maxStep: 0 }, 'maxStep: must be ≥ 1'],
    ['tolerance 1', { tolerance: 1 }, 'tolerance: must be < 1'],
    ['unknown metric', { metric: 'gpu' }, 'metric: "gpu" is not a metric: use one of queue, ongoing, engine-waiting, engine-running, engine-kv-cache, cpu, memory, gpu-utilization, gpu-memory, engine:<metric name> or custom:<gauge name>'],
    ['a resource metric without a target', { metric: 'cpu' }, 'target: cpu has no default target'],
    ['a bad custom name', { metric: 'custom:1x' }, 'metric: "1x" is not a metric name'],
    ['metrics and metric both', { metric: 'cpu', metrics: [{ metric: 'memory', target: 1e9 }] }, 'metric: give either metric and target, or metrics, not both'],
    ['an empty metrics list', { metrics: [] }, 'metrics: must list at least one metric'],
    ['more than 8 metrics', { metrics: Array.from({ length: 9 }, (_, i) => ({ metric: `custom:g${i}`, target: 1 })) }, 'metrics: at most 8 metrics'],
    ['a metric listed twice', { metrics: [{ metric: 'cpu', target: 1 }, { metric: 'cpu', target: 2 }] }, 'metrics[1].metric: "cpu" is listed twice'],
    ['a bad metric in the list', { metrics: [{ metric: 'cpu', target: 1 }, { metric: 'disk', target: 2 }] }, 'metrics[1].metric: "disk" is not a metric'],
    ['a utilisation target over 1', { metrics: [{ metric: 'gpu-utilization', target: 80 }] }, 'metrics[0].target: must be ≤ 1 for gpu-utilization'],
    ['a target ≤ 0 in the list', { metrics: [{ metric: 'cpu', target: 0 }] }, 'metrics[0].target: must be > 0'],
    ['an unknown key in a metric', { metrics: [{ metric: 'cpu', target: 1, tagret: 2 }] }, 'metrics[0]'],
    ['named metric with a bad name', { metric: 'engine:a b' }, 'metric: "a b" is not a Prometheus metric name'],
    ['an engine-ish name not in the table', { metric: 'engine-queue' }, 'metric: "engine-queue" is not a metric'],
    ['unknown field', { targt: 5 }, 'targt'],
    ['bad cron', { floors: [{ cron: '61 8 * * *', durationMs: 1000, min: 1 }] }, 'floors[0].cron: invalid cron "61 8 * * *"'],
    ['unknown time zone', { floors: [{ cron: '0 8 * * *', durationMs: 1000, timezone: 'Mars/Olympus', min: 1 }] }, 'floors[0].timezone: unknown time zone "Mars/Olympus"'],
    ['floor above max', { max: 3, floors: [{ cron: '0 8 * * *', durationMs: 1000, min: 4 }] }, 'floors[0].min: floor min 4 is above max 3'],
    ['zero duration', { floors: [{ cron: '0 8 * * *', durationMs: 0, min: 1 }] }, 'floors[0].durationMs: must be > 0 ms'],
  ])('refuses %s, naming the field', (_name, input, expected) => {
    const { message } = refusal(input);
    expect(message.startsWith('invalid autoscaling policy: ')).toBe(true);
    expect(message).toContain(expected);
  });

  it('names every bad field at once', () => {
    const { message, fields } = refusal({ target: 0, upscaleDelayMs: -1, floors: [{ cron: 'nope', durationMs: 1000, min: 1 }, { cron: '0 8 * * *', durationMs: 1000, min: 1 }] });
    expect(fields).toEqual(['target', 'upscaleDelayMs', 'floors[0].cron']);
    expect(message).toMatch(/^invalid autoscaling policy: target: .+; upscaleDelayMs: .+; floors\[0\]\.cron: /);
  });

  it('refuses a non-object', () => {
    expect(refusal(42).message).toMatch(/^invalid autoscaling policy: \(policy\): /);
  });
});

describe('the metric table', () => {
  it('every built-in metric and a named one parse; counts and engine reads derive from the one table', () => {
    for (const m of [...Object.keys(BUILT_IN_METRICS), 'engine:vllm:num_preemptions_total', 'custom:batch_fill']) expect(parsePolicy({ metric: m, target: 0.5 }).metrics[0].metric).toBe(m);
    expect(['queue', 'ongoing', 'engine-waiting', 'engine-running'].every((m) => isCountMetric(m as 'queue'))).toBe(true);
    expect(isCountMetric('engine-kv-cache') || isCountMetric('engine:x')).toBe(false);
    expect(['engine-waiting', 'engine-running', 'engine-kv-cache', 'engine:x'].every((m) => readsEngine(m as 'engine:x'))).toBe(true);
    expect(readsEngine('queue') || readsEngine('ongoing')).toBe(false);
  });
});

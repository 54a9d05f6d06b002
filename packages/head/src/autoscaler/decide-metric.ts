/**
 * One metric's judgement: rules 5–8 of decide.ts (missing metric, up, down,
 * inside the band) for one metric of a policy and its own timers. decide.ts
 * runs it once per metric and takes the largest count asked for, as HPA
 * does; with the single `metric`/`target` of older policies there is one
 * judgement and the decision is exactly it. Pure, like decide.ts.
 */
import { isCountMetric, mayBeAbsent, metricValue } from './metrics.js';
import { slidePeak } from './sliding-peak.js';
import type { AutoscalingPolicy, Decision, LoadSample, MetricTarget, MetricTimers } from './types.js';

/** What every metric's judgement shares: the group's reports, aggregated once by decide(). */
export interface Shared {
  nowMs: number;
  current: number;
  ready: number;
  /** max(min, floor), capped at max. */
  lower: number;
  floor: number;
  /** The latest report of each replica in the look-back window. */
  replicas: readonly LoadSample[];
  /** Calls waiting in routers, queued in replicas, in flight. */
  waiting: number;
  queued: number;
  inFlight: number;
  /** The engines' running calls, and whether every replica reported them. */
  engineRunning: number;
  engineRunningAll: boolean;
}

/** A metric's value over the group, as the event's inputs show it. */
export interface MetricReading {
  /** Summed over the replicas that reported it (+ routers' waiting calls for counts). */
  metric: number;
  perReplica: number;
  /** Replicas whose report carried it. */
  reported: number;
  inputs: Decision['inputs'];
}

export interface Judgement extends MetricReading {
  /** The count this metric asks for (current: hold). */
  want: number;
  /** Its reason; for a change, without the ": from → to" decide() adds. */
  reason: string;
  timers: MetricTimers;
  /** perReplica / target; Infinity when not every ready replica reported it (what keeps the count up). */
  ratio: number;
}

export const fmt = (n: number): string => String(Math.round(n * 100) / 100);
export const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** The metric's value over the group from the shared aggregate. */
export function readMetric(m: MetricTarget, s: Shared): MetricReading {
  let reported = 0;
  let sum = 0;
  for (const r of s.replicas) {
    const v = metricValue(m.metric, r);
    if (v === undefined || !Number.isFinite(v)) continue;
    reported++;
    sum += v;
  }
  // Calls waiting in routers for a replica are demand under every count metric (the only demand at zero replicas).
  const metric = sum + (isCountMetric(m.metric) ? s.waiting : 0);
  const perReplica = metric / Math.max(s.ready, 1);
  return { metric, perReplica, reported, inputs: { metric, perReplica, replicas: s.ready, waiting: s.queued + s.waiting, samples: reported, floor: s.floor } };
}

/** Rules 5–8 for one metric (decide.ts has already applied 1–4 to the group). */
export function judgeMetric(policy: AutoscalingPolicy, m: MetricTarget, s: Shared, state: MetricTimers): Judgement {
  const { nowMs, current, ready } = s;
  const { tolerance, maxStep } = policy;
  const { target } = m;
  const reading = readMetric(m, s);
  const { metric, perReplica } = reading;
  const load = `${m.metric} ${fmt(perReplica)}/replica (${fmt(metric)} over ${ready} ready)`;
  const ratio = perReplica / target;
  const hold = (reason: string, timers: MetricTimers, r = ratio): Judgement => ({ ...reading, want: current, reason, timers, ratio: r });
  // A metric asking for a change keeps its timers: outvoted (another metric needs more replicas), it must
  // not earn its delay again; decide() clears every timer when the count does change.
  const change = (want: number, reason: string, timers: MetricTimers): Judgement => ({ ...reading, want, reason, timers, ratio });

  // 5. Every replica reported, but not all of them this metric: hold on it, forgetting its timers.
  if (reading.reported < ready) {
    const what = mayBeAbsent(m.metric) ? ` ${m.metric}` : '';
    return hold(`holding: ${reading.reported} of ${ready} ready replicas reported${what} in the last ${secs(policy.lookbackMs)}`, {}, Infinity);
  }

  const hi = target * (1 + tolerance);
  const lo = target * (1 - tolerance);
  // Calls running that a scale-down under `queue` / `engine-waiting` counts as waiting: the
  // engine's own count only when every replica reports it (else in flight, one kind, never a mix).
  const running = m.metric === 'queue' ? s.inFlight : m.metric === 'engine-waiting' ? (s.engineRunningAll ? s.engineRunning : s.inFlight) : 0;

  // 6. Up: the metric has stayed above the band for the upscale delay; sized for the
  //    lowest value seen meanwhile, so one noisy report cannot buy an extra replica.
  if (perReplica > hi) {
    const since = state.aboveSinceMs ?? nowMs;
    const low = Math.min(metric, state.aboveSinceMs === undefined ? metric : (state.aboveLow ?? metric));
    const next: MetricTimers = { aboveSinceMs: since, aboveLow: low };
    const held = nowMs - since;
    const raw = Math.ceil(low / target);
    if (raw <= current) return hold(`${load} > ${fmt(hi)}, but ${current} replicas (${current - ready} starting) cover ${fmt(low)}`, next);
    if (held < policy.upscaleDelayMs) return hold(`${load} > ${fmt(hi)} for ${secs(held)} < ${secs(policy.upscaleDelayMs)}`, next);
    const want = Math.min(policy.max, raw, current + maxStep);
    const why = want === policy.max && raw > policy.max ? ` (max ${policy.max})` : want < raw ? ` (max step ${maxStep})` : '';
    if (want === current) return hold(`${load} > ${fmt(hi)}, already at max ${policy.max}`, next);
    return change(want, `${load} > ${fmt(target)} × ${fmt(1 + tolerance)} for ${secs(held)}${why}`, next);
  }

  // 7. Down: below the band for the downscale delay, by the largest step (≤ maxStep)
  //    that does not by itself push the metric over the target — sized for the
  //    highest value of the last downscaleDelayMs (the peak), so a steady load
  //    that wobbles is not scaled down on a trough and back up on the next
  //    crest. The peak slides (sliding-peak.ts, as HPA's stabilization window):
  //    a spike older than the delay no longer holds the group up.
  //    Under `ongoing` and the levels the remaining replicas share the same
  //    total; under `queue` / `engine-waiting` the calls the removed replicas
  //    were running are counted as waiting (an upper bound), sized for the
  //    peak of running calls of the same window.
  if (perReplica < lo) {
    const since = state.belowSinceMs ?? nowMs;
    const { peak, runningPeak, slices } = slidePeak(state, policy.downscaleDelayMs, nowMs, metric, running);
    const next: MetricTimers = { belowSinceMs: since, belowPeak: peak, belowRunningPeak: runningPeak, belowPeaks: slices };
    const held = nowMs - since;
    const bottom = Math.max(s.lower, 1);
    if (current <= bottom) return hold(`${load} < ${fmt(lo)}, at the lower bound ${bottom}`, next);
    if (held < policy.downscaleDelayMs) return hold(`${load} < ${fmt(lo)} for ${secs(held)} < ${secs(policy.downscaleDelayMs)}`, next);
    const after = (k: number): number => (peak + (runningPeak * k) / Math.max(ready, 1)) / (current - k);
    let k = Math.min(maxStep, current - bottom);
    while (k > 0 && after(k) > target) k--;
    if (k === 0) return hold(`${load} < ${fmt(lo)}, but one replica less would make it ${fmt(after(1))} > ${fmt(target)}`, next);
    return change(current - k, `${load} < ${fmt(target)} × ${fmt(1 - tolerance)} for ${secs(held)}, ${fmt(after(k))} after${peak > metric ? ` (sized for the peak ${fmt(peak)})` : ''}`, next);
  }

  // 8. Inside the band.
  return hold(`${load} within ${fmt(lo)}…${fmt(hi)}`, {});
}

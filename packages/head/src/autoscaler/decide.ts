/**
 * The autoscaling decision: policy, clock, load and state in; a replica count,
 * a reason and the next state out. Pure (no I/O, no Date.now()): the
 * controller calls it at least every 250 ms, applies `desired`, persists
 * `state`, and records each change as an `rg.autoscale` event.
 *
 * Rules, first match wins (docs/autoscaling.md has the table):
 *  1. bounds: below max(min, floor) or above max → go there now;
 *  2. from zero: current 0 and calls waiting → up now, no delay;
 *  3. missing reports: fewer fresh replica reports than ready replicas → hold,
 *     forget the timers (just after a head failover, or reports lost);
 *  4. to zero: min and floor 0, no traffic at all for scaleToZeroAfterMs → 0
 *     (read from queued / in flight, which every report carries, and the
 *     engine's counts where present — so a group whose engine lacks the
 *     policy's metric still scales to zero when idle);
 *  5. missing metric: fewer reports carrying the policy's metric than ready
 *     replicas (only engine metrics can be absent) → hold, forget the
 *     up/down timers but keep the idle timer;
 *  6. above target × (1 + tolerance) for upscaleDelayMs → up, at most maxStep,
 *     sized for the lowest value seen meanwhile;
 *  7. below target × (1 − tolerance) for downscaleDelayMs → down, never below 1
 *     nor so far that the peaks seen meanwhile would rise over the target;
 *  8. otherwise hold.
 */
import { floorAt } from './floors.js';
import { isCountMetric, metricValue, readsEngine } from './metrics.js';
import type { AutoscalerState, AutoscalingPolicy, Decision, DemandSample, LoadSample } from './types.js';

export interface DecideInput {
  nowMs: number;
  /** Replicas the group should have now (its current desired count). */
  current: number;
  /** Of which ready (serving and reporting). */
  ready: number;
  samples: readonly LoadSample[];
  demand: readonly DemandSample[];
}

/** Latest sample per source within (now − lookback, now]. */
function latest<T extends { timeMs: number }>(items: readonly T[], keyOf: (t: T) => string, nowMs: number, lookbackMs: number): Map<string, T> {
  const out = new Map<string, T>();
  for (const s of items) {
    if (s.timeMs > nowMs || s.timeMs <= nowMs - lookbackMs) continue;
    const k = keyOf(s);
    const prev = out.get(k);
    if (!prev || s.timeMs > prev.timeMs) out.set(k, s);
  }
  return out;
}

const fmt = (n: number): string => String(Math.round(n * 100) / 100);
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

export function decide(policy: AutoscalingPolicy, input: DecideInput, state: AutoscalerState): Decision {
  const { nowMs, current, ready } = input;
  const { target, tolerance, maxStep } = policy;
  const counts = isCountMetric(policy.metric);

  // Aggregate: the latest report of each replica and of each router in the look-back window.
  const replicas = latest(input.samples, (s) => s.replicaId, nowMs, policy.lookbackMs);
  const routers = latest(input.demand, (d) => d.routerId, nowMs, policy.lookbackMs);
  let queued = 0;
  let inFlight = 0;
  let engineBusy = 0;
  let engineRunning = 0;
  let engineRunningAll = true;
  let reported = 0;
  let sum = 0;
  for (const s of replicas.values()) {
    queued += Math.max(0, s.queued);
    inFlight += Math.max(0, s.inFlight);
    engineBusy += Math.max(0, s.engine?.waiting ?? 0) + Math.max(0, s.engine?.running ?? 0);
    if (s.engine?.running === undefined) engineRunningAll = false;
    else engineRunning += Math.max(0, s.engine.running);
    const v = metricValue(policy.metric, s);
    if (v === undefined || !Number.isFinite(v)) continue;
    reported++;
    sum += v;
  }
  let waiting = 0;
  for (const d of routers.values()) waiting += Math.max(0, d.waiting);
  // Calls waiting in routers for a replica are demand under every count metric (the only demand at zero replicas).
  const metric = sum + (counts ? waiting : 0);
  const traffic = queued + waiting + inFlight + engineBusy;
  const perReplica = metric / Math.max(ready, 1);
  const floor = floorAt(policy.floors, nowMs);
  const lower = Math.min(Math.max(policy.min, floor), policy.max);
  const inputs: Decision['inputs'] = { metric, perReplica, replicas: ready, waiting: queued + waiting, samples: reported, floor };
  const load = `${policy.metric} ${fmt(perReplica)}/replica (${fmt(metric)} over ${ready} ready)`;
  const idleSinceMs = traffic === 0 ? (state.idleSinceMs ?? nowMs) : undefined;
  // Calls running that a scale-down under `queue` / `engine-waiting` counts as waiting: the
  // engine's own count only when every replica reports it (else in flight, one kind, never a mix).
  const running = policy.metric === 'queue' ? inFlight : policy.metric === 'engine-waiting' ? (engineRunningAll ? engineRunning : inFlight) : 0;

  const hold = (reason: string, next: AutoscalerState): Decision => ({ desired: current, changed: false, reason, inputs, state: next });
  const change = (desired: number, reason: string): Decision => ({
    desired,
    changed: desired !== current,
    reason: `${reason}: ${current} → ${desired}`,
    inputs,
    // A change restarts both timers: the next move must earn its full delay again.
    state: { idleSinceMs, lastChangeMs: nowMs },
  });

  // 1. Hard bounds need no load data, and apply at once (not limited by maxStep).
  if (current < lower) return change(lower, floor > policy.min ? `floor ${floor} from a cron window` : `below min ${policy.min}`);
  if (current > policy.max) return change(policy.max, `above max ${policy.max}`);

  // 2. From zero: no replica can report, so the routers' waiting calls decide, at once.
  if (current === 0) {
    if (waiting > 0) {
      const want = Math.min(policy.max, maxStep, counts ? Math.max(1, Math.ceil(metric / target)) : 1);
      return change(want, `${fmt(waiting)} calls waiting with no replica`);
    }
    return hold(`no replicas and no calls waiting`, { ...state, aboveSinceMs: undefined, aboveLow: undefined, belowSinceMs: undefined, belowPeak: undefined, belowRunningPeak: undefined, idleSinceMs });
  }

  // 3. Too few fresh reports: hold and forget timers rather than decide blind.
  if (replicas.size < ready) {
    return hold(`holding: ${replicas.size} of ${ready} ready replicas reported in the last ${secs(policy.lookbackMs)}`, { lastChangeMs: state.lastChangeMs });
  }

  // 4. To zero: only when nothing (min, floor) keeps a replica and nothing at all is happening.
  if (lower === 0 && policy.scaleToZeroAfterMs > 0 && idleSinceMs !== undefined && nowMs - idleSinceMs >= policy.scaleToZeroAfterMs) {
    return change(0, `no traffic for ${secs(nowMs - idleSinceMs)} ≥ ${secs(policy.scaleToZeroAfterMs)}`);
  }

  // 5. Every replica reported, but not all of them the policy's (engine) metric: hold, still counting idle time.
  if (reported < ready) {
    const what = readsEngine(policy.metric) ? ` ${policy.metric}` : '';
    return hold(`holding: ${reported} of ${ready} ready replicas reported${what} in the last ${secs(policy.lookbackMs)}`, { lastChangeMs: state.lastChangeMs, idleSinceMs });
  }

  const hi = target * (1 + tolerance);
  const lo = target * (1 - tolerance);

  // 6. Up: the metric has stayed above the band for the upscale delay; sized for the
  //    lowest value seen meanwhile, so one noisy report cannot buy an extra replica.
  if (perReplica > hi) {
    const since = state.aboveSinceMs ?? nowMs;
    const low = Math.min(metric, state.aboveSinceMs === undefined ? metric : (state.aboveLow ?? metric));
    const next: AutoscalerState = { ...state, aboveSinceMs: since, aboveLow: low, belowSinceMs: undefined, belowPeak: undefined, belowRunningPeak: undefined, idleSinceMs };
    const held = nowMs - since;
    const raw = Math.ceil(low / target);
    if (raw <= current) return hold(`${load} > ${fmt(hi)}, but ${current} replicas (${current - ready} starting) cover ${fmt(low)}`, next);
    if (held < policy.upscaleDelayMs) return hold(`${load} > ${fmt(hi)} for ${secs(held)} < ${secs(policy.upscaleDelayMs)}`, next);
    const want = Math.min(policy.max, raw, current + maxStep);
    const why = want === policy.max && raw > policy.max ? ` (max ${policy.max})` : want < raw ? ` (max step ${maxStep})` : '';
    if (want === current) return hold(`${load} > ${fmt(hi)}, already at max ${policy.max}`, next);
    return change(want, `${load} > ${fmt(target)} × ${fmt(1 + tolerance)} for ${secs(held)}${why}`);
  }

  // 7. Down: below the band for the downscale delay, by the largest step (≤ maxStep)
  //    that does not by itself push the metric over the target — sized for the
  //    highest value seen during the delay (the peak), so a steady load that
  //    wobbles is not scaled down on a trough and back up on the next crest.
  //    Under `ongoing` and the levels the remaining replicas share the same
  //    total; under `queue` / `engine-waiting` the calls the removed replicas
  //    were running are counted as waiting (an upper bound), sized for the
  //    peak of running calls seen during the delay too.
  if (perReplica < lo) {
    const since = state.belowSinceMs ?? nowMs;
    const peak = Math.max(metric, state.belowSinceMs === undefined ? metric : (state.belowPeak ?? metric));
    const runningPeak = Math.max(running, state.belowSinceMs === undefined ? running : (state.belowRunningPeak ?? running));
    const next: AutoscalerState = { ...state, aboveSinceMs: undefined, aboveLow: undefined, belowSinceMs: since, belowPeak: peak, belowRunningPeak: runningPeak, idleSinceMs };
    const held = nowMs - since;
    const bottom = Math.max(lower, 1);
    if (current <= bottom) return hold(`${load} < ${fmt(lo)}, at the lower bound ${bottom}`, next);
    if (held < policy.downscaleDelayMs) return hold(`${load} < ${fmt(lo)} for ${secs(held)} < ${secs(policy.downscaleDelayMs)}`, next);
    const after = (k: number): number => (peak + (runningPeak * k) / Math.max(ready, 1)) / (current - k);
    let k = Math.min(maxStep, current - bottom);
    while (k > 0 && after(k) > target) k--;
    if (k === 0) return hold(`${load} < ${fmt(lo)}, but one replica less would make it ${fmt(after(1))} > ${fmt(target)}`, next);
    return change(current - k, `${load} < ${fmt(target)} × ${fmt(1 - tolerance)} for ${secs(held)}, ${fmt(after(k))} after${peak > metric ? ` (sized for the peak ${fmt(peak)})` : ''}`);
  }

  // 8. Inside the band.
  return hold(`${load} within ${fmt(lo)}…${fmt(hi)}`, { ...state, aboveSinceMs: undefined, aboveLow: undefined, belowSinceMs: undefined, belowPeak: undefined, belowRunningPeak: undefined, idleSinceMs });
}

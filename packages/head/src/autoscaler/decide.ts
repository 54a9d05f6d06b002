/**
 * The autoscaling decision: policy, clock, load and state in; a replica count,
 * a reason and the next state out. Pure (no I/O, no Date.now()): the
 * controller calls it at least every 250 ms, applies `desired`, persists
 * `state`, and records each change as an `rg.autoscale` event.
 *
 * Rules, first match wins (docs/autoscaling.md has the table):
 *  1. bounds: below max(min, floor) or above max → go there now;
 *  2. from zero: current 0 and calls waiting → up now, no delay;
 *  3. missing data: fewer fresh replica samples than ready replicas → hold,
 *     forget the timers (just after a head failover, or reports lost);
 *  4. to zero: min and floor 0, no traffic at all for scaleToZeroAfterMs → 0;
 *  5. above target × (1 + tolerance) for upscaleDelayMs → up, at most maxStep;
 *  6. below target × (1 − tolerance) for downscaleDelayMs → down, never below 1
 *     nor so far that the metric would rise over the target;
 *  7. otherwise hold.
 */
import { floorAt } from './floors.js';
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

  // Aggregate: the latest report of each replica and of each router in the look-back window.
  const replicas = latest(input.samples, (s) => s.replicaId, nowMs, policy.lookbackMs);
  const routers = latest(input.demand, (d) => d.routerId, nowMs, policy.lookbackMs);
  let queued = 0;
  let inFlight = 0;
  for (const s of replicas.values()) {
    queued += Math.max(0, s.queued);
    inFlight += Math.max(0, s.inFlight);
  }
  let waiting = 0;
  for (const d of routers.values()) waiting += Math.max(0, d.waiting);
  const metric = queued + waiting + (policy.metric === 'ongoing' ? inFlight : 0);
  const traffic = queued + waiting + inFlight;
  const perReplica = metric / Math.max(ready, 1);
  const floor = floorAt(policy.floors, nowMs);
  const lower = Math.min(Math.max(policy.min, floor), policy.max);
  const inputs: Decision['inputs'] = { metric, perReplica, replicas: ready, waiting: queued + waiting, samples: replicas.size, floor };
  const name = policy.metric === 'queue' ? 'queue' : 'ongoing';
  const load = `${name} ${fmt(perReplica)}/replica (${fmt(metric)} over ${ready} ready)`;
  const idleSinceMs = traffic === 0 ? (state.idleSinceMs ?? nowMs) : undefined;

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
      const want = Math.min(policy.max, maxStep, Math.max(1, Math.ceil(metric / target)));
      return change(want, `${fmt(waiting)} calls waiting with no replica`);
    }
    return hold(`no replicas and no calls waiting`, { ...state, aboveSinceMs: undefined, belowSinceMs: undefined, idleSinceMs });
  }

  // 3. Too little fresh data: hold and forget timers rather than decide blind.
  if (replicas.size < ready) {
    return hold(`holding: ${replicas.size} of ${ready} ready replicas reported in the last ${secs(policy.lookbackMs)}`, {
      lastChangeMs: state.lastChangeMs,
    });
  }

  // 4. To zero: only when nothing (min, floor) keeps a replica and nothing at all is happening.
  if (lower === 0 && policy.scaleToZeroAfterMs > 0 && idleSinceMs !== undefined && nowMs - idleSinceMs >= policy.scaleToZeroAfterMs) {
    return change(0, `no traffic for ${secs(nowMs - idleSinceMs)} ≥ ${secs(policy.scaleToZeroAfterMs)}`);
  }

  const hi = target * (1 + tolerance);
  const lo = target * (1 - tolerance);
  const raw = Math.ceil(metric / target);

  // 5. Up: the metric has stayed above the band for the upscale delay.
  if (perReplica > hi) {
    const since = state.aboveSinceMs ?? nowMs;
    const next: AutoscalerState = { ...state, aboveSinceMs: since, belowSinceMs: undefined, idleSinceMs };
    const held = nowMs - since;
    if (raw <= current) return hold(`${load} > ${fmt(hi)}, but ${current} replicas (${current - ready} starting) cover ${fmt(metric)}`, next);
    if (held < policy.upscaleDelayMs) return hold(`${load} > ${fmt(hi)} for ${secs(held)} < ${secs(policy.upscaleDelayMs)}`, next);
    const want = Math.min(policy.max, raw, current + maxStep);
    const why = want === policy.max && raw > policy.max ? ` (max ${policy.max})` : want < raw ? ` (max step ${maxStep})` : '';
    if (want === current) return hold(`${load} > ${fmt(hi)}, already at max ${policy.max}`, next);
    return change(want, `${load} > ${fmt(target)} × ${fmt(1 + tolerance)} for ${secs(held)}${why}`);
  }

  // 6. Down: below the band for the downscale delay, by the largest step (≤ maxStep)
  //    that does not by itself push the metric over the target. Under `ongoing`
  //    the remaining replicas share the same total; under `queue` the calls the
  //    removed replicas were running are counted as waiting (an upper bound).
  if (perReplica < lo) {
    const since = state.belowSinceMs ?? nowMs;
    const next: AutoscalerState = { ...state, aboveSinceMs: undefined, belowSinceMs: since, idleSinceMs };
    const held = nowMs - since;
    const bottom = Math.max(lower, 1);
    if (current <= bottom) return hold(`${load} < ${fmt(lo)}, at the lower bound ${bottom}`, next);
    if (held < policy.downscaleDelayMs) return hold(`${load} < ${fmt(lo)} for ${secs(held)} < ${secs(policy.downscaleDelayMs)}`, next);
    const after = (k: number): number => (metric + (policy.metric === 'queue' ? (inFlight * k) / Math.max(ready, 1) : 0)) / (current - k);
    let k = Math.min(maxStep, current - bottom);
    while (k > 0 && after(k) > target) k--;
    if (k === 0) return hold(`${load} < ${fmt(lo)}, but one replica less would make it ${fmt(after(1))} > ${fmt(target)}`, next);
    return change(current - k, `${load} < ${fmt(target)} × ${fmt(1 - tolerance)} for ${secs(held)}, ${fmt(after(k))} after`);
  }

  // 7. Inside the band.
  return hold(`${load} within ${fmt(lo)}…${fmt(hi)}`, { ...state, aboveSinceMs: undefined, belowSinceMs: undefined, idleSinceMs });
}

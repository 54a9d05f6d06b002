/**
 * The autoscaling decision: policy, clock, load and state in; a replica count,
 * a reason, the metric that drove it and the next state out. Pure (no I/O,
 * no Date.now()): the controller calls it at least every 250 ms, applies
 * `desired`, persists `state`, and records each change as an `rg.autoscale`
 * event.
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
 *  then, for each of the policy's metrics on its own (decide-metric.ts):
 *  5. missing metric: fewer reports carrying it than ready replicas (every
 *     metric but queue and ongoing can be absent) → it holds, forgetting its
 *     up/down timers (the idle timer is the group's and stays);
 *  6. above target × (1 + tolerance) for upscaleDelayMs → up, at most maxStep,
 *     sized for the lowest value seen meanwhile;
 *  7. below target × (1 − tolerance) for downscaleDelayMs → down, never below 1
 *     nor so far that the peaks of the last downscaleDelayMs would rise over
 *     the target (a sliding window, as HPA's scale-down stabilization);
 *  8. otherwise hold;
 *  and the count is the largest any metric asks for (HPA's rule): one metric
 *  over its target scales up whatever the others say, and the group comes
 *  down only as far as the metric that needs the most replicas allows. A
 *  metric not reported holds the count where it is (it may be the one that
 *  needs it). That metric — the one asking for the count chosen; of equals,
 *  the one furthest above its target — names the decision.
 */
import { floorAt } from './floors.js';
import { fmt, judgeMetric, readMetric, secs, type Judgement, type Shared } from './decide-metric.js';
import { isCountMetric } from './metrics.js';
import type { AutoscalerState, AutoscalingPolicy, Decision, DemandSample, LoadSample, MetricTarget, MetricTimers } from './types.js';

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

/** The timers a metric kept in `state`: the first metric's are the state's own. */
function timersOf(state: AutoscalerState, i: number, m: MetricTarget): MetricTimers {
  if (i > 0) return state.others?.[m.metric] ?? {};
  const { aboveSinceMs, aboveLow, belowSinceMs, belowPeak, belowRunningPeak, belowPeaks } = state;
  return { aboveSinceMs, aboveLow, belowSinceMs, belowPeak, belowRunningPeak, belowPeaks };
}

const NO_TIMERS: MetricTimers = { aboveSinceMs: undefined, aboveLow: undefined, belowSinceMs: undefined, belowPeak: undefined, belowRunningPeak: undefined, belowPeaks: undefined };

export function decide(policy: AutoscalingPolicy, input: DecideInput, state: AutoscalerState): Decision {
  const { nowMs, current, ready } = input;
  const { maxStep } = policy;

  // Aggregate: the latest report of each replica and of each router in the look-back window.
  const replicas = latest(input.samples, (s) => s.replicaId, nowMs, policy.lookbackMs);
  const routers = latest(input.demand, (d) => d.routerId, nowMs, policy.lookbackMs);
  let queued = 0;
  let inFlight = 0;
  let engineBusy = 0;
  let engineRunning = 0;
  let engineRunningAll = true;
  for (const s of replicas.values()) {
    queued += Math.max(0, s.queued);
    inFlight += Math.max(0, s.inFlight);
    engineBusy += Math.max(0, s.engine?.waiting ?? 0) + Math.max(0, s.engine?.running ?? 0);
    if (s.engine?.running === undefined) engineRunningAll = false;
    else engineRunning += Math.max(0, s.engine.running);
  }
  let waiting = 0;
  for (const d of routers.values()) waiting += Math.max(0, d.waiting);
  const traffic = queued + waiting + inFlight + engineBusy;
  const floor = floorAt(policy.floors, nowMs);
  const lower = Math.min(Math.max(policy.min, floor), policy.max);
  const shared: Shared = { nowMs, current, ready, lower, floor, replicas: [...replicas.values()], waiting, queued, inFlight, engineRunning, engineRunningAll };
  const idleSinceMs = traffic === 0 ? (state.idleSinceMs ?? nowMs) : undefined;

  // Rules 1–4 are the group's; they are named after the policy's first metric.
  const first = policy.metrics[0];
  const firstReading = readMetric(first, shared);
  const decision = (desired: number, reason: string, by: MetricTarget, inputs: Decision['inputs'], next: AutoscalerState): Decision => ({
    desired, changed: desired !== current, reason, metric: by.metric, target: by.target, inputs, state: next,
  });
  const hold = (reason: string, next: AutoscalerState): Decision => decision(current, reason, first, firstReading.inputs, next);
  // A change restarts every timer: the next move must earn its full delay again.
  const change = (desired: number, reason: string, by = first, inputs = firstReading.inputs): Decision =>
    decision(desired, `${reason}: ${current} → ${desired}`, by, inputs, { idleSinceMs, lastChangeMs: nowMs });

  // 1. Hard bounds need no load data, and apply at once (not limited by maxStep).
  if (current < lower) return change(lower, floor > policy.min ? `floor ${floor} from a cron window` : `below min ${policy.min}`);
  if (current > policy.max) return change(policy.max, `above max ${policy.max}`);

  // 2. From zero: no replica can report, so the routers' waiting calls decide, at once
  //    (levels — KV-cache, resources, gauges — are no calls: they ask for one replica).
  if (current === 0) {
    if (waiting > 0) {
      let by = first;
      let ask = 0;
      for (const m of policy.metrics) {
        const n = isCountMetric(m.metric) ? Math.max(1, Math.ceil(readMetric(m, shared).metric / m.target)) : 1;
        if (n > ask) [ask, by] = [n, m];
      }
      return change(Math.min(policy.max, maxStep, ask), `${fmt(waiting)} calls waiting with no replica`, by, readMetric(by, shared).inputs);
    }
    return hold(`no replicas and no calls waiting`, { ...state, ...NO_TIMERS, others: undefined, idleSinceMs });
  }

  // 3. Too few fresh reports: hold and forget timers rather than decide blind.
  if (replicas.size < ready) {
    return hold(`holding: ${replicas.size} of ${ready} ready replicas reported in the last ${secs(policy.lookbackMs)}`, { lastChangeMs: state.lastChangeMs });
  }

  // 4. To zero: only when nothing (min, floor) keeps a replica and nothing at all is happening.
  if (lower === 0 && policy.scaleToZeroAfterMs > 0 && idleSinceMs !== undefined && nowMs - idleSinceMs >= policy.scaleToZeroAfterMs) {
    return change(0, `no traffic for ${secs(nowMs - idleSinceMs)} ≥ ${secs(policy.scaleToZeroAfterMs)}`);
  }

  // 5–8, metric by metric; the largest count asked for wins.
  const judged = policy.metrics.map((m, i) => ({ m, j: judgeMetric(policy, m, shared, timersOf(state, i, m)) }));
  let top = judged[0]!;
  for (const c of judged.slice(1)) if (c.j.want > top.j.want || (c.j.want === top.j.want && c.j.ratio > top.j.ratio)) top = c;
  if (top.j.want !== current) return change(top.j.want, top.j.reason, top.m, top.j.inputs);
  return decision(current, top.j.reason, top.m, top.j.inputs, stateAfterHold(state, judged, idleSinceMs));
}

/** The next state when the count holds: each metric's timers as its judgement left them. */
function stateAfterHold(state: AutoscalerState, judged: ReadonlyArray<{ m: MetricTarget; j: Judgement }>, idleSinceMs: number | undefined): AutoscalerState {
  const [head, ...rest] = judged;
  const others = rest.length ? Object.fromEntries(rest.map(({ m, j }) => [m.metric, j.timers])) : undefined;
  return { ...NO_TIMERS, ...head?.j.timers, lastChangeMs: state.lastChangeMs, idleSinceMs, ...(others ? { others } : {}) };
}

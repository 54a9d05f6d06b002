import { describe, expect, it } from 'vitest';
import { decide, type DecideInput } from './decide.js';
import { parsePolicy, type AutoscalingPolicyInput } from './policy.js';
import type { AutoscalerState, Decision, LoadSample } from './types.js';

const T0 = 1_000_000;
const TICK = 250;

/** `n` ready replicas, each reporting `queued` and `inFlight` at `nowMs`. */
function load(nowMs: number, n: number, queued: number, inFlight = 0): LoadSample[] {
  return Array.from({ length: n }, (_, i) => ({ timeMs: nowMs, replicaId: `r${i}`, queued, inFlight }));
}

function input(nowMs: number, current: number, queued: number, over: Partial<DecideInput> = {}): DecideInput {
  return { nowMs, current, ready: current, samples: load(nowMs, current, queued), demand: [], ...over };
}

const base: AutoscalingPolicyInput = { min: 1, max: 20, upscaleDelayMs: 1000, downscaleDelayMs: 30_000, maxStep: 4, target: 5, tolerance: 0.1 };

describe('decide: one rule at a time', () => {
  const policy = parsePolicy(base);

  it.each<[string, DecideInput, AutoscalerState, Partial<Decision>, RegExp]>([
    ['below min → min at once', input(T0, 0, 0), {}, { desired: 1, changed: true }, /below min 1: 0 → 1/],
    ['above max → max at once', input(T0, 25, 0), {}, { desired: 20, changed: true }, /above max 20/],
    ['inside the band holds', input(T0, 2, 5), { aboveSinceMs: T0 - 5000 }, { desired: 2, changed: false }, /within 4.5…5.5/],
    ['above, delay not yet passed', input(T0, 2, 20), { aboveSinceMs: T0 - 999 }, { desired: 2, changed: false }, /for 1.0 s < 1.0 s|for 0.999|< 1.0 s/],
    ['above for the delay → up', input(T0, 2, 10), { aboveSinceMs: T0 - 1000 }, { desired: 4, changed: true }, /queue 10\/replica .* > 5 × 1.1 for 1.0 s: 2 → 4$/],
    ['up by at most maxStep', input(T0, 2, 50), { aboveSinceMs: T0 - 1000 }, { desired: 6, changed: true }, /\(max step 4\): 2 → 6/],
    ['up to at most max', input(T0, 18, 50), { aboveSinceMs: T0 - 1000 }, { desired: 20, changed: true }, /\(max 20\): 18 → 20/],
    ['above, but starting replicas already cover it', { nowMs: T0, current: 4, ready: 1, samples: load(T0, 1, 15), demand: [] }, { aboveSinceMs: T0 - 5000 }, { desired: 4, changed: false }, /3 starting/],
    ['below, delay not yet passed', input(T0, 4, 1), { belowSinceMs: T0 - 29_999 }, { desired: 4, changed: false }, /< 30.0 s/],
    ['below for the delay → down as far as the displaced calls allow', input(T0, 4, 1, { samples: load(T0, 4, 1, 10) }), { belowSinceMs: T0 - 30_000 }, { desired: 3, changed: true }, /< 5 × 0.9 for 30.0 s, 4.67 after: 4 → 3/],
    ['below, but one replica less would overshoot → hold', input(T0, 9, 4, { samples: load(T0, 9, 4, 10) }), { belowSinceMs: T0 - 30_000 }, { desired: 9, changed: false }, /one replica less would make it 5.75 > 5/],
    ['below for the delay, no traffic → down by maxStep', input(T0, 10, 0), { belowSinceMs: T0 - 30_000 }, { desired: 6, changed: true }, /10 → 6/],
    ['below at the lower bound holds', input(T0, 1, 0), { belowSinceMs: T0 - 60_000 }, { desired: 1, changed: false }, /lower bound 1/],
    ['too few fresh samples → hold', { nowMs: T0, current: 3, ready: 3, samples: load(T0, 2, 50), demand: [] }, { aboveSinceMs: T0 - 10_000 }, { desired: 3, changed: false }, /holding: 2 of 3 ready replicas reported/],
    ['stale samples do not count', { nowMs: T0, current: 2, ready: 2, samples: load(T0 - 5000, 2, 50), demand: [] }, { aboveSinceMs: T0 - 10_000 }, { desired: 2, changed: false }, /holding: 0 of 2/],
  ])('%s', (_name, inp, state, want, reason) => {
    const d = decide(policy, inp, state);
    expect(d).toMatchObject(want);
    expect(d.reason).toMatch(reason);
  });

  it('starts the timers when the metric first crosses, and clears them inside the band', () => {
    const up = decide(policy, input(T0, 2, 20), {});
    expect(up.state).toMatchObject({ aboveSinceMs: T0, belowSinceMs: undefined });
    const down = decide(policy, input(T0, 2, 0), up.state);
    expect(down.state).toMatchObject({ aboveSinceMs: undefined, belowSinceMs: T0 });
    const band = decide(policy, input(T0, 2, 5), down.state);
    expect(band.state).toMatchObject({ aboveSinceMs: undefined, belowSinceMs: undefined });
  });

  it('uses the latest sample per replica and per router, and reports its inputs', () => {
    const samples: LoadSample[] = [
      { timeMs: T0 - 2000, replicaId: 'a', queued: 100, inFlight: 1 },
      { timeMs: T0 - 1000, replicaId: 'a', queued: 6, inFlight: 2 },
      { timeMs: T0 - 500, replicaId: 'b', queued: 8, inFlight: 2 },
    ];
    const demand = [
      { timeMs: T0 - 3000, routerId: 'x', waiting: 50 },
      { timeMs: T0 - 100, routerId: 'x', waiting: 2 },
      { timeMs: T0 - 200, routerId: 'y', waiting: 4 },
    ];
    const d = decide(policy, { nowMs: T0, current: 2, ready: 2, samples, demand }, {});
    expect(d.inputs).toEqual({ metric: 20, perReplica: 10, replicas: 2, waiting: 20, samples: 2, floor: 0 });
    const ongoing = decide(parsePolicy({ ...base, metric: 'ongoing' }), { nowMs: T0, current: 2, ready: 2, samples, demand }, {});
    expect(ongoing.inputs).toMatchObject({ metric: 24, perReplica: 12 });
  });

  it('ongoing: scales down proportionally, at most maxStep', () => {
    const p = parsePolicy({ ...base, metric: 'ongoing' });
    const samples = load(T0, 10, 0, 1); // 10 in flight in all: 2 replicas at target 5
    expect(decide(p, { nowMs: T0, current: 10, ready: 10, samples, demand: [] }, { belowSinceMs: T0 - 30_000 })).toMatchObject({ desired: 6, changed: true });
    const few = load(T0, 4, 0, 1); // 4 in flight: 1 replica
    expect(decide(p, { nowMs: T0, current: 4, ready: 4, samples: few, demand: [] }, { belowSinceMs: T0 - 30_000 })).toMatchObject({ desired: 1, changed: true });
  });

  it('a change restarts the delays', () => {
    const d = decide(policy, input(T0, 2, 10), { aboveSinceMs: T0 - 1000, idleSinceMs: undefined });
    expect(d.state).toEqual({ idleSinceMs: undefined, lastChangeMs: T0 });
  });
});

describe('decide: to and from zero', () => {
  const policy = parsePolicy({ ...base, min: 0, scaleToZeroAfterMs: 120_000 });

  it('scales from zero at once when calls wait in a router, without a delay', () => {
    const d = decide(policy, { nowMs: T0, current: 0, ready: 0, samples: [], demand: [{ timeMs: T0, routerId: 'x', waiting: 1 }] }, {});
    expect(d).toMatchObject({ desired: 1, changed: true });
    expect(d.reason).toMatch(/1 calls waiting with no replica: 0 → 1/);
    const many = decide(policy, { nowMs: T0, current: 0, ready: 0, samples: [], demand: [{ timeMs: T0, routerId: 'x', waiting: 100 }] }, {});
    expect(many.desired).toBe(4); // bounded by maxStep
  });

  it('stays at zero with nothing waiting', () => {
    expect(decide(policy, { nowMs: T0, current: 0, ready: 0, samples: [], demand: [] }, {})).toMatchObject({ desired: 0, changed: false });
  });

  it('goes to zero only after no traffic at all for the idle delay', () => {
    const idle = input(T0, 1, 0);
    expect(decide(policy, idle, { idleSinceMs: T0 - 119_999 })).toMatchObject({ desired: 1, changed: false });
    expect(decide(policy, idle, { idleSinceMs: T0 - 120_000 })).toMatchObject({ desired: 0, changed: true });
    // A call in flight is traffic even under the queue metric.
    const busy = { ...idle, samples: load(T0, 1, 0, 1) };
    const d = decide(policy, busy, { idleSinceMs: T0 - 500_000 });
    expect(d).toMatchObject({ desired: 1, changed: false });
    expect(d.state.idleSinceMs).toBeUndefined();
  });

  it('never goes to zero while min is 1, or when scaleToZeroAfterMs is 0', () => {
    expect(decide(parsePolicy({ ...base, scaleToZeroAfterMs: 1000 }), input(T0, 1, 0), { idleSinceMs: T0 - 1e6 }).desired).toBe(1);
    expect(decide(parsePolicy({ ...base, min: 0 }), input(T0, 1, 0), { idleSinceMs: T0 - 1e6, belowSinceMs: T0 - 1e6 }).desired).toBe(1);
  });
});

/**
 * A synthetic group: `arrivals` calls per second, each replica serves
 * `capacity`; what exceeds capacity waits, spread over the replicas. Every
 * 250 ms the replicas report, the decision is taken and applied at once.
 */
function simulate(policyInput: AutoscalingPolicyInput, arrivalsAt: (t: number) => number, from: number, to: number, start = 1) {
  const policy = parsePolicy(policyInput);
  const capacity = 10;
  let current = start;
  let state: AutoscalerState = {};
  const changes: Array<{ t: number; from: number; to: number; reason: string }> = [];
  for (let t = from; t <= to; t += TICK) {
    const a = arrivalsAt(t);
    const waitingTotal = Math.max(0, a - capacity * current);
    const samples = current === 0 ? [] : load(t, current, waitingTotal / current, Math.min(capacity, a / current));
    const demand = current === 0 && a > 0 ? [{ timeMs: t, routerId: 'router', waiting: a }] : [];
    const d = decide(policy, { nowMs: t, current, ready: current, samples, demand }, state);
    state = d.state;
    if (d.changed) changes.push({ t, from: current, to: d.desired, reason: d.reason });
    current = d.desired;
  }
  return { changes, current };
}

function reversals(changes: ReadonlyArray<{ from: number; to: number }>): number {
  let n = 0;
  let last = 0;
  for (const c of changes) {
    const dir = Math.sign(c.to - c.from);
    if (last !== 0 && dir !== last) n++;
    last = dir;
  }
  return n;
}

describe('decide: step load simulation', () => {
  const STEP = 10_000;
  const policy: AutoscalingPolicyInput = { ...base, min: 0, scaleToZeroAfterMs: 120_000 };

  it('scales up exactly one upscale delay after the step, then settles with at most one reversal', () => {
    const { changes, current } = simulate(policy, (t) => (t < STEP ? 5 : 60), 0, STEP + 60_000);
    const first = changes[0];
    expect(first).toBeDefined();
    expect(first?.t).toBe(STEP + 1000);
    expect(first?.to).toBeGreaterThan(1);
    expect(reversals(changes)).toBeLessThanOrEqual(1);
    // 60 calls/s, 10 per replica, 5 waiting per replica as the target: 4 replicas.
    expect(current).toBe(4);
    expect(changes.at(-1)?.t).toBeLessThan(STEP + 60_000 - 20_000); // settled well before the end
  });

  it.each([0, 250, 2000])('with an upscale delay of %i ms the decision comes within one tick of step + delay', (upscaleDelayMs) => {
    const { changes } = simulate({ ...policy, upscaleDelayMs }, (t) => (t < STEP ? 5 : 60), 0, STEP + 10_000);
    const at = changes[0]?.t ?? Number.NaN;
    expect(at).toBeGreaterThanOrEqual(STEP + upscaleDelayMs);
    expect(at - (STEP + upscaleDelayMs)).toBeLessThan(TICK);
  });

  it('holds steady under a steady load that needs more replicas (no flapping over 60 s)', () => {
    // 130 calls/s: 8 replicas leave 6.25 waiting each (over the band), 9 leave 4.44 (under it);
    // the down rule sees that 8 would overshoot and keeps 9.
    const { changes, current } = simulate(policy, () => 130, 0, 60_000, 1);
    expect(changes.length).toBeGreaterThan(0);
    expect(reversals(changes)).toBe(0);
    expect(current).toBe(9);
  });

  it('load stops → down after the downscale delay, then to zero after the idle delay', () => {
    const STOP = 60_000;
    const { changes, current } = simulate(policy, (t) => (t < STOP ? 60 : 0), 0, STOP + 200_000, 4);
    const after = changes.filter((c) => c.t >= STOP);
    expect(after[0]).toMatchObject({ t: STOP + 30_000, from: 4, to: 1 });
    expect(after[1]).toMatchObject({ t: STOP + 120_000, from: 1, to: 0 });
    expect(after[1]?.reason).toMatch(/no traffic for 120.0 s/);
    expect(after).toHaveLength(2);
    expect(current).toBe(0);
  });

  it('comes back from zero on the next tick when calls arrive', () => {
    const BACK = 200_000;
    const { changes } = simulate(policy, (t) => (t < 60_000 || t >= BACK ? 20 : 0), 0, BACK + 5000, 2);
    const back = changes.find((c) => c.t >= BACK);
    expect(back).toMatchObject({ t: BACK, from: 0 });
    expect(back?.to).toBeGreaterThanOrEqual(1);
  });
});

describe('decide: head failover', () => {
  const policy = parsePolicy(base);

  it('a new head with persisted state and no fresh reports holds, then decides on fresh data', () => {
    // The old head saw the queue high for 10 s; the new one has no reports yet.
    const persisted: AutoscalerState = { aboveSinceMs: T0 - 10_000, lastChangeMs: T0 - 60_000 };
    const blind = decide(policy, { nowMs: T0, current: 4, ready: 4, samples: [], demand: [] }, persisted);
    expect(blind).toMatchObject({ desired: 4, changed: false });
    expect(blind.reason).toMatch(/holding: 0 of 4/);
    expect(blind.state.aboveSinceMs).toBeUndefined();
    // Fresh reports arrive: the evidence is re-gathered for one full delay before acting.
    const first = decide(policy, input(T0 + 1000, 4, 20), blind.state);
    expect(first.changed).toBe(false);
    const later = decide(policy, input(T0 + 2000, 4, 20), first.state);
    expect(later).toMatchObject({ changed: true, desired: 8 });
  });
});

describe('decide: several metrics (the largest count wins, as HPA does)', () => {
  /** One ready replica per entry of `cpu`: each `queued` calls and that many cores (undefined: no resource report). */
  const two = (nowMs: number, queued: number, cpu: Array<number | undefined>): LoadSample[] =>
    cpu.map((c, i) => ({ timeMs: nowMs, replicaId: `r${i}`, queued, inFlight: 0, ...(c === undefined ? {} : { resources: { cpu: c } }) }));
  const at = (samples: LoadSample[], current = 2): DecideInput => ({ nowMs: T0, current, ready: current, samples, demand: [] });
  const multi = parsePolicy({ ...base, min: 0, target: undefined, metrics: [{ metric: 'queue', target: 5 }, { metric: 'cpu', target: 0.5 }] });
  const queueUp = { aboveSinceMs: T0 - 1000 };
  const cpuUp = { others: { cpu: { aboveSinceMs: T0 - 1000 } } };
  const bothDown = { belowSinceMs: T0 - 30_000, others: { cpu: { belowSinceMs: T0 - 30_000 } } };

  it.each<[string, DecideInput, AutoscalerState, Partial<Decision>, RegExp]>([
    ['cpu over its target, queue inside the band → up, named cpu', at(two(T0, 5, [1, 1])), cpuUp, { desired: 4, changed: true, metric: 'cpu', target: 0.5 }, /^cpu 1\/replica \(2 over 2 ready\) > 0.5 × 1.1 for 1.0 s: 2 → 4$/],
    ['queue over, cpu under → up, named queue', at(two(T0, 10, [0.1, 0.1])), { ...queueUp, others: { cpu: { belowSinceMs: T0 - 30_000 } } }, { desired: 4, changed: true, metric: 'queue' }, /^queue 10\/replica/],
    ['both up: the larger count wins (cpu 6 over queue 4)', at(two(T0, 10, [1.5, 1.5])), { ...queueUp, ...cpuUp }, { desired: 6, changed: true, metric: 'cpu' }, /cpu 1.5\/replica .*: 2 → 6$/],
    ['cpu would come down, queue is inside the band → hold, named queue (nearest its target)', at(two(T0, 5, [0.05, 0.05, 0.05, 0.05]), 4), { others: { cpu: { belowSinceMs: T0 - 30_000 } } }, { desired: 4, changed: false, metric: 'queue' }, /^queue 5\/replica .* within 4.5…5.5$/],
    ['both down: only as far as the metric needing most replicas allows (cpu: 3)', at(two(T0, 0, [0.3, 0.3, 0.3, 0.3]), 4), bothDown, { desired: 3, changed: true, metric: 'cpu' }, /^cpu 0.3\/replica .* < 0.5 × 0.9 for 30.0 s, 0.4 after: 4 → 3$/],
    ['cpu not reported by one replica, queue up → up on queue', at(two(T0, 10, [1, undefined])), queueUp, { desired: 4, changed: true, metric: 'queue' }, /^queue 10\/replica/],
    ['cpu not reported by one replica, queue down → hold, named cpu', at(two(T0, 0, [0.01, 0.01, 0.01, undefined]), 4), bothDown, { desired: 4, changed: false, metric: 'cpu' }, /^holding: 3 of 4 ready replicas reported cpu in the last 5.0 s$/],
    ['from zero: the counts decide, the levels ask for one', { nowMs: T0, current: 0, ready: 0, samples: [], demand: [{ timeMs: T0, routerId: 'x', waiting: 12 }] }, {}, { desired: 3, changed: true, metric: 'queue' }, /12 calls waiting with no replica: 0 → 3/],
  ])('%s', (_name, inp, state, want, reason) => {
    const d = decide(multi, inp, state);
    expect(d).toMatchObject(want);
    expect(d.reason).toMatch(reason);
  });

  it('each metric keeps its own timers: the first metric in the state, the others by name', () => {
    const first = decide(multi, at(two(T0, 5, [1, 1])), {});
    expect(first).toMatchObject({ desired: 2, changed: false, metric: 'cpu' });
    expect(first.reason).toMatch(/^cpu 1\/replica .* > 0.55 for 0.0 s < 1.0 s$/);
    expect(first.state).toMatchObject({ aboveSinceMs: undefined, belowSinceMs: undefined, others: { cpu: { aboveSinceMs: T0, aboveLow: 2 } } });
    const later = decide(multi, { ...at(two(T0 + 1000, 5, [1, 1])), nowMs: T0 + 1000 }, first.state);
    expect(later).toMatchObject({ desired: 4, changed: true, metric: 'cpu' });
    expect(later.state).toEqual({ idleSinceMs: undefined, lastChangeMs: T0 + 1000 });
  });

  it('a metric outvoted keeps its timers: once the other lets go, it acts on the next decision, not a full delay later', () => {
    // queue has been below its band for the delay (it would go to 1) while cpu sits at its target; then cpu goes idle too.
    let state: AutoscalerState = {};
    let d = decide(multi, at(two(T0, 0, [0.5, 0.5, 0.5]), 3), state);
    for (let t = T0; t <= T0 + 30_000; t += 250) {
      d = decide(multi, { ...at(two(t, 0, [0.5, 0.5, 0.5]), 3), nowMs: t }, state);
      state = d.state;
    }
    expect(d).toMatchObject({ desired: 3, changed: false, metric: 'cpu' });
    expect(d.reason).toMatch(/^cpu 0.5\/replica .* within/);
    expect(state.belowSinceMs).toBe(T0); // queue's (the first metric's), kept while outvoted
    expect(state.others?.cpu).toEqual({});
    // cpu drops: its own delay (30 s) runs from now; queue's has long passed. Nothing moves until cpu's ends…
    let t = T0 + 30_250;
    for (; t <= T0 + 60_250; t += 250) {
      d = decide(multi, { ...at(two(t, 0, [0, 0, 0]), 3), nowMs: t }, state);
      state = d.state;
      if (d.changed) break;
    }
    // …and then it comes down at once, on cpu's delay alone.
    expect(d).toMatchObject({ desired: 1, changed: true });
    expect(t).toBe(T0 + 30_250 + 30_000);
  });

  it('with one metric, the decision names it (the single metric/target of older policies)', () => {
    expect(decide(parsePolicy(base), input(T0, 2, 10), { aboveSinceMs: T0 - 1000 })).toMatchObject({ metric: 'queue', target: 5, desired: 4 });
    const cpuOnly = parsePolicy({ ...base, metric: 'cpu', target: 0.5 });
    expect(cpuOnly.metrics).toEqual([{ metric: 'cpu', target: 0.5 }]);
    expect(decide(cpuOnly, at(two(T0, 0, [1, 1])), { aboveSinceMs: T0 - 1000 })).toMatchObject({ metric: 'cpu', desired: 4 });
  });

  it('every resource metric and a custom gauge is read from its report; absent ones hold', () => {
    const r = (over: Partial<LoadSample>): LoadSample[] => [{ timeMs: T0, replicaId: 'r0', queued: 0, inFlight: 0, ...over }];
    const cases: Array<[string, number, Partial<LoadSample>, number]> = [
      ['memory', 1e9, { resources: { memoryBytes: 3e9 } }, 3],
      ['gpu-utilization', 0.5, { resources: { gpuUtilization: 0.9, gpus: 1 } }, 2],
      ['gpu-memory', 1e10, { resources: { gpuMemoryBytes: 4e10 } }, 4],
      ['custom:batch_fill', 2, { custom: { batch_fill: 6 } }, 3],
    ];
    for (const [metric, target, over, want] of cases) {
      const p = parsePolicy({ ...base, metric, target });
      expect(decide(p, at(r(over), 1), { aboveSinceMs: T0 - 1000 }), metric).toMatchObject({ desired: want, metric });
      expect(decide(p, at(r({}), 1), { aboveSinceMs: T0 - 1000 }).reason, metric).toMatch(new RegExp(`holding: 0 of 1 ready replicas reported ${metric}`));
    }
  });
});

/**
 * Rule 7's sliding peak (sliding-peak.ts): a scale-down is sized for the
 * highest value of the last downscaleDelayMs, as HPA's scale-down
 * stabilization window takes the highest recommendation of its window. Before,
 * the peak was kept for the whole below-band stretch, so one busy second as a
 * CPU load stopped held the group up for as long as the load stayed away.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide } from './decide.js';
import { parsePolicy } from './policy.js';
import { PEAK_SLICES, slidePeak } from './sliding-peak.js';
import type { AutoscalerState, MetricTimers } from './types.js';

const T0 = 1_000_000;
const TICK = 250;
const WINDOW = 30_000;
/** docs/autoscaling.md's case: cpu at 0.5 cores a replica, the band 0.45…0.55. */
const cpu = parsePolicy({ metric: 'cpu', target: 0.5, tolerance: 0.1, min: 1, max: 10, maxStep: 4, downscaleDelayMs: WINDOW });

/**
 * A decision every 250 ms from T0 for `ms`, the replicas sharing `total(t)`
 * cores; a count applies at once. The changes, and the most slices a state held.
 */
function run(current: number, total: (t: number) => number, ms: number) {
  let state: AutoscalerState = {};
  const changes: Array<[at: number, from: number, to: number]> = [];
  let held = 0;
  for (let t = 0; t <= ms; t += TICK) {
    const samples = Array.from({ length: current }, (_, i) => ({ timeMs: T0 + t, replicaId: `r${i}`, queued: 0, inFlight: 0, resources: { cpu: total(t) / current } }));
    const d = decide(cpu, { nowMs: T0 + t, current, ready: current, samples, demand: [] }, state);
    held = Math.max(held, d.state.belowPeaks?.length ?? 0);
    if (d.changed) changes.push([t, current, d.desired]);
    [current, state] = [d.desired, d.state];
  }
  return { changes, held };
}

const idle = 0.03;
/** `cores` from `from` for one second, idle otherwise. */
const spike = (from: number, cores: number) => (t: number) => (t >= from && t < from + 1000 ? cores : idle);

describe('rule 7: the peak slides over the last downscaleDelayMs', () => {
  it.each<[string, number, (t: number) => number, Array<[number, number, number]>]>([
    // 1.2 cores over 2 replicas is 0.6 > 0.5. Kept for the whole stretch, this second held all three for good;
    // now it goes once its slice (the latest time in it 2.75 s) is 30 s old.
    ['a spike older than the window no longer holds the count (it held 3 for good before)', 3, spike(0, 1.2), [[33_000, 3, 1]]],
    // At 30 s the spike of 20 s is still inside: one replica less would be 0.6; it leaves with its slice (24.25 s + 30 s).
    ['a spike inside the window holds the count until it leaves', 3, spike(20_000, 1.2), [[54_500, 3, 1]]],
    // Idle alone would go 4 → 1 (max step 4); 0.9 cores 10 s ago allow 0.9 / 2 ≤ 0.5, and no lower. The change
    // restarts the delay: 2 → 1 one full delay later.
    ['a spike inside the window limits how far down it goes', 4, spike(20_000, 0.9), [[30_000, 4, 2], [60_250, 2, 1]]],
    ['a load that stays below without a spike goes down after the delay, as before', 4, () => idle, [[30_000, 4, 1]]],
  ])('%s', (_name, current, total, want) => {
    expect(run(current, total, 120_000).changes).toEqual(want);
  });

  it(`remembers at most ${PEAK_SLICES} slices, however long the stretch`, () => {
    // Ten minutes below the band at the lower bound: 2,400 decisions, one stretch, eight slices.
    expect(run(1, (t) => idle * (1 + Math.sin(t / 777)), 600_000)).toEqual({ changes: [], held: PEAK_SLICES });
  });

  it('the peak is the highest of the window, never of less, and at most one slice more (against every value kept)', () => {
    const step = fc.record({ dt: fc.integer({ min: 0, max: 9000 }), value: fc.double({ min: 0, max: 100, noNaN: true }), running: fc.nat(50) });
    fc.assert(
      fc.property(fc.constantFrom(0, 250, 1000, 30_000, 300_000), fc.array(step, { minLength: 1, maxLength: 300 }), (windowMs, steps) => {
        const seen: Array<{ t: number; value: number; running: number }> = [];
        let timers: MetricTimers = {};
        let t = T0;
        for (const { dt, value, running } of steps) {
          t += dt;
          seen.push({ t, value, running });
          const { peak, runningPeak, slices } = slidePeak(timers, windowMs, t, value, running);
          expect(slices.length).toBeLessThanOrEqual(PEAK_SLICES);
          const within = (span: number) => seen.filter((s) => s.t >= t - span);
          const slice = Math.ceil(windowMs / (PEAK_SLICES - 1));
          expect(peak).toBeGreaterThanOrEqual(Math.max(...within(windowMs).map((s) => s.value)));
          expect(peak).toBeLessThanOrEqual(Math.max(...within(windowMs + slice).map((s) => s.value)));
          expect(runningPeak).toBeGreaterThanOrEqual(Math.max(...within(windowMs).map((s) => s.running)));
          expect(runningPeak).toBeLessThanOrEqual(Math.max(...within(windowMs + slice).map((s) => s.running)));
          timers = { belowSinceMs: T0, belowPeaks: slices };
        }
      }),
    );
  });

  it('a state an older head stored (a peak, no slices) keeps its peak for one more window, then lets it go', () => {
    const older: AutoscalerState = { belowSinceMs: T0 - 60_000, belowPeak: 1.2 };
    const at = (t: number, state: AutoscalerState) => decide(cpu, { nowMs: T0 + t, current: 3, ready: 3, samples: Array.from({ length: 3 }, (_, i) => ({ timeMs: T0 + t, replicaId: `r${i}`, queued: 0, inFlight: 0, resources: { cpu: idle / 3 } })), demand: [] }, state);
    let d = at(0, older);
    expect(d).toMatchObject({ changed: false, state: { belowPeak: 1.2 } });
    expect(d.reason).toMatch(/one replica less would make it 0.6 > 0.5/);
    for (let t = TICK; !d.changed && t <= 2 * WINDOW; t += TICK) d = at(t, d.state);
    expect(d).toMatchObject({ desired: 1, changed: true });
  });
});

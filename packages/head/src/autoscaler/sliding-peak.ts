/**
 * Rule 7's sliding peak: the highest metric (and running calls) seen in the
 * last downscaleDelayMs of a below-band stretch, the value a scale-down is
 * sized for. Kubernetes' HPA keeps every recommendation of its scale-down
 * stabilization window and takes the highest; decisions here run every
 * 250 ms, so the window is kept as at most PEAK_SLICES slices instead, each
 * the highest values of one slice of the window and the time of the latest
 * decision folded into it. A slice counts while that time is inside the
 * window: a spike is never forgotten before downscaleDelayMs has passed, and
 * is forgotten at most one slice (downscaleDelayMs / 7) later. Pure.
 */
import type { MetricTimers, PeakSlice } from './types.js';

/** The bound on the slices a metric remembers (and persists). */
export const PEAK_SLICES = 8;

export interface SlidingPeak {
  /** The highest metric and running calls in the window, now included. */
  peak: number;
  runningPeak: number;
  /** The window to carry to the next decision, oldest first, at most PEAK_SLICES. */
  slices: PeakSlice[];
}

/**
 * Folds the values seen now into the window `timers` carried, dropping what
 * has left it. A new below-band stretch (no belowSinceMs) starts afresh.
 */
export function slidePeak(timers: MetricTimers, windowMs: number, nowMs: number, value: number, running: number): SlidingPeak {
  const seen: PeakSlice = { timeMs: nowMs, peak: value, runningPeak: running };
  // Slices of width window / 7: the ones a window touches are at most 8.
  const width = Math.max(1, Math.ceil(windowMs / (PEAK_SLICES - 1)));
  const kept = carried(timers, seen).filter((s) => s.timeMs >= nowMs - windowMs);
  const last = kept.at(-1);
  let slices = last && Math.floor(last.timeMs / width) === Math.floor(nowMs / width) ? [...kept.slice(0, -1), merge(last, seen)] : [...kept, seen];
  // Only a changed window (a policy update) or a clock that stepped back can leave more:
  // merge the oldest, which keeps their peak a little longer rather than forget it early.
  while (slices.length > PEAK_SLICES) {
    const [a, b, ...rest] = slices as [PeakSlice, PeakSlice, ...PeakSlice[]];
    slices = [merge(a, b), ...rest];
  }
  return { peak: Math.max(...slices.map((s) => s.peak)), runningPeak: Math.max(...slices.map((s) => s.runningPeak)), slices };
}

const merge = (a: PeakSlice, b: PeakSlice): PeakSlice => ({ timeMs: Math.max(a.timeMs, b.timeMs), peak: Math.max(a.peak, b.peak), runningPeak: Math.max(a.runningPeak, b.runningPeak) });

/**
 * The slices carried from the last decision. A state an older head stored has
 * the peaks but not their times: they count as seen now, so they hold for one
 * more window at most, as they would have held for the rest of the stretch.
 */
function carried(t: MetricTimers, seen: PeakSlice): PeakSlice[] {
  if (t.belowSinceMs === undefined) return [];
  if (t.belowPeaks?.length) return t.belowPeaks;
  if (t.belowPeak === undefined && t.belowRunningPeak === undefined) return [];
  return [{ timeMs: seen.timeMs, peak: t.belowPeak ?? seen.peak, runningPeak: t.belowRunningPeak ?? seen.runningPeak }];
}

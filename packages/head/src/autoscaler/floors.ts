/**
 * Scheduled floors: "at least N replicas during this cron window". A floor's
 * window opens at each occurrence of its cron pattern (read in its time zone)
 * and stays open for `durationMs`. Pure: the clock is an argument.
 */
import { Cron } from 'croner';
import type { AutoscalingPolicy } from './types.js';

export type Floor = AutoscalingPolicy['floors'][number];

const cache = new Map<string, Cron>();

/** A paused Cron for the pattern in the zone (throws on a bad pattern or zone). */
export function cronOf(pattern: string, timezone: string): Cron {
  const key = `${timezone}\u0000${pattern}`;
  let c = cache.get(key);
  if (!c) {
    c = new Cron(pattern, { timezone, paused: true });
    if (cache.size > 1000) cache.clear();
    cache.set(key, c);
  }
  return c;
}

/** Start of the most recent occurrence at or before `nowMs` (undefined: none). */
function lastStart(f: Floor, nowMs: number): number | undefined {
  // previousRuns is strict (a run exactly at the reference is excluded): +1 ms includes it.
  return cronOf(f.cron, f.timezone).previousRuns(1, new Date(nowMs + 1))[0]?.getTime();
}

/** Whether the floor's window [occurrence, occurrence + durationMs) contains `nowMs`. */
export function floorActive(f: Floor, nowMs: number): boolean {
  const start = lastStart(f, nowMs);
  return start !== undefined && nowMs < start + f.durationMs;
}

/** The highest `min` among the floors open at `nowMs` (0 when none is). */
export function floorAt(floors: readonly Floor[], nowMs: number): number {
  let floor = 0;
  for (const f of floors) if (f.min > floor && floorActive(f, nowMs)) floor = f.min;
  return floor;
}

/** The next instant after `nowMs` at which a window opens or closes (undefined: never). */
export function nextFloorChange(floors: readonly Floor[], nowMs: number): number | undefined {
  let next: number | undefined;
  const consider = (t: number | undefined): void => {
    if (t !== undefined && t > nowMs && (next === undefined || t < next)) next = t;
  };
  for (const f of floors) {
    const start = lastStart(f, nowMs);
    if (start !== undefined) consider(start + f.durationMs);
    consider(cronOf(f.cron, f.timezone).nextRun(new Date(nowMs))?.getTime());
  }
  return next;
}

import { describe, expect, it } from 'vitest';
import { decide } from './decide.js';
import { floorAt, nextFloorChange, type Floor } from './floors.js';
import { parsePolicy } from './policy.js';
import type { AutoscalerState } from './types.js';

const H = 3_600_000;
const t = (iso: string): number => Date.parse(iso);
// Weekdays 08:00–20:00 Berlin time: at least 4 replicas.
const office: Floor = { cron: '0 8 * * 1-5', durationMs: 12 * H, timezone: 'Europe/Berlin', min: 4 };

describe('floorAt', () => {
  it.each<[string, string, number]>([
    // Winter (CET, UTC+1): Monday 6 January 2025, no DST change that day.
    ['Monday 07:59:59 Berlin', '2025-01-06T06:59:59Z', 0],
    ['Monday 08:00 Berlin, the start', '2025-01-06T07:00:00Z', 4],
    ['Monday noon Berlin', '2025-01-06T11:00:00Z', 4],
    ['Monday 19:59:59 Berlin', '2025-01-06T18:59:59.999Z', 4],
    ['Monday 20:00 Berlin, the end', '2025-01-06T19:00:00Z', 0],
    ['Friday 10:00 Berlin', '2025-01-10T09:00:00Z', 4],
    ['Saturday 10:00 Berlin, weekend', '2025-01-11T09:00:00Z', 0],
    ['Sunday 10:00 Berlin, weekend', '2025-01-12T09:00:00Z', 0],
    // Summer (CEST, UTC+2): 08:00 Berlin is 06:00 UTC.
    ['summer Monday 08:00 Berlin', '2025-07-07T06:00:00Z', 4],
    ['summer Monday 07:30 Berlin', '2025-07-07T05:30:00Z', 0],
    ['summer Monday 20:00 Berlin', '2025-07-07T18:00:00Z', 0],
  ])('%s → %i', (_name, iso, want) => {
    expect(floorAt([office], t(iso))).toBe(want);
  });

  it('takes the highest open floor', () => {
    const peak: Floor = { cron: '0 12 * * *', durationMs: H, timezone: 'UTC', min: 6 };
    expect(floorAt([office, peak], t('2025-01-06T12:30:00Z'))).toBe(6);
    expect(floorAt([office, peak], t('2025-01-06T13:00:00Z'))).toBe(4);
    expect(floorAt([], t('2025-01-06T13:00:00Z'))).toBe(0);
  });

  it('gives the next change: the end of an open window, else the next start', () => {
    expect(nextFloorChange([office], t('2025-01-06T11:00:00Z'))).toBe(t('2025-01-06T19:00:00Z'));
    expect(nextFloorChange([office], t('2025-01-10T20:00:00Z'))).toBe(t('2025-01-13T07:00:00Z'));
    expect(nextFloorChange([], 0)).toBeUndefined();
  });
});

describe('a floor in decide', () => {
  it('raises min at the window start and releases it at its end', () => {
    const policy = parsePolicy({ min: 1, max: 8, downscaleDelayMs: 30_000, floors: [office] });
    const idle = { ready: 0, samples: [], demand: [] };
    let state: AutoscalerState = {};
    let current = 1;
    const step = (nowMs: number) => {
      const d = decide(policy, { ...idle, nowMs, current, ready: current, samples: Array.from({ length: current }, (_, i) => ({ timeMs: nowMs, replicaId: `r${i}`, inFlight: 0, queued: 0 })) }, state);
      state = d.state;
      current = d.desired;
      return d;
    };
    expect(step(t('2025-01-06T06:59:59Z')).changed).toBe(false);
    const up = step(t('2025-01-06T07:00:00Z'));
    expect(up).toMatchObject({ desired: 4, changed: true });
    expect(up.inputs.floor).toBe(4);
    expect(up.reason).toContain('floor 4');
    // Inside the window an idle group stays at the floor.
    expect(step(t('2025-01-06T15:00:00Z'))).toMatchObject({ desired: 4, changed: false });
    // At the end the floor is gone. The group has been idle (below target) for
    // longer than the downscale delay, so the slow-down rule lets go at once.
    const end = t('2025-01-06T19:00:00Z');
    expect(step(end - 1)).toMatchObject({ desired: 4, changed: false, inputs: { floor: 4 } });
    const down = step(end);
    expect(down).toMatchObject({ desired: 1, changed: true, inputs: { floor: 0 } });
    expect(down.reason).toMatch(/< 5 × 0.9 for/);
    // Saturday: no window opens.
    expect(step(t('2025-01-11T07:00:00Z'))).toMatchObject({ desired: 1, changed: false, inputs: { floor: 0 } });
  });
});

/**
 * The compute-app query's cadence on a clock the test moves: once per
 * interval however often it is asked, at once for a rank it was not asked
 * for (a new pid, or a recycled one with another start time), one query in
 * flight, and a failing query neither hurried by new ranks nor logged twice.
 */
import { describe, expect, it, vi } from 'vitest';
import { APPS_QUERY_INTERVAL_MS, ComputeApps } from './compute-apps.js';
import type { AppUse } from './gpu.js';

const A: AppUse = { gpuUuid: 'GPU-0', pid: 10, memoryBytes: 7 };
const B: AppUse = { gpuUuid: 'GPU-1', pid: 20, memoryBytes: 9 };

function setup(answers: Array<AppUse[] | Error>) {
  let now = 0;
  const logged: string[] = [];
  const query = vi.fn(() => {
    const a = answers.length > 1 ? answers.shift()! : answers[0]!;
    return a instanceof Error ? Promise.reject(a) : Promise.resolve(a);
  });
  const apps = new ComputeApps({ query, now: () => now, log: { warn: (_o, m) => logged.push(`warn ${m}`), info: (_o, m) => logged.push(`info ${m}`) } });
  return { apps, query, logged, advance: (ms: number) => (now += ms) };
}

describe('ComputeApps', () => {
  it('asked once a second for a minute, queries once per interval and answers with the last good answer between', async () => {
    const { apps, query, advance } = setup([[A]]);
    const seen: Array<AppUse[] | undefined> = [];
    for (let t = 0; t < 60_000; t += 1_000) {
      seen.push(await apps.get(new Set(['10:1'])));
      advance(1_000);
    }
    expect(APPS_QUERY_INTERVAL_MS).toBe(5_000);
    expect(query).toHaveBeenCalledTimes(60_000 / APPS_QUERY_INTERVAL_MS);
    expect(seen.every((s) => s?.[0] === A)).toBe(true);
  });

  it('a rank it was not asked for (a new pid, or the same pid started again) is queried for at once; one that leaves is not', async () => {
    const { apps, query, advance } = setup([[A], [A, B], [A, B], [B]]);
    expect(await apps.get(new Set(['10:1']))).toEqual([A]);
    advance(1_000);
    expect(await apps.get(new Set(['10:1', '20:1']))).toEqual([A, B]); // not 4 s later
    advance(1_000);
    expect(await apps.get(new Set(['20:1']))).toEqual([A, B]); // 10 left: nothing new to ask
    expect(query).toHaveBeenCalledTimes(2);
    advance(1_000);
    expect(await apps.get(new Set(['10:2', '20:1']))).toEqual([A, B]); // pid 10 again, another start time
    expect(query).toHaveBeenCalledTimes(3);
  });

  it('one query in flight: a second caller awaits it rather than starting another', async () => {
    let release: (a: AppUse[]) => void = () => undefined;
    const query = vi.fn(() => new Promise<AppUse[]>((r) => (release = r)));
    const apps = new ComputeApps({ query, now: () => 0, log: { warn: () => undefined, info: () => undefined } });
    const first = apps.get(new Set(['10:1']));
    const second = apps.get(new Set(['10:1', '20:1'])); // a new rank, but one query runs already
    release([A]);
    expect(await Promise.all([first, second])).toEqual([[A], [A]]);
    expect(query).toHaveBeenCalledTimes(1);
  });

  it('a failing query: no answer, logged once, retried at the interval only (new ranks do not hurry it), then answers again', async () => {
    const { apps, query, logged, advance } = setup([new Error('NVML: driver not loaded'), new Error('timed out'), new Error('timed out'), [A, B]]);
    expect(await apps.get(new Set(['10:1']))).toBeUndefined();
    for (let t = 1; t < 10; t++) {
      advance(1_000);
      expect(await apps.get(new Set(['10:1', `${t * 100}:1`]))).toBeUndefined(); // a new rank every second
    }
    expect(query).toHaveBeenCalledTimes(2); // at 0 and 5 s
    advance(1_000); // 10 s: the third fails too
    await apps.get(new Set(['10:1']));
    advance(APPS_QUERY_INTERVAL_MS);
    expect(await apps.get(new Set(['10:1', '20:1']))).toEqual([A, B]);
    expect(query).toHaveBeenCalledTimes(4);
    expect(logged).toEqual([expect.stringMatching(/^warn nvidia-smi failed/), expect.stringMatching(/^info nvidia-smi answers again/)]);
  });

  it('the interval counts from the end of a query, so a query that hangs to its deadline is followed by a full interval without one', async () => {
    let now = 0;
    const query = vi.fn(() => {
      now += 5_000; // the query's deadline, spent
      return Promise.reject(new Error('timed out after 5000 ms'));
    });
    const apps = new ComputeApps({ query, now: () => now, log: { warn: () => undefined, info: () => undefined } });
    await apps.get(new Set(['10:1']));
    now += APPS_QUERY_INTERVAL_MS - 1;
    await apps.get(new Set(['10:1']));
    expect(query).toHaveBeenCalledTimes(1);
    now += 1;
    await apps.get(new Set(['10:1']));
    expect(query).toHaveBeenCalledTimes(2);
  });
});

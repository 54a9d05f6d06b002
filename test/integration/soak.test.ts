/**
 * The one-minute soak (issue 15, point 10): the same driver as
 * `bench/soak/run.ts` (real head on the embedded store, real workers, gang
 * lifecycles, an always-failing replica group, simulated agents dying and
 * coming back, a live event stream), with retention in seconds, for 50 s.
 * Asserted: every kind of churn happened (and kept being collected), and
 * after a 20 s warm-up store keys and logical store bytes did not grow
 * beyond 10%, and the data dir's files stayed under their cap. Head RSS and
 * p99 are printed, not asserted: on a shared CI machine both follow the
 * neighbours' load more than the head's state. Sampled every second: the
 * event log saw-tooths with a period of about ten seconds, and a verdict on
 * peaks needs each half to catch a tooth near its top (at 2.5 s a half once
 * missed one, and read as growth of 13%).
 */
import { describe, expect, it } from 'vitest';
import { runSoak } from '../../bench/soak/soak.js';

describe('soak, one minute', () => {
  it('keeps store keys and bytes flat under sustained churn', async () => {
    const lines: string[] = [];
    const r = await runSoak({
      store: 'embedded', durationMs: 50_000, intervalMs: 1_000, warmupMs: 20_000,
      gangConcurrency: 2, agents: 50, nodeChurnPerMin: 30, failingReplicas: 1, workers: 1,
      tolerance: 0.1, rssSlackMiB: 64, p99SlackMs: 50,
      log: (l) => lines.push(l),
    });
    console.log([...lines, JSON.stringify(r.verdicts)].join('\n'));
    const last = r.samples.at(-1)!.churn;
    expect(last.gangLifecycles).toBeGreaterThan(100);
    expect(last.replacements).toBeGreaterThan(10);
    // Deaths are random draws of the simulator, and an agent revived within dead-after never dies
    // on the head: 5 to 16 in 50 s were seen. That some happened is what this run needs.
    expect(last.nodeDeaths).toBeGreaterThan(0);
    expect(last.collected).toBeGreaterThan(50);
    expect(r.churned).toBe(true);
    const byMetric = Object.fromEntries(r.verdicts.map((v) => [v.metric, v]));
    expect(byMetric.storeKeys).toMatchObject({ ok: true });
    expect(byMetric.storeBytes).toMatchObject({ ok: true });
    expect(byMetric.diskBytesMax).toMatchObject({ ok: true });
  }, 120_000);
});

/**
 * Finished shards' logs are deleted after their retention (log-retention.ts):
 * by age, by count per gang and by count of gangs, never those of a shard that runs; through
 * the supervisor, an exited shard's logs go and `readLog` then says NOT_FOUND.
 */
import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '@muster/common';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sweepAfterLaunches, sweepEveryMs, sweepLogs } from './log-retention.js';
import { logPathOf } from './logs.js';
import { Harness, node } from './test-support.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.cleanup();
});

const HOUR = 3_600_000;
const NOW = Date.now();

/** A log of gang/attempt last written `agoMs` before NOW. */
function log(gang: string, attempt: number, agoMs: number): void {
  const file = logPathOf(h.dataDir, gang, attempt, 0);
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, 'x\n');
  const t = new Date(NOW - agoMs);
  utimesSync(file, t, t);
  utimesSync(join(file, '..'), t, t);
}

describe('sweepLogs', () => {
  it('deletes finished attempts older than the age bound and beyond the count per gang, keeps running ones, and empty gang dirs go', () => {
    log('a', 1, 30 * HOUR); // old
    log('a', 2, 2 * HOUR);
    log('a', 3, 1 * HOUR);
    log('a', 4, 0.5 * HOUR); // a/4 and a/3 are the 2 newest: kept; a/2 is beyond the count
    log('b', 1, 48 * HOUR); // old but running
    log('c', 1, 30 * HOUR); // old: the whole gang dir goes
    const deleted = sweepLogs(h.dataDir, new Set(['b/1']), { maxAgeMs: 24 * HOUR, attemptsKept: 2 }, NOW);
    expect(deleted.sort()).toEqual(['a/1', 'a/2', 'c/1']);
    expect(existsSync(logPathOf(h.dataDir, 'a', 3, 0))).toBe(true);
    expect(existsSync(logPathOf(h.dataDir, 'a', 4, 0))).toBe(true);
    expect(existsSync(logPathOf(h.dataDir, 'b', 1, 0))).toBe(true);
    expect(existsSync(join(h.dataDir, 'logs', 'c'))).toBe(false);
  });

  it('keeps the logs of at most gangsKept gangs that run nothing, newest first, whatever their age', () => {
    for (let i = 0; i < 6; i++) log(`g${i}`, 1, (10 - i) * 60_000); // g5 newest
    log('live', 1, 60 * 60_000); // oldest, but runs: never counted, never deleted
    const deleted = sweepLogs(h.dataDir, new Set(['live/1']), { maxAgeMs: 24 * HOUR, attemptsKept: 5, gangsKept: 3 }, NOW);
    expect(deleted.sort()).toEqual(['g0/1', 'g1/1', 'g2/1']);
    for (const g of ['g3', 'g4', 'g5', 'live']) expect(existsSync(join(h.dataDir, 'logs', g))).toBe(true);
    expect(existsSync(join(h.dataDir, 'logs', 'g0'))).toBe(false);
  });

  it('sweeps at least every minute, and after a quarter of the gang bound in launches', () => {
    expect(sweepEveryMs({ maxAgeMs: 24 * HOUR, attemptsKept: 5 })).toBe(60_000);
    expect(sweepEveryMs({ maxAgeMs: 5_000, attemptsKept: 5 })).toBe(1_000);
    expect(sweepAfterLaunches({ maxAgeMs: HOUR, attemptsKept: 5 })).toBe(250);
    expect(sweepAfterLaunches({ maxAgeMs: HOUR, attemptsKept: 5, gangsKept: 10 })).toBe(16);
  });

  it('with no logs directory does nothing', () => {
    expect(sweepLogs(h.dataDir, new Set(), { maxAgeMs: HOUR, attemptsKept: 1 }, NOW)).toEqual([]);
  });
});

describe('LocalSupervisor log retention', () => {
  it('deletes an exited shard\'s logs past the retention, never a running shard\'s', async () => {
    const sup = await h.open({ logRetention: { maxAgeMs: HOUR, attemptsKept: 5 } });
    const done = h.spec({ ...node('console.log("bye")') });
    const runs = h.spec({ ...node('console.log("up"); setInterval(() => {}, 1000)') });
    sup.launch(done);
    sup.launch(runs);
    await h.status(done.key, 'exited');
    await h.status(runs.key, 'started');
    expect(sup.sweepLogs(NOW)).toEqual([]); // within the hour: kept
    expect(sup.sweepLogs(NOW + 2 * HOUR)).toEqual([`${done.gangId}/1`]);
    expect(existsSync(logPathOf(h.dataDir, done.gangId, 1, 0))).toBe(false);
    expect(existsSync(logPathOf(h.dataDir, runs.gangId, 1, 0))).toBe(true);
    expect(() => sup.readLog(done.key, {})).toThrow(/no log for shard/);
    await sup.stop(runs.key);
  });

  it('sweeps after a burst of launches without waiting for its timer, keeping gangsKept finished gangs', async () => {
    const sup = await h.open({ logRetention: { maxAgeMs: HOUR, attemptsKept: 5, gangsKept: 2 } });
    const specs = Array.from({ length: 16 }, () => h.spec({ command: '/bin/true', args: [] }));
    for (const spec of specs.slice(0, 15)) {
      sup.launch(spec);
      await h.status(spec.key, 'exited');
    }
    const gangDirs = () => readdirSync(join(h.dataDir, 'logs'));
    expect(gangDirs()).toHaveLength(15); // the timer (1 min) has not fired: nothing swept yet
    sup.launch(specs[15]!); // the 16th launch (a quarter of 2, at least 16) sweeps
    await waitFor('the burst swept', () => gangDirs().length <= 3, { timeoutMs: 5_000, intervalMs: 20 });
    await h.status(specs[15]!.key, 'exited');
    expect(existsSync(join(h.dataDir, 'logs', specs[14]!.gangId))).toBe(true); // the newest finished ones stay
  });
});

/**
 * The finished-gang retention policy (gang-gc.ts), table-driven: the count
 * and age bounds, owners that still hold a gang, live gangs never touched;
 * and a failure's log tail bounded in the record. Under churn (many gangs
 * finishing over time) the kept set never exceeds the bound.
 */
import { describe, expect, it } from 'vitest';
import { GangState as G, type Gang } from '@muster/proto';
import { boundFailure, MAX_LOG_TAIL_CHARS, planCollection, type GangRetention } from './gang-gc.js';

const HOUR = 3_600_000;
const T = 1_000 * HOUR;
const gang = (id: string, state: G, finishedAgoMs: number): Gang =>
  ({ id, state, stateChangedAtMs: T - finishedAgoMs } as Gang);
const ids = (gs: Gang[], held: string[], policy: GangRetention) => planCollection(gs, (id) => held.includes(id), policy, T).map((c) => c.gang.id);

describe('planCollection', () => {
  const gs = [
    gang('s1', G.GANG_STATE_STOPPED, 1 * HOUR),
    gang('f2', G.GANG_STATE_FAILED, 2 * HOUR),
    gang('s3', G.GANG_STATE_STOPPED, 3 * HOUR),
    gang('live', G.GANG_STATE_READY, 50 * HOUR),
    gang('pending', G.GANG_STATE_PENDING, 50 * HOUR),
    gang('old', G.GANG_STATE_FAILED, 25 * HOUR),
  ];
  it.each([
    ['both bounds loose: nothing', { kept: 10, maxAgeMs: 48 * HOUR }, [], []],
    ['age: only the one finished 25 h ago', { kept: 10, maxAgeMs: 24 * HOUR }, [], ['old']],
    ['count 2: the oldest two finished, oldest first', { kept: 2, maxAgeMs: 48 * HOUR }, [], ['old', 's3']],
    ['count 0: every finished gang, never a live one', { kept: 0, maxAgeMs: 48 * HOUR }, [], ['old', 's3', 'f2', 's1']],
    ['a held gang stays (and still counts toward the bound)', { kept: 2, maxAgeMs: 48 * HOUR }, ['s3'], ['old']],
    ['a held gang stays past its age', { kept: 10, maxAgeMs: 24 * HOUR }, ['old'], []],
  ] as Array<[string, GangRetention, string[], string[]]>)('%s', (_, policy, held, want) => {
    expect(ids(gs, held, policy)).toEqual(want);
  });

  it('under churn, what is kept never exceeds the count bound', () => {
    const policy = { kept: 50, maxAgeMs: 1_000 * HOUR };
    let kept: Gang[] = [];
    for (let i = 0; i < 2_000; i++) {
      kept.push(gang(`g${i}`, i % 3 === 0 ? G.GANG_STATE_FAILED : G.GANG_STATE_STOPPED, 2_000 - i));
      if (i % 7 === 0) kept.push(gang(`live${i}`, G.GANG_STATE_READY, 0));
      const gone = new Set(ids(kept, [], policy));
      kept = kept.filter((g) => !gone.has(g.id));
      expect(kept.filter((g) => g.state !== G.GANG_STATE_READY).length).toBeLessThanOrEqual(50);
    }
    // Live gangs are never collected.
    expect(kept.filter((g) => g.state === G.GANG_STATE_READY)).toHaveLength(286);
  });
});

describe('boundFailure', () => {
  it('keeps the end of a long log tail and reason, short ones as they are', () => {
    const f = { attempt: 1, rank: 0, nodeId: 'n1', reason: 'exited', exitCode: 1, signal: '', logTail: `${'x'.repeat(100_000)}Traceback: boom`, timeMs: 0 };
    const b = boundFailure(f);
    expect(b.logTail.length).toBe(MAX_LOG_TAIL_CHARS);
    expect(b.logTail.endsWith('Traceback: boom')).toBe(true);
    expect(b.reason).toBe('exited');
    expect(boundFailure({ ...f, logTail: 'short' }).logTail).toBe('short');
  });
});

/**
 * What an agent reports about its ranks is kept in the gang's record, so
 * the head cuts its free text to the limits first: a node cannot grow the
 * store by reporting a huge reason or log tail.
 */
import { describe, expect, it } from 'vitest';
import { SPEC_LIMITS } from '@muster/contracts';
import type { ShardStatusReport } from '@muster/proto';
import { boundedReport } from './agent-service.js';

const report = (over: Partial<ShardStatusReport>): ShardStatusReport => ({
  gangId: 'g', attempt: 1, rank: 0, phase: 'exited', pid: 1, exitCode: 1, signal: '', reason: '', stopped: false, logTail: '', portInUse: 0, ...over,
} as ShardStatusReport);

describe('agent shard reports', () => {
  it('cut reason, signal and phase to their limits and keep the last 4 KiB of a log tail', () => {
    const r = boundedReport(report({ reason: 'r'.repeat(100_000), signal: 'S'.repeat(1_000), phase: 'p'.repeat(1_000), logTail: `${'x'.repeat(100_000)}THE END` }));
    expect(r.reason).toHaveLength(SPEC_LIMITS.reasonLength);
    expect(r.signal).toHaveLength(32);
    expect(r.phase).toHaveLength(32);
    expect(r.logTail).toHaveLength(4096);
    expect(r.logTail.endsWith('THE END')).toBe(true);
  });

  it('leaves a normal report as it is', () => {
    const r = report({ reason: 'exit code 1', signal: 'SIGKILL', logTail: 'boom\n' });
    expect(boundedReport(r)).toEqual(r);
  });
});

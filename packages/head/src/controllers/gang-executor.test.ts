/** Launch orders stay under 1 MiB: a node's ranks of the largest template go in several orders. */
import { describe, expect, it } from 'vitest';
import { PAGE_BYTES, SPEC_LIMITS } from '@muster/contracts';
import { HeadMessage, ShardLaunch } from '@muster/proto';
import { launchBatches } from './gang-executor.js';

function rank(rank: number, envBytes: number): ShardLaunch {
  return {
    rank,
    command: 'python',
    args: ['-m', 'server'],
    env: { BIG: 'x'.repeat(envBytes), RANK: String(rank) },
    cwd: '',
    readiness: undefined,
    liveness: undefined,
    startupDeadlineMs: 60_000,
    gracePeriodMs: 5_000,
    logMaxBytes: 0,
    ports: [29_500 + rank],
    warmup: undefined,
  };
}

/** The bytes of the agent-stream message that carries `shards`, with the longest gang id and a trace. */
const orderBytes = (shards: ShardLaunch[]) =>
  HeadMessage.encode({ msg: { $case: 'launchShards', value: { gangId: 'g'.repeat(253), attempt: 1_000_000, shards, trace: { traceparent: 't'.repeat(55), tracestate: 's'.repeat(512) } } } }).finish().length;

describe('launchBatches', () => {
  it('leaves a small launch as one order (the same ranks)', () => {
    const shards = [rank(0, 100), rank(1, 100), rank(2, 100)];
    expect(launchBatches(shards)).toEqual([shards]);
    expect(launchBatches([])).toEqual([[]]);
  });

  it('splits eight ranks of the largest template (over 4 MiB in one order) into orders under 1 MiB, each rank once, in order', () => {
    const shards = Array.from({ length: 8 }, (_, i) => rank(i, SPEC_LIMITS.templateBytes - 64));
    expect(orderBytes(shards)).toBeGreaterThan(4 * 1024 * 1024);
    const batches = launchBatches(shards);
    expect(batches.length).toBeGreaterThanOrEqual(4);
    for (const b of batches) expect(orderBytes(b)).toBeLessThanOrEqual(PAGE_BYTES);
    expect(batches.flat()).toEqual(shards);
  });

  it('fills each order: the next rank would not have fit', () => {
    const shards = Array.from({ length: 40 }, (_, i) => rank(i, 90_000 + i * 1_000));
    const batches = launchBatches(shards);
    let next = 0;
    for (const b of batches) {
      next += b.length;
      expect(orderBytes(b)).toBeLessThanOrEqual(PAGE_BYTES);
      if (next < shards.length) expect(orderBytes([...b, shards[next]!])).toBeGreaterThan(PAGE_BYTES - 4096);
    }
    expect(batches.flat()).toEqual(shards);
  });
});

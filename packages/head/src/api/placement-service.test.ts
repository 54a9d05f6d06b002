/** The batched placement group calls' bounds: items per batch, and the bytes of records one reply carries. */
import { describe, expect, it } from 'vitest';
import { MAX_PG_BATCH } from '@muster/contracts';
import { ErrorCode, MusterError } from '@muster/common';
import { PlacementGroup, PlacementGroupState as S, PlacementGroupsReply } from '@muster/proto';
import { batchReply, checkBatch } from './placement-service.js';

const group = (id: string, bundles: number): PlacementGroup => ({
  id,
  spec: { name: id, strategy: 'PACK', bundles: Array.from({ length: bundles }, () => ({ cpuMillis: 10, memoryBytes: 0, gpus: 0, gpuMemoryMib: 0, migProfile: '', custom: {} })), topology: [], matchLabels: {}, tolerations: [], priority: 0 },
  state: S.PLACEMENT_GROUP_STATE_RESERVED,
  placements: [],
  reason: undefined,
  createdAtMs: 1,
  stateChangedAtMs: 1,
  reschedules: 0,
  requestId: '',
});

describe('batched placement group calls', () => {
  it('refuses a batch over MAX_PG_BATCH items whole, naming items', () => {
    expect(checkBatch(Array.from({ length: MAX_PG_BATCH }, (_, i) => i))).toHaveLength(MAX_PG_BATCH);
    expect(() => checkBatch(Array.from({ length: MAX_PG_BATCH + 1 }, (_, i) => i))).toThrow(/items: 1001 in one batch; the limit is 1000/);
  });

  it('answers in order, refusals by code; records past the byte budget by id only', () => {
    const small = group('pg-small', 1);
    const big = group('pg-big', 200);
    const budget = PlacementGroup.encode(small).finish().length + PlacementGroup.encode(big).finish().length;
    const reply = batchReply([small, new MusterError(ErrorCode.NOT_FOUND, 'no placement group "x"'), big, group('pg-late', 1), group('pg-later', 1)], budget);
    expect(reply.results.map((r) => [r.id, r.group?.id ?? '', r.errorCode])).toEqual([
      ['pg-small', 'pg-small', ''],
      ['', '', 'MUSTER_NOT_FOUND'],
      ['pg-big', 'pg-big', ''],
      ['pg-late', '', ''],
      ['pg-later', '', ''],
    ]);
    expect(reply.results[1]!.errorMessage).toBe('no placement group "x"');
    // The reply's records stay within the budget.
    const records = reply.results.reduce((n, r) => n + (r.group ? PlacementGroup.encode(r.group).finish().length : 0), 0);
    expect(records).toBeLessThanOrEqual(budget);
    expect(PlacementGroupsReply.encode(reply).finish().length).toBeLessThan(budget + 200);
  });
});

/** The batched placement group calls' bounds: items per batch, and the bytes of records one reply carries. */
import { EventEmitter } from 'node:events';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { MAX_PG_BATCH } from '@muster/contracts';
import { ErrorCode, MusterError } from '@muster/common';
import { PlacementGroup, PlacementGroupState as S, PlacementGroupsReply, type WaitPlacementGroupsReply, type WaitPlacementGroupsRequest } from '@muster/proto';
import { batchReply, checkBatch, MAX_ANSWERS_PER_REPLY, serveWaits } from './placement-service.js';

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

describe('WaitPlacementGroups answers', () => {
  /** A duplex call that records what the head writes. */
  class Call extends EventEmitter {
    readonly written: WaitPlacementGroupsReply[] = [];
    write(m: WaitPlacementGroupsReply): boolean {
      this.written.push(m);
      return true;
    }
    end(): void {}
    ask(tag: number, batchedAnswers: boolean, id = `pg-${tag}`): void {
      this.emit('data', { tag, id, timeoutMs: 1_000, batchedAnswers } as WaitPlacementGroupsRequest);
    }
  }
  const asCall = (c: Call) => c as unknown as ServerDuplexStream<WaitPlacementGroupsRequest, WaitPlacementGroupsReply>;
  const turn = () => new Promise((r) => setImmediate(r));
  const pgs = {
    wait: (id: string) => {
      if (id === 'nope') throw new MusterError(ErrorCode.NOT_FOUND, `no placement group "${id}"`);
      return Promise.resolve(group(id, 1));
    },
  };
  const tags = (r: WaitPlacementGroupsReply) => [r.tag, ...r.more.map((m) => m.tag)];

  it('puts the answers that settle together into one reply for a client that reads them so, refusals included; others get one reply each', async () => {
    const call = new Call();
    void serveWaits(asCall(call), pgs);
    for (let tag = 1; tag <= 5; tag++) call.ask(tag, true);
    call.ask(6, true, 'nope');
    call.ask(7, false);
    await turn();
    await turn();
    expect(call.written.map(tags)).toEqual([[7], [6, 1, 2, 3, 4, 5]]);
    const batched = call.written[1]!;
    expect(batched.errorCode).toBe(ErrorCode.NOT_FOUND);
    expect(batched.more.map((m) => m.group?.id)).toEqual(['pg-1', 'pg-2', 'pg-3', 'pg-4', 'pg-5']);
    call.emit('cancelled');
  });

  it('carries at most MAX_ANSWERS_PER_REPLY answers a reply', async () => {
    const call = new Call();
    void serveWaits(asCall(call), pgs);
    for (let tag = 1; tag <= MAX_ANSWERS_PER_REPLY + 10; tag++) call.ask(tag, true);
    await turn();
    await turn();
    expect(call.written.map((r) => 1 + r.more.length)).toEqual([MAX_ANSWERS_PER_REPLY, 10]);
    call.emit('cancelled');
  });
});

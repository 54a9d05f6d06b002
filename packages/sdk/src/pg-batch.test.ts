/**
 * The SDK's coalescing of placement group creates and removes (pg-batch.ts),
 * on a fake transport: what goes as one batch, what each caller gets back,
 * and the fallbacks (an old head, a retryable refusal, a record left out of
 * a full reply).
 */
import { describe, expect, it, vi } from 'vitest';
import { status } from '@grpc/grpc-js';
import { ErrorCode, MusterError } from '@muster/common';
import type { PlacementGroup, PlacementGroupResult } from '@muster/proto';
import { Coalescer, MAX_BATCH_ITEMS, type BatchTransport } from './pg-batch.js';

const pg = (id: string) => ({ id }) as PlacementGroup;
const ok = (id: string): PlacementGroupResult => ({ group: pg(id), id, errorCode: '', errorMessage: '' });
const refused = (code: string, message: string): PlacementGroupResult => ({ group: undefined, id: '', errorCode: code, errorMessage: message });

/** A transport that records every call; `answer` says how the batched call answers an item. */
function fake(answer: (item: string) => PlacementGroupResult = ok, many?: (items: string[]) => Promise<PlacementGroupResult[]>) {
  const calls: string[] = [];
  const transport: BatchTransport<string> = {
    many: (items) => {
      calls.push(`many ${items.length}`);
      return many ? many(items) : Promise.resolve(items.map(answer));
    },
    one: (item) => {
      calls.push(`one ${item}`);
      return Promise.resolve(pg(item));
    },
    read: (id) => {
      calls.push(`read ${id}`);
      return Promise.resolve(pg(id));
    },
    size: () => 10,
  };
  return { calls, coalescer: new Coalescer(transport) };
}

const settle = <T>(ps: Array<Promise<T>>) => Promise.allSettled(ps);

describe('placement group batches in the SDK', () => {
  it('sends what is issued in one tick as one batched call, each caller getting its own group', async () => {
    const { calls, coalescer } = fake();
    const ids = Array.from({ length: 100 }, (_, i) => `g${i}`);
    const got = await Promise.all(ids.map((id) => coalescer.submit(id)));
    expect(calls).toEqual(['many 100']);
    expect(got.map((g) => g.id)).toEqual(ids);
  });

  it('sends a lone item by the single call', async () => {
    const { calls, coalescer } = fake();
    await coalescer.submit('alone');
    expect(calls).toEqual(['one alone']);
  });

  it('fails only the refused item; retries a retryable refusal and reads a record the reply had no room for', async () => {
    const { calls, coalescer } = fake((item) =>
      item === 'bad' ? refused(ErrorCode.INVALID_ARGUMENT, 'bundles[0].gpus: must be >= 0')
      : item === 'moved' ? refused(ErrorCode.NOT_LEADER, 'not the leader')
      : item === 'big' ? { group: undefined, id: 'big', errorCode: '', errorMessage: '' }
      : ok(item));
    const out = await settle(['a', 'bad', 'moved', 'big', 'b'].map((id) => coalescer.submit(id)));
    expect(out.map((r) => (r.status === 'fulfilled' ? r.value.id : (r.reason as MusterError).code))).toEqual(['a', ErrorCode.INVALID_ARGUMENT, 'moved', 'big', 'b']);
    expect((out[1] as PromiseRejectedResult).reason.message).toBe('bundles[0].gpus: must be >= 0');
    expect(calls).toEqual(['many 5', 'one moved', 'read big']);
  });

  it('keeps batches within MAX_BATCH_ITEMS and at most two in flight; what comes meanwhile waits for the next', async () => {
    const open: Array<() => void> = [];
    const { calls, coalescer } = fake(ok, (items) => new Promise((resolve) => open.push(() => resolve(items.map(ok)))));
    const first = Array.from({ length: MAX_BATCH_ITEMS * 3 }, (_, i) => coalescer.submit(`g${i}`));
    await vi.waitFor(() => expect(open).toHaveLength(2));
    // Two in flight: the third batch waits (proved after the first answers: it goes then, and not before).
    expect(calls).toEqual([`many ${MAX_BATCH_ITEMS}`, `many ${MAX_BATCH_ITEMS}`]);
    open.shift()!();
    await first[0];
    await vi.waitFor(() => expect(calls).toHaveLength(3));
    expect(calls[2]).toBe(`many ${MAX_BATCH_ITEMS}`);
    while (open.length > 0) open.shift()!();
    expect((await Promise.all(first)).length).toBe(MAX_BATCH_ITEMS * 3);
  });

  it('falls back to single calls for good when the head does not know the batched call', async () => {
    const old = Object.assign(new Error('12 UNIMPLEMENTED: The server does not implement the method'), { code: status.UNIMPLEMENTED });
    const { calls, coalescer } = fake(ok, () => Promise.reject(new MusterError(ErrorCode.INTERNAL, old.message, { cause: old })));
    const got = await Promise.all(['a', 'b'].map((id) => coalescer.submit(id)));
    expect(got.map((g) => g.id)).toEqual(['a', 'b']);
    await Promise.all(['c', 'd'].map((id) => coalescer.submit(id)));
    expect(calls).toEqual(['many 2', 'one a', 'one b', 'one c', 'one d']);
  });

  it('sends batches queued when it learns the head does not know the batched call by single calls', async () => {
    const old = Object.assign(new Error('12 UNIMPLEMENTED: The server does not implement the method'), { code: status.UNIMPLEMENTED });
    const fail: Array<() => void> = [];
    const { calls, coalescer } = fake(ok, () => new Promise((_, reject) => fail.push(() => reject(new MusterError(ErrorCode.INTERNAL, old.message, { cause: old })))));
    const all = Array.from({ length: MAX_BATCH_ITEMS * 3 }, (_, i) => coalescer.submit(`g${i}`));
    await vi.waitFor(() => expect(fail).toHaveLength(2));
    while (fail.length > 0) fail.shift()!();
    expect((await Promise.all(all)).length).toBe(MAX_BATCH_ITEMS * 3);
    expect(calls.filter((c) => c.startsWith('many'))).toEqual([`many ${MAX_BATCH_ITEMS}`, `many ${MAX_BATCH_ITEMS}`]);
    expect(calls.filter((c) => c.startsWith('one'))).toHaveLength(MAX_BATCH_ITEMS * 3);
  });

  it('rejects every item of a batched call that failed for another reason', async () => {
    const { coalescer } = fake(ok, () => Promise.reject(new MusterError(ErrorCode.PERMISSION_DENIED, 'viewer "vera" may not call …')));
    const out = await settle(['a', 'b'].map((id) => coalescer.submit(id)));
    expect(out.map((r) => r.status === 'rejected' && (r.reason as MusterError).code)).toEqual([ErrorCode.PERMISSION_DENIED, ErrorCode.PERMISSION_DENIED]);
  });
});

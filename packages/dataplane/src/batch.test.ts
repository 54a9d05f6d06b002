import { describe, expect, it } from 'vitest';
import { ErrorCode } from '@muster/common';
import { Batcher, type BatchClock, type BatchOutcome } from './batch.js';
import { batchCapacity, parseBatchOptions, planBatch, type BatchContext, type BatchOptions } from './batch-plan.js';

/** A clock driven by the test: timers run only when it is advanced. */
class FakeClock implements BatchClock {
  t = 1_000_000;
  private timers: { at: number; seq: number; fn: () => void }[] = [];
  private seq = 0;
  now = () => this.t;
  setTimer = (fn: () => void, ms: number) => {
    const timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return () => void (this.timers = this.timers.filter((x) => x !== timer));
  };
  /** Runs every timer due within `ms`, in order of due time, moving the clock with them. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await flushPromises();
      const next = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = next.at;
      next.fn();
    }
    this.t = end;
    await flushPromises();
  }
}

const flushPromises = () => new Promise<void>((r) => setImmediate(r));

interface Call { id: string; deadline: number; payload: unknown }

/** A batcher whose handler batches are held until the test answers them. */
function harness(o: Partial<BatchOptions> = {}, capacity = 100) {
  const clock = new FakeClock();
  const batches: { payloads: unknown[]; ctx: BatchContext; answer: (r: unknown) => void; fail: (e: unknown) => void }[] = [];
  const outcomes = new Map<string, BatchOutcome>();
  const settled: string[] = [];
  const dispatched: { size: number; waited: number[] }[] = [];
  let idle = 0;
  const options = parseBatchOptions({
    maxBatchSize: 4,
    maxQueueDelayMs: 10,
    handler: (payloads: unknown[], ctx: BatchContext) => new Promise<unknown[]>((answer, fail) => batches.push({ payloads, ctx, answer: answer as (r: unknown) => void, fail })),
    ...o,
  });
  const b = new Batcher<Call>({
    options,
    capacity,
    where: 'replica r0 of group g',
    clock,
    settle: (c, out) => {
      expect(outcomes.has(c.id), `call ${c.id} settled twice`).toBe(false);
      outcomes.set(c.id, out);
      settled.push(c.id);
    },
    dispatched: (size, waited) => dispatched.push({ size, waited }),
    idle: () => idle++,
  });
  const add = (id: string, timeoutMs = 60_000) => b.add({ id, deadline: clock.t + timeoutMs, payload: id });
  return { clock, b, batches, outcomes, settled, dispatched, add, idle: () => idle };
}

const echo = (ps: unknown[]) => ps.map((p) => `done ${String(p)}`);

describe('planBatch', () => {
  const o = { maxBatchSize: 8, preferredBatchSizes: [2, 4], maxQueueDelayMs: 10, maxConcurrentBatches: 1 };
  const s = { queued: 0, oldestWaitedMs: 0, runningBatches: 0, flushing: false };
  it.each([
    ['nothing queued', { ...s }, { idle: 'empty' }],
    ['every batch slot busy', { ...s, queued: 8, runningBatches: 1 }, { idle: 'busy' }],
    ['a full batch', { ...s, queued: 11 }, { take: 8, reason: 'full' }],
    ['the largest preferred size that fits', { ...s, queued: 7 }, { take: 4, reason: 'preferred' }],
    ['the smallest preferred size', { ...s, queued: 3 }, { take: 2, reason: 'preferred' }],
    ['below every preferred size: wait the rest of the delay', { ...s, queued: 1, oldestWaitedMs: 3 }, { waitMs: 7 }],
    ['the delay is up: all that is queued', { ...s, queued: 1, oldestWaitedMs: 10 }, { take: 1, reason: 'delay' }],
    ['draining: no waiting', { ...s, queued: 1, flushing: true }, { take: 1, reason: 'flush' }],
  ])('%s', (_name, state, plan) => {
    expect(planBatch(state, o)).toEqual(plan);
  });

  it('without preferred sizes waits for a full batch or the delay', () => {
    const np = { ...o, preferredBatchSizes: [] };
    expect(planBatch({ ...s, queued: 7, oldestWaitedMs: 9 }, np)).toEqual({ waitMs: 1 });
    expect(planBatch({ ...s, queued: 7, oldestWaitedMs: 12 }, np)).toEqual({ take: 7, reason: 'delay' });
    expect(planBatch({ ...s, queued: 8 }, np)).toEqual({ take: 8, reason: 'full' });
  });
});

describe('parseBatchOptions', () => {
  const ok = { handler: echo, maxBatchSize: 16, maxQueueDelayMs: 5 };
  it('fills the defaults', () => {
    expect(parseBatchOptions(ok)).toMatchObject({ maxBatchSize: 16, maxQueueDelayMs: 5, preferredBatchSizes: [], maxConcurrentBatches: 1 });
  });

  it.each([
    ['a batch size of 0', { maxBatchSize: 0 }, 'batch.maxBatchSize', /must be ≥ 1/],
    ['a batch size over the bound', { maxBatchSize: 1025 }, 'batch.maxBatchSize', /must be ≤ 1024/],
    ['a fractional batch size', { maxBatchSize: 2.5 }, 'batch.maxBatchSize', /whole number/],
    ['a negative delay', { maxQueueDelayMs: -1 }, 'batch.maxQueueDelayMs', /must be ≥ 0/],
    ['a delay over a minute', { maxQueueDelayMs: 60_001 }, 'batch.maxQueueDelayMs', /must be ≤ 60000/],
    ['a missing delay', { maxQueueDelayMs: undefined }, 'batch.maxQueueDelayMs', /number/],
    ['preferred sizes out of order', { preferredBatchSizes: [8, 4] }, 'batch.preferredBatchSizes.1', /ascending: 4 comes after 8/],
    ['a preferred size over the maximum', { preferredBatchSizes: [4, 32] }, 'batch.preferredBatchSizes.1', /32 is more than maxBatchSize \(16\)/],
    ['no handler', { handler: undefined }, 'batch.handler', /must be a function/],
    ['too many batches at once', { maxConcurrentBatches: 65 }, 'batch.maxConcurrentBatches', /must be ≤ 64/],
    ['a misspelt key', { maxQueueDelay: 5 }, 'batch', /batch\.maxQueueDelay: unknown key; did you mean "maxQueueDelayMs"\?/],
  ])('refuses %s, naming the field', (_name, change, field, message) => {
    let err: unknown;
    try {
      parseBatchOptions({ ...ok, ...change });
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, details: { field } });
    expect((err as Error).message).toMatch(message);
  });

  it('bounds the calls a replica holds by maxConcurrent, which must fit a full batch', () => {
    const v = parseBatchOptions({ ...ok, maxConcurrentBatches: 2 });
    expect(batchCapacity(v, undefined)).toBe(48);
    expect(batchCapacity(v, 100)).toBe(100);
    expect(() => batchCapacity(v, 8)).toThrow(/maxConcurrent: 8 is less than batch.maxBatchSize \(16\)/);
  });
});

describe('Batcher', () => {
  it('sends full batches at once and the rest when the oldest call has waited maxQueueDelayMs', async () => {
    const h = harness({ maxBatchSize: 4, maxQueueDelayMs: 10 });
    for (let i = 0; i < 10; i++) expect(h.add(`c${i}`)).toBe(true);
    expect(h.batches.map((x) => x.payloads)).toEqual([['c0', 'c1', 'c2', 'c3']]);
    expect(h.b.queued).toBe(6);
    expect(h.b.running).toBe(4);
    h.batches[0]!.answer(echo(h.batches[0]!.payloads));
    await h.clock.advance(0);
    expect(h.batches.map((x) => x.payloads.length)).toEqual([4, 4]);
    h.batches[1]!.answer(echo(h.batches[1]!.payloads));
    await h.clock.advance(0);
    expect(h.batches).toHaveLength(2); // two calls left, below the maximum: they wait for the delay
    await h.clock.advance(9);
    expect(h.batches).toHaveLength(2);
    await h.clock.advance(1);
    expect(h.batches.map((x) => x.payloads)).toEqual([['c0', 'c1', 'c2', 'c3'], ['c4', 'c5', 'c6', 'c7'], ['c8', 'c9']]);
    expect(h.dispatched.at(-1)).toEqual({ size: 2, waited: [10, 10] });
    h.batches[2]!.answer(echo(h.batches[2]!.payloads));
    await h.clock.advance(0);
    expect(h.outcomes.get('c9')).toEqual({ ok: true, result: 'done c9' });
    expect(h.settled).toHaveLength(10);
    expect(h.idle()).toBeGreaterThan(0);
  });

  it('gathers the calls that arrive together before it plans, and sends preferred sizes without waiting', async () => {
    const h = harness({ maxBatchSize: 16, preferredBatchSizes: [2, 4], maxQueueDelayMs: 50, maxConcurrentBatches: 4 });
    for (let i = 0; i < 7; i++) h.add(`c${i}`);
    expect(h.batches).toHaveLength(0);
    await h.clock.advance(0);
    expect(h.batches.map((x) => x.payloads.length)).toEqual([4, 2]);
    await h.clock.advance(49);
    expect(h.batches).toHaveLength(2);
    await h.clock.advance(1);
    expect(h.batches.map((x) => x.payloads.length)).toEqual([4, 2, 1]);
  });

  it('with maxQueueDelayMs 0 sends what is queued as soon as a batch may run', async () => {
    const h = harness({ maxBatchSize: 8, maxQueueDelayMs: 0 });
    h.add('a');
    h.add('b');
    await h.clock.advance(0);
    expect(h.batches.map((x) => x.payloads)).toEqual([['a', 'b']]);
    h.add('c'); // arrives while the only batch slot is busy
    h.add('d');
    await h.clock.advance(5);
    expect(h.batches).toHaveLength(1);
    h.batches[0]!.answer(echo(['a', 'b']));
    await h.clock.advance(0);
    expect(h.batches.map((x) => x.payloads)).toEqual([['a', 'b'], ['c', 'd']]);
  });

  it('delivers per-call errors to their own callers and results to the others, in order', async () => {
    const h = harness({ maxBatchSize: 3 });
    ['a', 'b', 'c'].forEach((id) => h.add(id));
    h.batches[0]!.answer(['A', new Error('b is malformed'), 'C']);
    await h.clock.advance(0);
    expect(h.outcomes.get('a')).toEqual({ ok: true, result: 'A' });
    expect(h.outcomes.get('b')).toEqual({ ok: false, code: ErrorCode.APPLICATION, message: 'b is malformed', send: true });
    expect(h.outcomes.get('c')).toEqual({ ok: true, result: 'C' });
  });

  it('fails every call of a batch whose handler returned the wrong number of results, naming the handler', async () => {
    const h = harness({ maxBatchSize: 3, handler: function embedMany(ps: unknown[]) { return ps.slice(1); } });
    ['a', 'b', 'c'].forEach((id) => h.add(id));
    await h.clock.advance(0);
    for (const id of ['a', 'b', 'c']) {
      expect(h.outcomes.get(id)).toMatchObject({ ok: false, code: ErrorCode.APPLICATION, send: true });
      expect((h.outcomes.get(id) as { message: string }).message).toMatch(/^the batch handler "embedMany" of replica r0 of group g returned 2 result\(s\) for a batch of 3 call\(s\)/);
    }
    const n = harness({ maxBatchSize: 1, handler: () => 'not an array' as unknown as unknown[] });
    n.add('x');
    await n.clock.advance(0);
    expect(n.outcomes.get('x')).toMatchObject({ code: ErrorCode.APPLICATION, message: expect.stringMatching(/returned string instead of an array/) });
  });

  it('fails every call of a batch whose handler threw, with its message', async () => {
    const h = harness({ maxBatchSize: 2, handler: () => { throw new Error('CUDA out of memory'); } });
    h.add('a');
    h.add('b');
    await h.clock.advance(0);
    expect([...h.outcomes.values()]).toEqual([0, 1].map(() => ({ ok: false, code: ErrorCode.APPLICATION, message: 'CUDA out of memory', send: true })));
  });

  it('answers a call whose deadline passes while it is queued, and leaves it out of the batch', async () => {
    const h = harness({ maxBatchSize: 8, maxQueueDelayMs: 100 });
    h.add('short', 30);
    h.add('long');
    await h.clock.advance(29);
    expect(h.outcomes.size).toBe(0);
    await h.clock.advance(1);
    expect(h.outcomes.get('short')).toMatchObject({ ok: false, code: ErrorCode.DEADLINE_EXCEEDED, send: true, message: expect.stringMatching(/waited in replica r0 of group g's batch queue past its deadline/) });
    expect(h.b.queued).toBe(1);
    await h.clock.advance(70);
    expect(h.batches.map((x) => x.payloads)).toEqual([['long']]);
  });

  it('drops a call cancelled while queued, and the next oldest call keeps its own delay', async () => {
    const h = harness({ maxBatchSize: 8, maxQueueDelayMs: 10 });
    h.add('first');
    await h.clock.advance(5);
    h.add('second');
    expect(h.b.cancel('first')).toBe(true);
    expect(h.b.cancel('unknown')).toBe(false);
    expect(h.outcomes.get('first')).toMatchObject({ ok: false, code: ErrorCode.CANCELLED, send: false }); // its caller stopped listening
    await h.clock.advance(5);
    expect(h.batches).toHaveLength(0); // "second" has waited 5 ms, not 10
    await h.clock.advance(5);
    expect(h.batches.map((x) => x.payloads)).toEqual([['second']]);
  });

  it('skips calls that left the queue early, in arrival order, however many left', async () => {
    const h = harness({ maxBatchSize: 1_024, maxQueueDelayMs: 10 }, 1_000);
    const ids = Array.from({ length: 300 }, (_, i) => `c${i}`);
    ids.forEach((id) => h.add(id));
    // Every call but each third leaves: more than the live ones, so the queue is compacted on the way.
    ids.forEach((id, i) => i % 3 !== 0 && h.b.cancel(id));
    expect(h.b.queued).toBe(100);
    expect(h.b.cancel('c1')).toBe(false); // already gone
    await h.clock.advance(10);
    expect(h.batches.map((x) => x.payloads)).toEqual([ids.filter((_, i) => i % 3 === 0)]);
    expect(h.b.queued).toBe(0);
    expect(h.b.running).toBe(100);
    h.add('late');
    h.b.close();
    expect(h.outcomes.get('late')).toMatchObject({ code: ErrorCode.UNAVAILABLE });
    expect(h.outcomes.size).toBe(301 - 100); // the running batch's calls are still the handler's
  });

  it('settles a call cancelled while its batch runs at once (nothing to send), aborts its signal only, and drops its result', async () => {
    const h = harness({ maxBatchSize: 3 });
    ['a', 'b', 'c'].forEach((id) => h.add(id));
    const { ctx, answer } = h.batches[0]!;
    h.b.cancel('b');
    expect(h.outcomes.get('b')).toMatchObject({ ok: false, code: ErrorCode.CANCELLED, send: false });
    expect(ctx.calls.map((c) => c.signal.aborted)).toEqual([false, true, false]);
    expect(ctx.signal.aborted).toBe(false);
    expect(h.b.running).toBe(3); // the handler still works for it until the batch ends
    answer(['A', 'B', 'C']);
    await h.clock.advance(0);
    expect(h.outcomes.get('a')).toEqual({ ok: true, result: 'A' });
    expect(h.outcomes.get('b')).toMatchObject({ code: ErrorCode.CANCELLED });
    expect(h.outcomes.get('c')).toEqual({ ok: true, result: 'C' });
    expect(h.b.running).toBe(0);
  });

  it('aborts the batch signal once every call of it is gone', () => {
    const h = harness({ maxBatchSize: 2 });
    h.add('a');
    h.add('b');
    h.b.cancel('a');
    expect(h.batches[0]!.ctx.signal.aborted).toBe(false);
    h.b.cancel('b');
    expect(h.batches[0]!.ctx.signal.aborted).toBe(true);
  });

  it('aborts a running call at its deadline and sends nothing for it', async () => {
    const h = harness({ maxBatchSize: 2 });
    h.add('short', 20);
    h.add('long');
    const { ctx, answer } = h.batches[0]!;
    await h.clock.advance(20);
    expect(ctx.calls[0]!.signal.reason).toMatchObject({ code: ErrorCode.DEADLINE_EXCEEDED });
    expect(h.outcomes.get('short')).toMatchObject({ ok: false, code: ErrorCode.DEADLINE_EXCEEDED, send: false });
    answer(['S', 'L']);
    await h.clock.advance(0);
    expect(h.outcomes.get('long')).toEqual({ ok: true, result: 'L' });
  });

  it('refuses a call beyond its capacity (queued plus running) and takes calls again once a batch ends', async () => {
    const h = harness({ maxBatchSize: 2 }, 3);
    expect([h.add('a'), h.add('b'), h.add('c'), h.add('d')]).toEqual([true, true, true, false]);
    h.batches[0]!.answer(['A', 'B']);
    await h.clock.advance(0);
    expect(h.add('d')).toBe(true);
  });

  it('on close answers queued calls UNAVAILABLE without sending them, and aborts running ones, whose answers still go out', async () => {
    const h = harness({ maxBatchSize: 3, maxQueueDelayMs: 1_000, maxConcurrentBatches: 2 });
    ['a', 'b', 'c', 'd', 'e'].forEach((id) => h.add(id));
    await h.clock.advance(0); // a, b, c run; d and e wait for the delay
    h.b.close();
    for (const id of ['d', 'e']) expect(h.outcomes.get(id)).toMatchObject({ ok: false, code: ErrorCode.UNAVAILABLE, send: true, message: expect.stringMatching(new RegExp(`closed before starting call ${id}`)) });
    expect(h.batches).toHaveLength(1); // never handed to the handler: routers retry them elsewhere
    const { ctx, answer } = h.batches[0]!;
    expect(ctx.signal.aborted && ctx.calls.every((c) => c.signal.aborted)).toBe(true);
    expect(h.add('late')).toBe(false);
    answer(['A', 'B', 'C']);
    await h.clock.advance(2_000);
    expect(h.outcomes.get('a')).toEqual({ ok: true, result: 'A' });
    expect(h.batches).toHaveLength(1);
  });

  it('sends what is queued at once when flushed (the replica drains)', () => {
    const h = harness({ maxBatchSize: 8, maxQueueDelayMs: 1_000 });
    h.add('a');
    h.b.flush();
    expect(h.batches.map((x) => x.payloads)).toEqual([['a']]);
  });
});

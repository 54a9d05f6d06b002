/**
 * The rank's end of `call` warm-ups (warmup.ts): a batching replica answers
 * one through its batch handler, a batch of one.
 */
import { describe, expect, it } from 'vitest';
import type { WarmupCallMessage } from '@muster/contracts';
import { batchOfOne, runWarmupCall } from './warmup.js';
import type { BatchContext } from './batch-plan.js';

const call = (over: Partial<WarmupCallMessage> = {}): WarmupCallMessage => ({ muster: 'warmup-call', id: 1, stream: false, json: '{"n":1}', ...over });

describe('a warm-up call in the rank', () => {
  it("runs through a batching replica's handler as a batch of one, an Error element failing it", async () => {
    const batches: { payloads: unknown[]; ctx: BatchContext }[] = [];
    const handler = (payloads: unknown[], ctx: BatchContext) => {
      batches.push({ payloads, ctx });
      return payloads.map((p) => ((p as { fail?: boolean }).fail ? new Error('weights missing') : { echo: p }));
    };
    const unary = batchOfOne(handler);
    expect(await runWarmupCall({ unary }, call(), new AbortController())).toEqual({ muster: 'warmup-result', id: 1, ok: true });
    expect(batches[0]!.payloads).toEqual([{ n: 1 }]);
    expect(batches[0]!.ctx.calls.map((c) => c.id)).toEqual(['warmup-1']);
    expect(await runWarmupCall({ unary }, call({ id: 2, json: '{"fail":true}' }), new AbortController())).toEqual({ muster: 'warmup-result', id: 2, ok: false, error: 'weights missing' });
    const wrong = batchOfOne(() => []);
    expect(await runWarmupCall({ unary: wrong }, call({ id: 3 }), new AbortController())).toMatchObject({ ok: false, error: expect.stringMatching(/returned 0 result\(s\) for a batch of 1 call/) });
  });
});

/**
 * The rank's end of `call` warm-ups (warmup.ts): a call ends at the deadline
 * the agent sent (the warm-up's time left), and a batching replica answers
 * one through its batch handler, a batch of one.
 */
import { describe, expect, it } from 'vitest';
import type { WarmupCallMessage } from '@muster/contracts';
import { batchOfOne, runWarmupCall } from './warmup.js';
import type { BatchContext } from './batch-plan.js';
import type { RequestContext } from './types.js';

const call = (over: Partial<WarmupCallMessage> = {}): WarmupCallMessage => ({ muster: 'warmup-call', id: 1, stream: false, json: '{"n":1}', ...over });

describe('a warm-up call in the rank', () => {
  it("gets the warm-up's time left as its deadline, and its signal aborts there", async () => {
    let seen: RequestContext | undefined;
    const sent = Date.now();
    const out = await runWarmupCall({
      unary: (_p, ctx) => {
        seen = ctx;
        return new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error)));
      },
    }, call({ timeoutMs: 100 }), new AbortController());
    expect(seen!.deadline).toBeGreaterThanOrEqual(sent + 100);
    expect(seen!.deadline).toBeLessThan(sent + 1_000);
    expect(out).toEqual({ muster: 'warmup-result', id: 1, ok: false, error: 'warm-up call 1 passed its deadline' });
  });

  it('fails a handler that ignores its signal and ends past the deadline', async () => {
    const out = await runWarmupCall({ unary: () => new Promise((r) => setTimeout(r, 150)) }, call({ timeoutMs: 20 }), new AbortController());
    expect(out).toMatchObject({ ok: false, error: 'warm-up call 1 passed its deadline' });
  });

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

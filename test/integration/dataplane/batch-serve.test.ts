/**
 * serve() with a batch handler, spoken to in raw wire messages over a real
 * nats-server: what the replica itself answers — with no router to time a
 * call out or cancel it — when a queued call passes its deadline, the
 * replica is full, a call of a running batch is cancelled, or the replica
 * drains; its load reports; and the batch metrics on a process's endpoint.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decode, encode, ErrorCode, type NatsConnection } from '@muster/common';
import { startMetrics, type Metrics } from '@muster/common/metrics';
import { waitFor } from '@muster/testing';
import { useNats } from '@muster/testing/vitest';
import { loadSubject, replicaSubject } from '@muster/contracts';
import { serve, type BatchContext, type BatchOptions, type Server, type WireCancel, type WireLoad, type WireReply, type WireRequest } from '@muster/dataplane';

let client: NatsConnection;
const servers: Server[] = [];
let metrics: Metrics;

useNats({ clientName: 'batch-serve-test' }, (fx) => ({ client } = fx));
beforeAll(async () => {
  metrics = await startMetrics('test', '127.0.0.1:0', {}, { global: true });
});
afterAll(async () => {
  for (const s of servers) await s.close();
  await metrics?.close();
});

/** A batch handler whose batches are held until the test answers them. */
function heldBatches() {
  const batches: { payloads: unknown[]; ctx: BatchContext; answer: (r: unknown[]) => void }[] = [];
  const handler = (payloads: unknown[], ctx: BatchContext) => new Promise<unknown[]>((answer) => batches.push({ payloads, ctx, answer }));
  return { batches, handler };
}

async function start(group: string, batch: BatchOptions, opts: Parameters<typeof serve>[1] = {}): Promise<Server> {
  const s = await serve({ batch }, { nats: client, subject: replicaSubject('muster', group, 'r0'), group, replicaId: 'r0', revision: 'rev-b', ...opts });
  servers.push(s);
  return s;
}

const request = (id: string, timeoutMs = 10_000): WireRequest => ({ v: 1, id, deadline: Date.now() + timeoutMs, stream: false, payload: id });
const ask = async (s: Server, req: WireRequest): Promise<WireReply> => decode<WireReply>((await client.request(s.subject, encode(req), { timeout: 10_000 })).data);

describe('serve() with a batch handler', () => {
  it('refuses bad options before it subscribes, naming the field', async () => {
    const base = { nats: client, subject: replicaSubject('muster', 'bad', 'r0'), group: 'bad', replicaId: 'r0' };
    const handler = (ps: unknown[]) => ps;
    const refused = async (handlers: unknown, opts: object, field: string, message: RegExp) => {
      const err = await serve(handlers as Parameters<typeof serve>[0], { ...base, ...opts }).then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, details: { field } });
      expect((err as Error).message).toMatch(message);
    };
    await refused({ bacth: { handler, maxBatchSize: 4, maxQueueDelayMs: 1 } }, {}, 'bacth', /"bacth" \(did you mean "batch"\?\)/);
    await refused({ unary: () => 1, batch: { handler, maxBatchSize: 4, maxQueueDelayMs: 1 } }, {}, 'batch', /unary or batch, not both/);
    await refused({ batch: { handler, maxBatchSize: 2048, maxQueueDelayMs: 1 } }, {}, 'batch.maxBatchSize', /batch\.maxBatchSize: must be ≤ 1024/);
    await refused({ batch: { handler, maxBatchSize: 8, preferredBatchSizes: [4, 2], maxQueueDelayMs: 1 } }, {}, 'batch.preferredBatchSizes.1', /ascending/);
    await refused({ batch: { handler, maxBatchSize: 8, maxQueueDelayMs: 1 } }, { maxConcurrent: 4 }, 'maxConcurrent', /less than batch\.maxBatchSize \(8\)/);
    // Nothing subscribed: a request to the subject finds no responder.
    await expect(client.request(base.subject, encode(request('nobody')), { timeout: 2_000 })).rejects.toThrow(/no responders/i);
  });

  it('answers a queued call whose deadline passed itself, and never hands it to the handler', async () => {
    const { batches, handler } = heldBatches();
    const s = await start('deadline', { handler, maxBatchSize: 8, maxQueueDelayMs: 800 });
    const short = ask(s, request('short', 150));
    const long = ask(s, request('long'));
    expect(await short).toMatchObject({ ok: false, error: { code: ErrorCode.DEADLINE_EXCEEDED, message: expect.stringMatching(/waited in replica r0 of group deadline's batch queue past its deadline/) } });
    await waitFor('the batch', () => batches[0]);
    expect(batches[0]!.payloads).toEqual(['long']);
    batches[0]!.answer(['L']);
    expect(await long).toEqual({ v: 1, ok: true, result: 'L' });
  });

  it('answers MUSTER_BACKPRESSURE once it holds maxConcurrent calls, queued or running', async () => {
    const { batches, handler } = heldBatches();
    const s = await start('full', { handler, maxBatchSize: 2, maxQueueDelayMs: 200 }, { maxConcurrent: 3 });
    const held = ['a', 'b', 'c'].map((id) => ask(s, request(id)));
    await waitFor('2 running, 1 queued', () => s.inFlight === 2 && s.queued === 1);
    expect(await ask(s, request('d'))).toMatchObject({ ok: false, error: { code: ErrorCode.BACKPRESSURE, message: expect.stringMatching(/replica r0 of group full already holds 3 calls/) } });
    batches[0]!.answer(['A', 'B']);
    await waitFor('the second batch', () => batches[1]);
    batches[1]!.answer(['C']);
    expect((await Promise.all(held)).map((r) => (r as { result: unknown }).result)).toEqual(['A', 'B', 'C']);
  });

  it('aborts a call cancelled while its batch runs and sends it nothing (its router stopped listening); the rest of the batch is unaffected', async () => {
    const { batches, handler } = heldBatches();
    const s = await start('cancel', { handler, maxBatchSize: 3, maxQueueDelayMs: 5_000 });
    const yReplies: unknown[] = [];
    const yInbox = client.subscribe('batch-serve.cancel.y', { callback: (_e, m) => void yReplies.push(decode(m.data)) });
    const x = ask(s, request('x'));
    client.publish(s.subject, encode(request('y')), { reply: 'batch-serve.cancel.y' });
    const z = ask(s, request('z'));
    await waitFor('a batch of 3', () => batches[0]?.payloads.length === 3);
    client.publish(s.subject, encode({ v: 1, id: 'y', cancel: true } satisfies WireCancel));
    await waitFor("y's signal aborted", () => batches[0]!.ctx.calls[1]!.signal.aborted);
    expect(batches[0]!.ctx.calls.map((c) => c.signal.aborted)).toEqual([false, true, false]);
    batches[0]!.answer(['X', 'Y', 'Z']);
    expect(await x).toEqual({ v: 1, ok: true, result: 'X' });
    expect(await z).toEqual({ v: 1, ok: true, result: 'Z' });
    // The replica publishes on this one connection in order: an answer to y would have come before X's.
    await client.flush();
    expect(yReplies).toEqual([]);
    yInbox.unsubscribe();
  });

  it('reports calls in running batches as in flight and those waiting for a batch as queued', async () => {
    const { batches, handler } = heldBatches();
    const s = await start('load', { handler, maxBatchSize: 2, maxQueueDelayMs: 200 }, { loadIntervalMs: 20 });
    const reports: WireLoad[] = [];
    const sub = client.subscribe(loadSubject('muster', 'load'), { callback: (_e, m) => void reports.push(decode(m.data)) });
    const calls = ['a', 'b', 'c'].map((id) => ask(s, request(id)));
    await waitFor('a report of 2 in flight, 1 queued', () => reports.some((r) => r.inFlight === 2 && r.queued === 1));
    sub.unsubscribe();
    batches[0]!.answer(['A', 'B']);
    await waitFor('the second batch', () => batches[1]);
    batches[1]!.answer(['C']);
    await Promise.all(calls);
  });

  it('on drain sends what is queued without waiting out the delay', async () => {
    const { batches, handler } = heldBatches();
    const s = await start('drain', { handler, maxBatchSize: 8, maxQueueDelayMs: 60_000 });
    const call = ask(s, request('q'));
    await waitFor('queued', () => s.queued === 1);
    const drained = s.drain();
    await waitFor('the batch, sent by the drain', () => batches[0]);
    batches[0]!.answer(['Q']);
    expect(await call).toEqual({ v: 1, ok: true, result: 'Q' });
    await drained;
  });

  it('records batch sizes and queue delays per group on the process metrics endpoint', async () => {
    const s = await start('mx', { handler: (ps: unknown[]) => ps, maxBatchSize: 4, maxQueueDelayMs: 0 });
    await Promise.all(['1', '2', '3', '4'].map((id) => ask(s, request(id))));
    const text = await (await fetch(`http://${metrics.address}/metrics`)).text();
    const count = (name: string) => Number(new RegExp(`^${name}_count\\{[^}]*group="mx"[^}]*\\} (\\S+)`, 'm').exec(text)?.[1] ?? 0);
    const sum = (name: string) => Number(new RegExp(`^${name}_sum\\{[^}]*group="mx"[^}]*\\} (\\S+)`, 'm').exec(text)?.[1] ?? 0);
    expect(sum('muster_replica_batch_size')).toBe(4); // every call was in one of the batches counted
    expect(count('muster_replica_batch_size')).toBeGreaterThanOrEqual(1);
    expect(count('muster_replica_batch_queue_delay_seconds')).toBe(4); // one wait per call
    expect(text).toMatch(/muster_replica_batch_size_count\{[^}]*revision="rev-b"/);
  });
});

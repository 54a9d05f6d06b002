/** Streaming calls end to end: `serve({ stream })` ↔ `Router.stream()` over a real nats-server. */
import { afterAll, describe, expect, it } from 'vitest';
import { ErrorCode, isMusterError, type NatsConnection } from '@muster/common';
import { waitFor } from '@muster/testing';
import { useNats } from '@muster/testing/vitest';
import { replicaSubject } from '@muster/contracts';
import { Router, serve, type ReplicaInfo, type StreamHandler } from '@muster/dataplane';

let client: NatsConnection;
const cleanup: (() => Promise<unknown> | unknown)[] = [];

useNats({ clientName: 'stream-test' }, (fx) => ({ client } = fx));

afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function setup(group: string, handlers: Record<string, StreamHandler>): Promise<{ router: Router; servers: Awaited<ReturnType<typeof serve>>[] }> {
  const infos: ReplicaInfo[] = [];
  const servers = [];
  for (const [id, stream] of Object.entries(handlers)) {
    const subject = replicaSubject('muster', group, id);
    const server = await serve({ stream }, { nats: client, subject, group, replicaId: id });
    cleanup.push(() => server.close());
    servers.push(server);
    infos.push({ replicaId: id, revision: 'r1', subject });
  }
  const router = new Router(client, undefined, { group });
  cleanup.push(() => router.close());
  router.update({ group, version: 1, replicas: infos });
  return { router, servers };
}

async function collect(it: AsyncIterable<unknown>): Promise<{ chunks: unknown[]; error?: { code: string; message: string } }> {
  const chunks: unknown[] = [];
  try {
    for await (const c of it) chunks.push(c);
    return { chunks };
  } catch (e) {
    if (!isMusterError(e)) throw e;
    return { chunks, error: { code: e.code, message: e.message } };
  }
}

describe('Router.stream', () => {
  it('holds the replica to a window of chunks the consumer has not taken (flow control), and finishes whole', async () => {
    let produced = 0;
    const { router } = await setup('s-window', {
      a: async function* () {
        for (let i = 0; i < 1_000; i++) {
          produced = i + 1;
          yield i;
        }
      },
    });
    const it = router.stream('x', { timeoutMs: 30_000 })[Symbol.asyncIterator]();
    expect((await it.next()).value).toBe(0);
    // A window is 16 chunks (STREAM_WINDOW): the handler made chunks 0…15 and holds chunk 16 until the consumer takes more.
    await waitFor('the replica stopped at the window', () => produced === 17 || undefined, { timeoutMs: 10_000 });
    const taken: unknown[] = [0];
    for (let i = 1; i < 4; i++) taken.push((await it.next()).value);
    // 4 taken (STREAM_CREDIT_EVERY): a credit of 4 lets chunks up to seq 19 go, and the handler holds chunk 20.
    await waitFor('the credit moved the window by 4', () => produced === 21 || undefined, { timeoutMs: 10_000 });
    for (let r = await it.next(); !r.done; r = await it.next()) taken.push(r.value);
    expect(taken).toEqual(Array.from({ length: 1_000 }, (_, i) => i));
  });

  it('yields every chunk in order', async () => {
    const { router } = await setup('s-ok', {
      a: async function* (p) {
        for (let i = 0; i < 200; i++) {
          if (i % 50 === 0) await new Promise((r) => setImmediate(r));
          yield { i, of: p };
        }
      },
    });
    const { chunks, error } = await collect(router.stream('x'));
    expect(error).toBeUndefined();
    expect(chunks).toEqual(Array.from({ length: 200 }, (_, i) => ({ i, of: 'x' })));
    expect(router.stats().replicas[0]!.inFlight).toBe(0);
  });

  it("throws the handler's error after the chunks sent before it", async () => {
    const { router } = await setup('s-err', {
      a: async function* () {
        yield 1;
        yield 2;
        throw new Error('tokenizer broke');
      },
    });
    expect(await collect(router.stream(null))).toEqual({ chunks: [1, 2], error: { code: ErrorCode.APPLICATION, message: 'tokenizer broke' } });
  });

  it('a consumer that stops early cancels the stream on the replica and frees its slot', async () => {
    let aborted = false;
    const { router } = await setup('s-break', {
      a: async function* (_p, ctx) {
        ctx.signal.addEventListener('abort', () => (aborted = true));
        for (let i = 0; i < 10_000 && !ctx.signal.aborted; i++) {
          yield i;
          await new Promise((r) => setTimeout(r, 5));
        }
      },
    });
    const got: unknown[] = [];
    for await (const c of router.stream(null)) {
      got.push(c);
      if (got.length === 3) break;
    }
    expect(got).toEqual([0, 1, 2]);
    await waitFor('the replica saw the cancel', () => aborted);
    expect(router.stats().replicas[0]!.inFlight).toBe(0);
  });

  it('a handler that fails because its replica closes still ends the stream with its error (not at the deadline)', async () => {
    const { router, servers } = await setup('s-closing', {
      a: async function* (_p, ctx) {
        yield 'first';
        await new Promise((_r, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('engine request aborted'))));
      },
    });
    const it = router.stream(null, { timeoutMs: 20_000 })[Symbol.asyncIterator]();
    expect((await it.next()).value).toBe('first');
    const closing = servers[0]!.close();
    await expect(it.next()).rejects.toMatchObject({ code: ErrorCode.APPLICATION, message: expect.stringMatching(/engine request aborted/) });
    await closing;
  });

  it.each([
    ['returns', async function* (_p: unknown, ctx: { signal: AbortSignal }) {
      yield 'first';
      await new Promise((r) => ctx.signal.addEventListener('abort', r));
    }],
    ['keeps yielding', async function* (_p: unknown, ctx: { signal: AbortSignal }) {
      yield 'first';
      await new Promise((r) => ctx.signal.addEventListener('abort', r));
      yield 'after the abort';
    }],
  ])('a handler that %s when its replica closes ends the stream with UNAVAILABLE from the replica (not replica-lost)', async (_how, handler) => {
    const { router, servers } = await setup(`s-close-${_how.length}`, { a: handler as StreamHandler });
    const it = router.stream(null, { timeoutMs: 20_000 })[Symbol.asyncIterator]();
    expect((await it.next()).value).toBe('first');
    const closing = servers[0]!.close();
    await expect(it.next()).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE, message: expect.stringMatching(/replica a is closing; stream call .* ended after 1 chunks/) });
    await closing;
  });

  it('ends with DEADLINE_EXCEEDED when the stream outlives its deadline', async () => {
    const { router } = await setup('s-dl', {
      a: async function* (_p, ctx) {
        yield 'first';
        await new Promise((r) => ctx.signal.addEventListener('abort', r));
      },
    });
    const { chunks, error } = await collect(router.stream(null, { timeoutMs: 300 }));
    expect(chunks).toEqual(['first']);
    expect(error?.code).toBe(ErrorCode.DEADLINE_EXCEEDED);
  });

  it('retries a stream that reached no replica on another one, each stream run once', async () => {
    const runs = new Map<string, number>();
    const handler: StreamHandler = async function* (p, ctx) {
      runs.set(ctx.id, (runs.get(ctx.id) ?? 0) + 1);
      yield p;
      yield 'done';
    };
    const { router, servers } = await setup('s-nr', { a: handler, b: handler });
    await servers[1]!.close();
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => collect(router.stream(i))));
    expect(results.map((r) => r.error)).toEqual(Array(40).fill(undefined));
    expect(results.map((r) => r.chunks)).toEqual(Array.from({ length: 40 }, (_, i) => [i, 'done']));
    expect(runs.size).toBe(40);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    expect(router.stats().retries).toBeGreaterThanOrEqual(1);
  });
});

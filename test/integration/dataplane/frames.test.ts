/**
 * Request and answer frames (dataplane frames.ts) on a real nats-server:
 * calls made in one turn go to a replica as one message and each still gets
 * its own answer, deadline, cancel and retry; replicas that do not read
 * frames, and routers told not to send them, speak single requests.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { connectNats, decode, encode, ErrorCode, isMusterError, type NatsConnection } from '@muster/common';
import { waitFor, type NatsServer } from '@muster/testing';
import { useNats } from '@muster/testing/vitest';
import { loadSubject, replicaSubject } from '@muster/contracts';
import { frameItems, MAX_FRAME_ITEMS, Router, serve, type FrameItem, type ReplicaInfo, type ServeHandlers, type WireReply, type WireRequest } from '@muster/dataplane';

let nats: NatsServer;
let client: NatsConnection;
const cleanup: (() => Promise<unknown> | unknown)[] = [];

useNats({ clientName: 'frames-test' }, (fx) => ({ server: nats, client } = fx));

afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function replica(group: string, id: string, handlers?: ServeHandlers): Promise<ReplicaInfo> {
  const conn = await connectNats(nats.access, id);
  const subject = replicaSubject('muster', group, id);
  const server = await serve(handlers ?? { unary: (p) => ({ replica: id, echo: p }) }, { nats: conn, subject, group, replicaId: id, loadIntervalMs: 50 });
  cleanup.push(() => server.close(), () => conn.close());
  return { replicaId: id, revision: '', subject };
}

function router(group: string, replicas: ReplicaInfo[], opts: { frames?: boolean; maxRetries?: number } = {}): Router {
  const r = new Router(client, undefined, { group, ...opts });
  cleanup.push(() => r.close());
  r.update({ group, version: 1, replicas });
  return r;
}

/** Waits until the router has heard, from their load reports, that these replicas read frames. */
async function readsFrames(r: Router, ids: string[]): Promise<void> {
  await waitFor(`load reports saying ${ids.join(', ')} read frames`, () => ids.every((id) => r.stats().replicas.find((x) => x.replicaId === id)?.frames === true));
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (e) {
    if (isMusterError(e)) return e.code;
    throw e;
  }
}

const request = (id: string, payload: unknown, extra: Partial<WireRequest> = {}): Uint8Array => encode({ v: 1, id, deadline: Date.now() + 5_000, stream: false, payload, ...extra } satisfies WireRequest);

/** Sends a raw request frame to `subject` and collects answer frames until `n` answers came (or one whole-frame answer). */
async function askFrame(subject: string, items: unknown[], n: number): Promise<{ answers: Map<number, WireReply>; whole?: WireReply }> {
  const conn = await connectNats(nats.access, 'frame-asker');
  try {
    const inbox = `_INBOX.frames${Math.random().toString(36).slice(2)}`;
    const answers = new Map<number, WireReply>();
    let whole: WireReply | undefined;
    conn.subscribe(inbox, {
      callback: (_e, m) => {
        const body = decode(m.data);
        const got = frameItems(body);
        if (got === undefined) whole = body as WireReply;
        else if (typeof got === 'object') for (const [t, b] of got.items) answers.set(t, decode(b));
      },
    });
    await conn.flush();
    conn.publish(subject, encode({ v: 1, frame: items }), { reply: inbox });
    await waitFor(`${n} answers to a raw frame`, () => whole !== undefined || answers.size >= n);
    return { answers, whole };
  } finally {
    await conn.close();
  }
}

describe('frames', () => {
  it('carries calls made in one turn as one message each way, each call with its own answer, sync and async handlers alike', async () => {
    const handler = (p: unknown) => ((p as number) % 2 === 0 ? { echo: p } : new Promise((resolve) => setTimeout(() => resolve({ echo: p }), (p as number) % 7)));
    const ids = ['f0', 'f1'];
    const replicas = [await replica('fr', 'f0', { unary: handler }), await replica('fr', 'f1', { unary: handler })];
    const r = router('fr', replicas);
    await readsFrames(r, ids);
    const answers = await Promise.all(Array.from({ length: 500 }, (_, i) => r.call(i)));
    expect(answers).toEqual(Array.from({ length: 500 }, (_, i) => ({ echo: i })));
    const s = r.stats();
    // 500 calls in one turn, at most 32 in flight per replica (the router's default): the rest queue and go as slots free, in frames too.
    expect(s.frames).toBeGreaterThan(2);
    expect(s.frames).toBeLessThan(250);
    expect(s.retries).toBe(0);
    expect(s.replySubjects).toBe(0); // every call's and every frame's reply subject closed
  });

  it('a router with frames off, and a replica that does not report reading them, get single requests', async () => {
    const f = await replica('fr-off', 'g0');
    const off = router('fr-off', [f], { frames: false });
    const on = router('fr-off', [f]);
    await readsFrames(on, ['g0']);
    expect(await Promise.all(Array.from({ length: 100 }, (_, i) => off.call(i)))).toHaveLength(100);
    expect(off.stats().frames).toBe(0);

    // An older replica: answers single requests, and says so by refusing anything else; its load reports carry no `frames`.
    const conn = await connectNats(nats.access, 'old-replica');
    cleanup.push(() => conn.close());
    const subject = replicaSubject('muster', 'fr-old', 'old0');
    const seen = { single: 0, other: 0 };
    conn.subscribe(subject, {
      queue: 'muster',
      callback: (_e, m) => {
        const req = decode<WireRequest & { frame?: unknown }>(m.data);
        if (req.frame !== undefined || typeof req.id !== 'string') return void seen.other++;
        seen.single++;
        m.respond(encode({ v: 1, ok: true, result: req.payload } satisfies WireReply));
      },
    });
    const old = router('fr-old', [{ replicaId: 'old0', revision: '', subject }]);
    // Reported until heard (the router's subscription reaches the server a moment after it is made).
    await waitFor('the old replica\'s load report heard', () => {
      conn.publish(loadSubject('muster', 'fr-old'), encode({ v: 1, replicaId: 'old0', inFlight: 0, queued: 0, timeMs: Date.now() }));
      return old.stats().replicas[0]?.reportedQueued === 0;
    });
    expect(await Promise.all(Array.from({ length: 100 }, (_, i) => old.call(i)))).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(seen).toEqual({ single: 100, other: 0 });
    expect(old.stats().frames).toBe(0);
  });

  it('"no responders" to a frame bounces each of its calls, and each is retried on another replica', async () => {
    const live = await replica('fr-gone', 'h1');
    const gone = { replicaId: 'h0', revision: '', subject: replicaSubject('muster', 'fr-gone', 'h0') };
    const r = router('fr-gone', [gone, live]);
    // h0 said it reads frames, then went away without the membership knowing yet.
    await waitFor('h0\'s load report heard', () => {
      client.publish(loadSubject('muster', 'fr-gone'), encode({ v: 1, replicaId: 'h0', inFlight: 0, queued: 0, timeMs: Date.now(), frames: 1 }));
      return r.stats().replicas.find((x) => x.replicaId === 'h0')?.frames === true;
    });
    await readsFrames(r, ['h1']);
    const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => r.call(i)));
    expect(answers.every((a) => (a as { replica: string }).replica === 'h1')).toBe(true);
    const s = r.stats();
    expect(s.frames).toBeGreaterThanOrEqual(1);
    expect(s.retries).toBeGreaterThanOrEqual(2); // at least the calls of one frame to h0
    expect(s.replySubjects).toBe(0);
  });

  it('a replica that refuses a frame as a whole: each of its calls fails with that answer, by name', async () => {
    const conn = await connectNats(nats.access, 'refusing-replica');
    cleanup.push(() => conn.close());
    const subject = replicaSubject('muster', 'fr-refuse', 'x0');
    conn.subscribe(subject, { queue: 'muster', callback: (_e, m) => void m.respond(encode({ v: 1, ok: false, error: { code: ErrorCode.INVALID_ARGUMENT, message: 'replica x0: not a v1 data-plane request' } } satisfies WireReply)) });
    await conn.flush();
    const r = router('fr-refuse', [{ replicaId: 'x0', revision: '', subject }]);
    await waitFor('x0\'s load report heard', () => {
      conn.publish(loadSubject('muster', 'fr-refuse'), encode({ v: 1, replicaId: 'x0', inFlight: 0, queued: 0, timeMs: Date.now(), frames: 1 }));
      return r.stats().replicas[0]?.frames === true;
    });
    const errors = await Promise.all(Array.from({ length: 3 }, (_, i) => r.call(i).then(() => undefined, (e: unknown) => e)));
    expect(r.stats().frames).toBe(1);
    for (const e of errors) expect(e).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, message: 'replica x0: not a v1 data-plane request' });
    expect(r.stats().replySubjects).toBe(0);
  });

  it('calls in a frame keep their own deadlines, and each is cancelled on the replica by its own id', async () => {
    const aborted: string[] = [];
    const slow: ServeHandlers = {
      unary: (p, ctx) => new Promise((resolve) => {
        ctx.signal.addEventListener('abort', () => {
          aborted.push(ctx.id);
          resolve(null);
        });
        if (p === 'quick') resolve('done');
      }),
    };
    const r = router('fr-dl', [await replica('fr-dl', 'd0', slow)]);
    await readsFrames(r, ['d0']);
    const codes = await Promise.all([
      codeOf(r.call('slow', { timeoutMs: 150 })),
      codeOf(r.call('slow', { timeoutMs: 300 })),
      r.call('quick', { timeoutMs: 5_000 }),
      codeOf(r.call('slow', { timeoutMs: 150 })),
    ]);
    expect(codes).toEqual([ErrorCode.DEADLINE_EXCEEDED, ErrorCode.DEADLINE_EXCEEDED, 'done', ErrorCode.DEADLINE_EXCEEDED]);
    expect(r.stats().frames).toBe(1);
    // Each late call was stopped on the replica, by its deadline or by the router's cancel of its id.
    await waitFor('three handlers aborted', () => aborted.length === 3);
    expect(r.stats().replySubjects).toBe(0);

    // A caller's own abort in a frame: that call alone ends CANCELLED, and the replica hears it.
    const ac = new AbortController();
    const cancelled = codeOf(r.call('slow', { signal: ac.signal }));
    const quick = r.call('quick');
    await waitFor('the frame reached the replica', () => aborted.length === 3 && r.stats().replicas[0]!.inFlight === 1);
    ac.abort();
    expect(await cancelled).toBe(ErrorCode.CANCELLED);
    expect(await quick).toBe('done');
    await waitFor('the cancelled handler aborted', () => aborted.length === 4);
  });

  it('serve() answers a raw frame item by item, naming what is wrong with each broken one, and refuses a frame that is not one', async () => {
    const f = await replica('fr-raw', 'w0');
    const items: unknown[] = [
      [1, request('a', 'one')],
      [2, Uint8Array.of(0xc1)], // not msgpack
      [3, request('c', 'three', { stream: true })],
      ['4', request('d', 'four')], // no token: cannot be answered, left out
      [5, request('e', 'five')],
    ];
    const { answers } = await askFrame(f.subject, items, 4);
    expect(answers.get(1)).toEqual({ v: 1, ok: true, result: { replica: 'w0', echo: 'one' } });
    expect(answers.get(2)).toMatchObject({ ok: false, error: { code: ErrorCode.INVALID_ARGUMENT, message: expect.stringContaining('not a v1 data-plane request') } });
    expect(answers.get(3)).toMatchObject({ ok: false, error: { code: ErrorCode.INVALID_ARGUMENT, message: expect.stringContaining('a stream request cannot come in a request frame') } });
    expect(answers.get(5)).toEqual({ v: 1, ok: true, result: { replica: 'w0', echo: 'five' } });
    expect(answers.size).toBe(4);

    for (const [frame, words] of [['x', 'is not a list'], [[], 'is empty'], [Array.from({ length: MAX_FRAME_ITEMS + 1 }, (_, i): FrameItem => [i, request(`m${i}`, i)]), `more than ${MAX_FRAME_ITEMS}`]] as const) {
      const { whole } = await askFrame(f.subject, frame as unknown[], 1);
      expect(whole).toMatchObject({ ok: false, error: { code: ErrorCode.INVALID_ARGUMENT, message: expect.stringContaining(words) } });
    }
  });
});

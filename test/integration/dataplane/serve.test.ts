/**
 * The replica side alone, spoken to in raw wire messages over a real
 * nats-server: what any router (TS or not) can rely on.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { decode, encode, ErrorCode, type NatsConnection } from '@muster/common';
import { waitFor, type NatsServer } from '@muster/testing';
import { useNats } from '@muster/testing/vitest';
import { loadSubject, replicaPermissions, replicaSubject } from '@muster/contracts';
import { serve, type Server, type WireLoad, type WireReply, type WireRequest } from '@muster/dataplane';

let nats: NatsServer;
let client: NatsConnection;
const servers: Server[] = [];

useNats({ clientName: 'serve-test' }, (fx) => ({ server: nats, client } = fx));

afterAll(async () => {
  for (const s of servers) await s.close();
});

async function start(group: string, handlers: Parameters<typeof serve>[0], opts: Parameters<typeof serve>[1] = {}): Promise<Server> {
  const s = await serve(handlers, { nats: client, subject: replicaSubject('muster', group, 'r0'), group, replicaId: 'r0', ...opts });
  servers.push(s);
  return s;
}

const request = (id: string, deadline: number, payload: unknown = null): WireRequest => ({ v: 1, id, deadline, stream: false, payload });

async function ask(subject: string, req: WireRequest): Promise<WireReply> {
  return decode<WireReply>((await client.request(subject, encode(req), { timeout: 5_000 })).data);
}

describe('serve()', () => {
  it('takes its defaults from the environment the head gives a shard, and names what is missing', async () => {
    const user = nats.mint('replica env', replicaPermissions('muster', 'env'));
    const env = {
      MUSTER_NATS_URL: nats.access.servers.join(','),
      MUSTER_NATS_JWT: user.jwt,
      MUSTER_NATS_SEED: user.seed,
      MUSTER_NATS_CA: user.caPem,
      MUSTER_SUBJECT: replicaSubject('muster', 'env', 'r9'),
      MUSTER_GROUP: 'env',
      MUSTER_REPLICA_ID: 'r9',
    };
    for (const name of ['MUSTER_SUBJECT', 'MUSTER_GROUP', 'MUSTER_REPLICA_ID', 'MUSTER_NATS_URL'] as const) {
      await expect(serve({ unary: () => 1 }, { env: { ...env, [name]: undefined } })).rejects.toThrow(new RegExp(`${name} is not set`));
    }
    const s = await serve({ unary: (p) => ({ got: p }) }, { env });
    servers.push(s);
    expect(await ask(env.MUSTER_SUBJECT, request('e1', Date.now() + 5_000, 7))).toEqual({ v: 1, ok: true, result: { got: 7 } });
    await s.close();
  });

  it('answers an expired request with DEADLINE_EXCEEDED without running the handler', async () => {
    let runs = 0;
    const s = await start('expired', { unary: () => ++runs });
    const reply = await ask(s.subject, request('x1', Date.now() - 10));
    expect(reply).toMatchObject({ ok: false, error: { code: ErrorCode.DEADLINE_EXCEEDED } });
    expect(runs).toBe(0);
  });

  it('limits concurrency, queues the rest (reported), and drops queued requests whose deadline passed', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const ran: string[] = [];
    const handler = async (_p: unknown, ctx: { id: string }) => {
      ran.push(ctx.id);
      await gate;
      return ctx.id;
    };
    const s = await start('conc', { unary: handler }, { maxConcurrent: 1, loadIntervalMs: 20 });
    const reports: WireLoad[] = [];
    const sub = client.subscribe(loadSubject('muster', 'conc'), { callback: (_e, m) => void reports.push(decode(m.data)) });
    const first = ask(s.subject, request('q1', Date.now() + 5_000));
    const q2Deadline = Date.now() + 150;
    const second = ask(s.subject, request('q2', q2Deadline));
    const third = ask(s.subject, request('q3', Date.now() + 5_000));
    await waitFor('one running, two queued', () => s.inFlight === 1 && s.queued === 2);
    await waitFor('a load report with the queue', () => reports.some((r) => r.replicaId === 'r0' && r.inFlight === 1 && r.queued === 2));
    await waitFor("q2's deadline to pass while it waits", () => Date.now() > q2Deadline, { intervalMs: 10 });
    open();
    expect((await first) as unknown).toEqual({ v: 1, ok: true, result: 'q1' });
    expect(await second).toMatchObject({ ok: false, error: { code: ErrorCode.DEADLINE_EXCEEDED, message: expect.stringMatching(/waited in replica r0's queue past its deadline/) } });
    expect(await third).toEqual({ v: 1, ok: true, result: 'q3' });
    expect(ran).toEqual(['q1', 'q3']);
    sub.unsubscribe();
  });

  it('a sync handler is answered at once, an async or throwing one as before; a queue of sync calls behind a held slot drains without recursing', async () => {
    let release!: (v: unknown) => void;
    const s = await start('sync', {
      unary: (p) => {
        if (p === 'hold') return new Promise((resolve) => (release = resolve));
        if (p === 'throw') throw new Error('sync boom');
        if (p === 'reject') return Promise.reject(new Error('async boom'));
        if (p === 'thenable') return { then: (ok: (v: unknown) => void) => ok('from a thenable') };
        return { echo: p };
      },
    }, { maxConcurrent: 1 });
    const deadline = Date.now() + 30_000;
    expect(await ask(s.subject, request('s1', deadline, 7))).toEqual({ v: 1, ok: true, result: { echo: 7 } });
    expect(await ask(s.subject, request('s2', deadline, 'throw'))).toMatchObject({ ok: false, error: { code: ErrorCode.APPLICATION, message: 'sync boom' } });
    expect(await ask(s.subject, request('s3', deadline, 'reject'))).toMatchObject({ ok: false, error: { code: ErrorCode.APPLICATION, message: 'async boom' } });
    expect(await ask(s.subject, request('s4', deadline, 'thenable'))).toEqual({ v: 1, ok: true, result: 'from a thenable' });
    // 3,000 sync calls queue behind one held slot; once it is released they all run from finish()'s loop.
    const held = ask(s.subject, request('h', deadline, 'hold'));
    await waitFor('the held call running', () => s.inFlight === 1);
    const n = 3_000;
    const queued = Array.from({ length: n }, (_, i) => ask(s.subject, request(`q${i}`, deadline, i)));
    await waitFor('all queued', () => s.queued === n);
    release('held');
    expect(await held).toEqual({ v: 1, ok: true, result: 'held' });
    const answers = await Promise.all(queued);
    expect(answers.map((r) => (r.ok ? (r.result as { echo: number }).echo : -1))).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(s.inFlight + s.queued).toBe(0);
  });

  it('answers MUSTER_BACKPRESSURE, never starting it, when maxQueued calls already wait', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const s = await start('full', { unary: async (_p, ctx) => (await gate, ctx.id) }, { maxConcurrent: 1, maxQueued: 1 });
    const held = [ask(s.subject, request('f1', Date.now() + 5_000)), ask(s.subject, request('f2', Date.now() + 5_000))];
    await waitFor('one running, one waiting', () => s.inFlight === 1 && s.queued === 1);
    expect(await ask(s.subject, request('f3', Date.now() + 5_000))).toMatchObject({ ok: false, error: { code: ErrorCode.BACKPRESSURE, message: expect.stringMatching(/has 1 waiting \(serve\(\)'s maxQueued\); the call never started/) } });
    open();
    expect((await Promise.all(held)).map((r) => (r as { result: unknown }).result)).toEqual(['f1', 'f2']);
    await expect(serve({ unary: () => null }, { nats: client, subject: 'x', group: 'g', replicaId: 'r', maxQueued: -1 })).rejects.toThrow(/maxQueued/);
  });

  it('does not answer a call whose handler, never looking at ctx.signal, ends past the deadline; one that looks sees it abort', async () => {
    let seen: AbortSignal | undefined;
    const s = await start('lapse', {
      unary: async (p, ctx) => {
        if (p === 'look') seen = ctx.signal;
        await new Promise((r) => setTimeout(r, 150));
        return 'late';
      },
    });
    const deadline = Date.now() + 60;
    // No answer: the caller's own deadline speaks for the call (a late answer could turn a timeout into a success).
    await expect(client.request(s.subject, encode(request('l1', deadline)), { timeout: 600 })).rejects.toThrow(/TIMEOUT/i);
    await expect(client.request(s.subject, encode(request('l2', Date.now() + 60, 'look')), { timeout: 600 })).rejects.toThrow(/TIMEOUT/i);
    expect(seen?.aborted).toBe(true);
    expect((seen?.reason as { code?: string }).code).toBe(ErrorCode.DEADLINE_EXCEEDED);
  });

  it('drain(): stops taking requests at once ("no responders"), resolves after the running ones answer', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const s = await start('drain', {
      unary: async () => {
        await gate;
        return 'done';
      },
    });
    const running = ask(s.subject, request('d1', Date.now() + 5_000));
    await waitFor('running', () => s.inFlight === 1);
    let drained = false;
    const draining = s.drain().then(() => (drained = true));
    await expect(client.request(s.subject, encode(request('d2', Date.now() + 5_000)), { timeout: 2_000 })).rejects.toThrow(/no responders/i);
    expect(drained).toBe(false);
    open();
    expect(await running).toEqual({ v: 1, ok: true, result: 'done' });
    await draining;
  });

  it('close(): answers queued requests MUSTER_UNAVAILABLE (never started) and aborts running ones', async () => {
    let aborted = false;
    const unary = (_p: unknown, ctx: { signal: AbortSignal }) =>
      new Promise((resolve) =>
        ctx.signal.addEventListener('abort', () => {
          aborted = true;
          resolve('aborted');
        }),
      );
    const s = await start('close', { unary }, { maxConcurrent: 1 });
    const running = ask(s.subject, request('c1', Date.now() + 5_000));
    const queued = ask(s.subject, request('c2', Date.now() + 5_000));
    await waitFor('one running, one queued', () => s.inFlight === 1 && s.queued === 1);
    await s.close();
    expect(await queued).toMatchObject({ ok: false, error: { code: ErrorCode.UNAVAILABLE } });
    expect(await running).toEqual({ v: 1, ok: true, result: 'aborted' });
    expect(aborted).toBe(true);
  });

  it('answers a malformed request with INVALID_ARGUMENT instead of crashing', async () => {
    const s = await start('bad', { unary: () => 1 });
    const reply = decode<WireReply>((await client.request(s.subject, encode({ hello: 'world' }), { timeout: 2_000 })).data);
    expect(reply).toMatchObject({ ok: false, error: { code: ErrorCode.INVALID_ARGUMENT } });
  });
});

/**
 * The router against real replicas: `serve()` on a real nats-server, the
 * membership fed by hand (the head's role).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { connectNats, ErrorCode, type NatsConnection } from '@muster/common';
import { waitFor, type NatsServer } from '@muster/testing';
import { useNats } from '@muster/testing/vitest';
import { replicaSubject } from '@muster/contracts';
import { Router, serve, type ServeHandlers, type Server, type Membership, type ReplicaInfo } from '@muster/dataplane';
import { errorOf } from './errors.test-support.js';

let nats: NatsServer;
let client: NatsConnection;
const cleanup: (() => Promise<unknown> | unknown)[] = [];

useNats({ clientName: 'router-test' }, (fx) => ({ server: nats, client } = fx));

afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function replica(group: string, id: string, revision: string, handlers?: ServeHandlers): Promise<{ server: Server; info: ReplicaInfo }> {
  const conn = await connectNats(nats.access, id);
  const subject = replicaSubject('muster', group, id);
  const server = await serve(handlers ?? { unary: (p) => ({ replica: id, echo: p }) }, { nats: conn, subject, group, replicaId: id });
  cleanup.push(() => server.close(), () => conn.close());
  return { server, info: { replicaId: id, revision, subject } };
}

function router(group: string, opts: Partial<ConstructorParameters<typeof Router>[2]> = {}): Router {
  const r = new Router(client, undefined, { group, ...opts });
  cleanup.push(() => r.close());
  return r;
}

const membership = (group: string, version: number, replicas: ReplicaInfo[], revisionWeights?: Record<string, number>): Membership => ({ group, version, replicas, ...(revisionWeights ? { revisionWeights } : {}) });

/** Runs `n` calls with `width` in flight; returns answers and errors. */
async function load(n: number, width: number, one: (i: number) => Promise<unknown>): Promise<{ answers: unknown[]; errors: unknown[] }> {
  const answers: unknown[] = [];
  const errors: unknown[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        const i = next++;
        try {
          answers.push(await one(i));
        } catch (e) {
          errors.push(e);
        }
      }
    }),
  );
  return { answers, errors };
}

const byReplica = (answers: unknown[]) => {
  const m = new Map<string, number>();
  for (const a of answers) m.set((a as { replica: string }).replica, (m.get((a as { replica: string }).replica) ?? 0) + 1);
  return m;
};

describe('Router', () => {
  it('spreads 2,000 calls over 3 replicas within ±15% of a third each, without errors', async () => {
    // Equal replicas: 1 ms of "work" each, so in-flight counts reflect service time rather than
    // which replica's socket this shared event loop happens to read first.
    const work = (id: string) => ({ unary: async (p: unknown) => (await new Promise((r) => setTimeout(r, 1)), { replica: id, echo: p }) });
    const reps = await Promise.all(['a', 'b', 'c'].map((id) => replica('bal', id, 'r1', work(id))));
    const r = router('bal');
    r.update(membership('bal', 1, reps.map((x) => x.info)));
    const { answers, errors } = await load(2_000, 16, (i) => r.call(i));
    expect(errors).toEqual([]);
    expect(answers).toHaveLength(2_000);
    for (const [, n] of byReplica(answers)) expect(Math.abs(n - 2_000 / 3)).toBeLessThanOrEqual((2_000 / 3) * 0.15);
    expect(answers.every((a) => typeof (a as { echo: unknown }).echo === 'number')).toBe(true);
    expect(r.stats().replicas.map((x) => x.inFlight)).toEqual([0, 0, 0]);
  });

  it('sends a 10% canary revision 10% ± 3% of 1,000 calls', async () => {
    const reps = await Promise.all([replica('can', 's1', 'stable'), replica('can', 's2', 'stable'), replica('can', 'c1', 'canary')]);
    const r = router('can');
    r.update(membership('can', 1, reps.map((x) => x.info), { stable: 0.9, canary: 0.1 }));
    const { answers, errors } = await load(1_000, 8, (i) => r.call(i));
    expect(errors).toEqual([]);
    const canary = byReplica(answers).get('c1') ?? 0;
    expect(canary).toBeGreaterThanOrEqual(70);
    expect(canary).toBeLessThanOrEqual(130);
  });

  it('bounds calls per replica, queues a few more, and refuses the rest with a clear BACKPRESSURE', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let started = 0;
    const rep = await replica('bp', 'a', 'r1', {
      unary: async (p) => {
        started++;
        await gate;
        return p;
      },
    });
    const r = router('bp', { maxOngoingPerReplica: 2, maxQueued: 3 });
    r.update(membership('bp', 1, [rep.info]));
    const accepted = Array.from({ length: 5 }, (_, i) => r.call(i));
    await waitFor('two calls running on the replica', () => started === 2);
    expect(r.stats().queued).toBe(3);
    const refused = await errorOf(r.call('one too many'));
    expect(refused.code).toBe(ErrorCode.BACKPRESSURE);
    expect(refused.message).toMatch(/"bp" is saturated: its 1 replica\(s\) each have maxOngoingPerReplica=2 calls from this router and 3 more \(maxQueued\) already wait\. Slow down/);
    open();
    expect(await Promise.all(accepted)).toEqual([0, 1, 2, 3, 4]);
    expect(started).toBe(5);
  });

  it('fails a call whose replica is too slow with DEADLINE_EXCEEDED, and the handler sees its signal abort', async () => {
    let aborted = false;
    const rep = await replica('dl', 'a', 'r1', {
      unary: (_p, ctx) =>
        new Promise((resolve) => {
          const t = setTimeout(resolve, 5_000);
          ctx.signal.addEventListener('abort', () => {
            aborted = true;
            clearTimeout(t);
            resolve('late');
          });
        }),
    });
    const r = router('dl');
    r.update(membership('dl', 1, [rep.info]));
    const t0 = Date.now();
    const e = await errorOf(r.call('slow', { timeoutMs: 200 }));
    expect(e.code).toBe(ErrorCode.DEADLINE_EXCEEDED);
    expect(e.message).toMatch(/no answer within 200 ms \(replica\(s\): a\)/);
    expect(Date.now() - t0).toBeLessThan(2_000);
    await waitFor('the replica aborted the handler', () => aborted);
  });

  it('deadlines of mixed lengths each fire at their own time (the shared deadline lists), and a cancelled call frees its slot for the next', async () => {
    const rep = await replica('mixed', 'a', 'r1', {
      unary: (p, ctx) => (p === 'now' ? 'ok' : new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve('late')))),
    });
    const r = router('mixed', { maxOngoingPerReplica: 8 });
    r.update(membership('mixed', 1, [rep.info]));
    const t0 = Date.now();
    const order: string[] = [];
    const elapsed = new Map<string, number>();
    const timed = (name: string, timeoutMs: number) => errorOf(r.call(name, { timeoutMs })).then((e) => {
      order.push(name);
      elapsed.set(name, Date.now() - t0);
      return e.code;
    });
    const codes = await Promise.all([timed('slow1', 400), timed('fast1', 100), timed('fast2', 100), timed('slow2', 400)]);
    expect(codes).toEqual(Array(4).fill(ErrorCode.DEADLINE_EXCEEDED));
    expect(order).toEqual(['fast1', 'fast2', 'slow1', 'slow2']);
    expect(elapsed.get('fast1')).toBeGreaterThanOrEqual(100);
    expect(elapsed.get('slow1')).toBeGreaterThanOrEqual(400);
    expect(r.stats().replicas[0]!.inFlight).toBe(0);
    // One slot: a call waits behind a held one, and gets the slot once the held one is cancelled.
    const one = router('mixed', { maxOngoingPerReplica: 1 });
    one.update(membership('mixed', 1, [rep.info]));
    const ac = new AbortController();
    const held = errorOf(one.call('hold', { signal: ac.signal }));
    const next = one.call('now');
    await waitFor('the second call waiting for the slot', () => one.stats().queued === 1);
    ac.abort();
    expect((await held).code).toBe(ErrorCode.CANCELLED);
    expect(await next).toBe('ok');
    expect(one.stats()).toMatchObject({ queued: 0, replicas: [{ inFlight: 0 }] });
  });

  it("passes a handler's error to the caller as MUSTER_APPLICATION_ERROR with its message", async () => {
    const rep = await replica('app', 'a', 'r1', {
      unary: () => {
        throw new Error('model exploded');
      },
    });
    const r = router('app');
    r.update(membership('app', 1, [rep.info]));
    expect(await errorOf(r.call(1))).toMatchObject({ code: ErrorCode.APPLICATION, message: 'model exploded' });
  });

  it('scales from zero: a call waits for the membership to gain a replica, then succeeds', async () => {
    const r = router('zero');
    const pending = r.call('hello', { timeoutMs: 10_000 });
    await waitFor('the call waiting in the router', () => r.stats().queued === 1);
    const rep = await replica('zero', 'a', 'r1');
    r.update(membership('zero', 1, [rep.info]));
    expect(await pending).toEqual({ replica: 'a', echo: 'hello' });
  });

  it('fails with NO_REPLICAS when no replica comes before the deadline', async () => {
    const r = router('none');
    r.update(membership('none', 1, []));
    const e = await errorOf(r.call('x', { timeoutMs: 150 }));
    expect(e.code).toBe(ErrorCode.NO_REPLICAS);
    expect(e.message).toMatch(/replica group "none" had no ready replica for \d+ ms \(membership version 1, 0 replica\(s\)\)/);
  });

  it('follows a membership feed, newest version wins', async () => {
    const a = await replica('feed', 'a', 'r1');
    const b = await replica('feed', 'b', 'r1');
    async function* feed() {
      yield membership('feed', 2, [a.info]);
      yield membership('feed', 1, [b.info]); // older: ignored
    }
    const r = new Router(client, { current: () => undefined, updates: feed() }, { group: 'feed' });
    cleanup.push(() => r.close());
    await waitFor('membership v2', () => r.membership?.version === 2);
    const { answers } = await load(20, 4, (i) => r.call(i));
    expect([...byReplica(answers).keys()]).toEqual(['a']);
  });

  it('rejects bad options with INVALID_ARGUMENT naming the field', async () => {
    expect(() => new Router(client, undefined, { group: 'x', maxOngoingPerReplica: 0 })).toThrow(/maxOngoingPerReplica/);
    const r = router('opts');
    expect((await errorOf(r.call(1, { timeoutMs: -1 }))).message).toMatch(/^timeoutMs: /);
    expect((await errorOf(r.call(1, { hedgeAfterMs: Number.NaN }))).message).toMatch(/^hedgeAfterMs: /);
  });

  it('cancels a call on abort and fails pending calls when the router closes', async () => {
    const r = router('cancel');
    const ac = new AbortController();
    const p = r.call(1, { signal: ac.signal });
    ac.abort();
    expect((await errorOf(p)).code).toBe(ErrorCode.CANCELLED);
    const q = r.call(2);
    r.close();
    expect((await errorOf(q)).message).toMatch(/router of replica group "cancel" was closed/);
  });
});

/**
 * NATS itself goes away: nats-server is killed and started again on the same
 * port and config while calls are in flight. Routers and replicas keep their
 * objects and connections (nats.js reconnects and resubscribes); calls in
 * flight and calls made during the outage fail at once with a retryable
 * MUSTER_UNAVAILABLE, and the same router serves again once NATS is back.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { connectNats, ErrorCode, type NatsConnection } from '@muster/common';
import { waitFor, type NatsServer } from '@muster/testing';
import { useNats } from '@muster/testing/vitest';
import { connect, jwtAuthenticator } from '@nats-io/transport-node';
import { loadSubject, replicaSubject } from '@muster/contracts';
import { Router, serve, type ServeHandlers, type ReplicaInfo } from '@muster/dataplane';
import { errorOf } from './errors.test-support.js';

let nats: NatsServer;
let client: NatsConnection;
const cleanup: (() => Promise<unknown> | unknown)[] = [];

useNats({ clientName: 'outage-test' }, (fx) => ({ server: nats, client } = fx));

afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

/** Handler runs per request id: nothing may run twice. */
type Runs = Map<string, number>;

async function replica(conn: NatsConnection, group: string, id: string, runs: Runs, handlers: ServeHandlers): Promise<ReplicaInfo> {
  const subject = replicaSubject('muster', group, id);
  const counted: ServeHandlers = {};
  if (handlers.unary) {
    const unary = handlers.unary;
    counted.unary = (p, ctx) => (runs.set(ctx.id, (runs.get(ctx.id) ?? 0) + 1), unary(p, ctx));
  }
  if (handlers.stream) {
    const stream = handlers.stream;
    counted.stream = (p, ctx) => (runs.set(ctx.id, (runs.get(ctx.id) ?? 0) + 1), stream(p, ctx));
  }
  const server = await serve(counted, { nats: conn, subject, group, replicaId: id, loadIntervalMs: 100 });
  cleanup.push(() => server.close(), () => conn.close());
  return { replicaId: id, revision: 'r1', subject };
}

function router(group: string, replicas: ReplicaInfo[]): Router {
  const r = new Router(client, undefined, { group });
  r.update({ group, version: 1, replicas });
  cleanup.push(() => r.close());
  return r;
}

/** Resolves with `signal`'s abort; never otherwise (the test's deadline is far away). */
const untilAborted = (signal: AbortSignal, onAbort: () => void) =>
  new Promise<never>((_resolve, reject) => signal.addEventListener('abort', () => (onAbort(), reject(new Error('aborted'))), { once: true }));

describe('Router and serve() across a NATS restart', () => {
  it('fails calls in flight and calls made during the outage at once (UNAVAILABLE, retryable); the same router and replica serve again afterwards', async () => {
    const runs: Runs = new Map();
    let started = 0;
    let aborted = 0;
    const conn = await connectNats(nats.access, 'replica-a');
    const info = await replica(conn, 'out', 'a', runs, {
      unary: (p, ctx) => (p === 'hang' ? (started++, untilAborted(ctx.signal, () => aborted++)) : { echo: p }),
      stream: async function* (p, ctx) {
        yield `${String(p)}-0`;
        if (p === 'hang') {
          started++;
          await untilAborted(ctx.signal, () => aborted++);
        }
        yield `${String(p)}-1`;
      },
    });
    const reports: number[] = [];
    client.subscribe(loadSubject('muster', 'out'), { callback: () => void reports.push(Date.now()) });
    const r = router('out', [info]);
    expect(await r.call('warm')).toEqual({ echo: 'warm' });

    const unary = errorOf(r.call('hang', { timeoutMs: 20_000 }));
    const chunks: unknown[] = [];
    const stream = errorOf(
      (async () => {
        for await (const c of r.stream('hang', { timeoutMs: 20_000 })) chunks.push(c);
      })(),
    );
    await waitFor('both calls running on the replica', () => started === 2 && chunks.length === 1);

    const t0 = Date.now();
    await nats.kill('SIGKILL');
    for (const e of await Promise.all([unary, stream])) {
      expect(e.code).toBe(ErrorCode.UNAVAILABLE);
      expect(e.retryable).toBe(true);
      expect(e.message).toMatch(/the NATS connection was lost while the call was in flight; it may have run on replica a\. Retry it if running it twice is safe/);
      expect(e.details).toMatchObject({ group: 'out', replicaIds: ['a'], mayHaveRun: true });
    }
    expect(Date.now() - t0).toBeLessThan(2_000); // their deadline is 20 s away

    // While NATS is down: no waiting, no buffering.
    await waitFor('the router to see the outage', () => !r.stats().connected);
    const t1 = Date.now();
    const during = await errorOf(r.call('during', { timeoutMs: 20_000 }));
    const duringStream = await errorOf(r.stream('during', { timeoutMs: 20_000 }).next());
    expect(Date.now() - t1).toBeLessThan(500); // not sent, nothing to wait for
    for (const e of [during, duringStream]) {
      expect(e.code).toBe(ErrorCode.UNAVAILABLE);
      expect(e.retryable).toBe(true);
      expect(e.message).toMatch(/was not sent: not connected to NATS \(reconnecting to 127\.0\.0\.1:\d+\)\. Retry it shortly/);
      expect(e.details).toMatchObject({ mayHaveRun: false });
    }

    await nats.start();
    await waitFor('the router reconnected', () => r.stats().connected, { timeoutMs: 5_000 });
    const since = Date.now();
    // The first call after the router is back succeeds, even if the replica reconnects a moment later.
    expect(await r.call('after', { timeoutMs: 5_000 })).toEqual({ echo: 'after' });
    const after: unknown[] = [];
    for await (const c of r.stream('after', { timeoutMs: 5_000 })) after.push(c);
    expect(after).toEqual(['after-0', 'after-1']);
    // The orphaned handlers are cancelled once the replica is back (their callers are gone), long before their deadline.
    await waitFor('the replica cancelled both orphaned calls', () => aborted === 2, { timeoutMs: 5_000 });
    await waitFor('load reports every 100 ms again', () => reports.filter((t) => t >= since).length >= 3, { timeoutMs: 5_000 });
    expect(chunks).toEqual(['hang-0']);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    expect(r.stats().replicas.map((x) => x.inFlight)).toEqual([0]);
  });

  it('a replica that reconnects after the router: calls in the gap wait for it (no membership change) and run once', async () => {
    const runs: Runs = new Map();
    // Slower to reconnect than the router (250 ms): NATS answers "no responders" for its subject in between.
    const conn = await connect({ servers: nats.access.servers, authenticator: jwtAuthenticator(nats.access.jwt, new TextEncoder().encode(nats.access.seed)), tls: { ca: nats.access.caPem }, name: 'replica-late', maxReconnectAttempts: -1, reconnectTimeWait: 2_500, reconnectJitter: 0 });
    const info = await replica(conn, 'late', 'a', runs, { unary: (p) => ({ echo: p }) });
    const r = router('late', [info]);
    expect(await r.call('warm')).toEqual({ echo: 'warm' });
    let replicaBack = false;
    void (async () => {
      for await (const s of conn.status()) if (s.type === 'reconnect') replicaBack = true;
    })();

    await nats.kill('SIGKILL');
    // Seen down before NATS is back: else "connected" below could still be the router's view from
    // before the kill (its status events are asynchronous), and the calls would go out into the outage.
    await waitFor('the router to see the outage', () => !r.stats().connected);
    await nats.start();
    await waitFor('the router reconnected', () => r.stats().connected, { timeoutMs: 5_000 });
    expect(replicaBack).toBe(false);
    const gap = await Promise.all(Array.from({ length: 5 }, (_, i) => r.call(i, { timeoutMs: 5_000 })));
    expect(replicaBack).toBe(true);
    expect(gap).toEqual([0, 1, 2, 3, 4].map((i) => ({ echo: i })));
    expect(r.stats().retries).toBeGreaterThanOrEqual(1); // they did meet "no responders" first
    expect(runs.size).toBe(6);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
  });
});

/**
 * Replicas going away under load: "no responders" retries, a replica killed
 * mid-call, drains (scale down), and hedging past a slow replica. Every test
 * counts handler runs per request id: no call may be lost or run twice.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { connectNats, ErrorCode, isMusterError, type NatsConnection } from '@muster/common';
import { waitFor, type NatsServer } from '@muster/testing';
import { useNats } from '@muster/testing/vitest';
import { replicaSubject } from '@muster/contracts';
import { Router, serve, type Server, type Membership, type ReplicaInfo, type UnaryHandler } from '@muster/dataplane';

let nats: NatsServer;
let client: NatsConnection;
const cleanup: (() => Promise<unknown> | unknown)[] = [];

useNats({ clientName: 'failures-test' }, (fx) => ({ server: nats, client } = fx));

afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

/** Handler runs per request id, over all replicas of a test. */
type Runs = Map<string, number>;

interface Replica {
  server: Server;
  conn: NatsConnection;
  info: ReplicaInfo;
  handled: number;
  /** Payloads its handler ran with. */
  payloads: Set<unknown>;
}

async function replica(group: string, id: string, runs: Runs, handler?: UnaryHandler): Promise<Replica> {
  const conn = await connectNats(nats.access, id);
  const subject = replicaSubject('muster', group, id);
  const rep: Replica = { server: undefined as unknown as Server, conn, info: { replicaId: id, revision: 'r1', subject }, handled: 0, payloads: new Set() };
  rep.server = await serve(
    {
      unary: async (p, ctx) => {
        runs.set(ctx.id, (runs.get(ctx.id) ?? 0) + 1);
        rep.handled++;
        rep.payloads.add(p);
        return handler ? handler(p, ctx) : { replica: id, echo: p };
      },
    },
    { nats: conn, subject, group, replicaId: id, loadIntervalMs: 100 },
  );
  cleanup.push(() => rep.server.close(), () => conn.close());
  return rep;
}

function router(group: string, opts: Partial<ConstructorParameters<typeof Router>[2]> = {}): Router {
  const r = new Router(client, undefined, { group, ...opts });
  cleanup.push(() => r.close());
  return r;
}

const membership = (group: string, version: number, reps: Replica[]): Membership => ({ group, version, replicas: reps.map((x) => x.info) });

/** Calls with `width` in flight until `stop()` (bounded by `max` calls); collects answers and errors. */
function loadUntil(r: Router, width: number, max: number) {
  const s = { started: 0, answers: [] as unknown[], errors: [] as unknown[], failed: [] as number[], stopped: false };
  const done = Promise.all(
    Array.from({ length: width }, async () => {
      while (!s.stopped && s.started < max) {
        const i = s.started++;
        try {
          s.answers.push(await r.call(i, { timeoutMs: 5_000 }));
        } catch (e) {
          s.errors.push(e);
          s.failed.push(i);
        }
      }
    }),
  );
  return Object.assign(s, { stop: () => ((s.stopped = true), done), done });
}

const slow = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Router under failures', () => {
  it('retries calls that reached no replica ("no responders") on the others: zero errors, each run once', async () => {
    const runs: Runs = new Map();
    const reps = await Promise.all(['a', 'b', 'c'].map((id) => replica('nr', id, runs)));
    await reps[2]!.server.close(); // still in the membership, but nobody serves its subject
    const r = router('nr');
    let version = 0;
    const answers: unknown[] = [];
    for (let round = 0; round < 6; round++) {
      r.update(membership('nr', ++version, reps)); // a new version makes c a candidate again
      answers.push(...(await Promise.all(Array.from({ length: 50 }, (_, i) => r.call(round * 50 + i)))));
    }
    expect(answers).toHaveLength(300);
    expect(runs.size).toBe(300);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    expect(reps[2]!.handled).toBe(0);
    expect(r.stats().retries).toBeGreaterThanOrEqual(6);
  });

  it('a replica killed mid-call: that call fails REPLICA_LOST soon, not at its deadline; others are fine', async () => {
    const runs: Runs = new Map();
    let started!: () => void;
    const hung = new Promise<void>((resolve) => (started = resolve));
    const victim = await replica('kill', 'victim', runs, () => (started(), new Promise(() => undefined)));
    const healthy = await replica('kill', 'healthy', runs);
    const r = router('kill', { replicaLostAfterMs: 300 });
    r.update(membership('kill', 1, [victim]));
    const t0 = Date.now();
    const doomed = r.call('doomed', { timeoutMs: 20_000 }).catch((e: unknown) => e);
    await hung;
    await victim.conn.close(); // the process dies: no answer, no more load reports
    r.update(membership('kill', 2, [healthy])); // the head noticed
    const others = await Promise.all(Array.from({ length: 50 }, (_, i) => r.call(i)));
    const err = await doomed;
    expect(isMusterError(err) && err.code).toBe(ErrorCode.REPLICA_LOST);
    expect((err as Error).message).toMatch(/replica victim of group "kill" left the membership.*may or may not have run there \(mark it idempotent/);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(others.every((a) => (a as { replica: string }).replica === 'healthy')).toBe(true);
    expect(r.stats().lost).toBe(1);
  });

  it('kill one of three replicas under load: only calls that had reached it fail (REPLICA_LOST), none runs twice', async () => {
    // "Reached" is NATS' view: delivered to the replica's connection. A request still in the dying
    // process's socket buffer has reached it but never ran; the router cannot tell, so it is lost too.
    const runs: Runs = new Map();
    const reps = await Promise.all(['a', 'b', 'c'].map((id) => replica('killload', id, runs, async (p) => (await slow(3), p))));
    const r = router('killload', { replicaLostAfterMs: 300 });
    r.update(membership('killload', 1, reps));
    const load = loadUntil(r, 24, 20_000);
    await waitFor('load on all three', () => reps.every((x) => x.handled > 50), { timeoutMs: 15_000 });
    const victim = reps[2]!;
    await victim.conn.close(); // dies with calls on it; its subject has no subscriber any more
    const mark = load.answers.length;
    await waitFor('more load while the head has not noticed yet', () => load.answers.length >= mark + 200, { timeoutMs: 15_000 });
    r.update(membership('killload', 2, reps.slice(0, 2)));
    await waitFor('more load on the two left', () => load.answers.length >= mark + 400, { timeoutMs: 15_000 });
    await load.stop(); // every call has its outcome: the lost ones by REPLICA_LOST, at the latest by their deadline
    for (const e of load.errors) expect(isMusterError(e) && e.code).toBe(ErrorCode.REPLICA_LOST);
    expect(r.stats().replicas.map((x) => x.inFlight)).toEqual([0, 0]);
    for (const i of load.failed) expect(reps[0]!.payloads.has(i) || reps[1]!.payloads.has(i)).toBe(false);
    expect(load.errors.length).toBeLessThanOrEqual(32); // at most what was on the victim when it died
    expect(load.answers.length + load.errors.length).toBe(load.started);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
  });

  it('an idempotent call on a killed replica is sent again to a live one', async () => {
    const runs: Runs = new Map();
    let started!: () => void;
    const hung = new Promise<void>((resolve) => (started = resolve));
    const victim = await replica('killi', 'victim', runs, () => (started(), new Promise(() => undefined)));
    const healthy = await replica('killi', 'healthy', runs);
    const r = router('killi', { replicaLostAfterMs: 300 });
    r.update(membership('killi', 1, [victim]));
    const call = r.call('again', { timeoutMs: 20_000, idempotent: true });
    await hung;
    await victim.conn.close();
    r.update(membership('killi', 2, [healthy]));
    expect(await call).toEqual({ replica: 'healthy', echo: 'again' });
    expect([...runs.values()]).toEqual([2]); // once on each: the caller said that is fine
  });

  it('scale 3 → 2 → 1 under load (leave the membership, then drain): zero failed calls, none run twice', async () => {
    const runs: Runs = new Map();
    const reps = await Promise.all(['a', 'b', 'c'].map((id) => replica('scale', id, runs, async (p) => (await slow(2), p))));
    const r = router('scale');
    r.update(membership('scale', 1, reps));
    const load = loadUntil(r, 16, 20_000);
    await waitFor('load on all three', () => load.answers.length >= 300 && reps.every((x) => x.handled > 20), { timeoutMs: 15_000 });
    r.update(membership('scale', 2, reps.slice(0, 2)));
    await reps[2]!.server.drain();
    const mark = load.answers.length;
    await waitFor('more load on two', () => load.answers.length >= mark + 300, { timeoutMs: 15_000 });
    r.update(membership('scale', 3, reps.slice(0, 1)));
    await reps[1]!.server.drain();
    const mark2 = load.answers.length;
    await waitFor('more load on one', () => load.answers.length >= mark2 + 300, { timeoutMs: 15_000 });
    await load.stop();
    expect(load.errors).toEqual([]);
    expect(runs.size).toBe(load.answers.length);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    expect(r.stats().replicas.map((x) => x.inFlight)).toEqual([0]);
  });

  it('a replica that drains before the router hears of it: its calls are retried elsewhere, zero failed', async () => {
    const runs: Runs = new Map();
    const reps = await Promise.all(['a', 'b'].map((id) => replica('early', id, runs, async (p) => (await slow(2), p))));
    const r = router('early');
    r.update(membership('early', 1, reps));
    const load = loadUntil(r, 16, 20_000);
    await waitFor('load on both', () => reps.every((x) => x.handled > 50), { timeoutMs: 15_000 });
    await reps[1]!.server.drain(); // still in the router's membership
    const mark = load.answers.length;
    await waitFor('more load', () => load.answers.length >= mark + 300, { timeoutMs: 15_000 });
    r.update(membership('early', 2, reps.slice(0, 1)));
    await load.stop();
    expect(load.errors).toEqual([]);
    expect(runs.size).toBe(load.answers.length);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
  });

  it('hedging: a second copy to another replica answers long before the slow one; the slow copy is cancelled', async () => {
    const runs: Runs = new Map();
    let slowStarted!: () => void;
    const onSlow = new Promise<void>((resolve) => (slowStarted = resolve));
    let slowCancelled = false;
    const laggard = await replica('hedge', 'slow', runs, (_p, ctx) => {
      slowStarted();
      return new Promise((resolve) => {
        const t = setTimeout(() => resolve({ replica: 'slow' }), 5_000);
        ctx.signal.addEventListener('abort', () => {
          slowCancelled = true;
          clearTimeout(t);
          resolve({ replica: 'slow' });
        });
      });
    });
    const fast = await replica('hedge', 'fast', runs);
    const r = router('hedge');
    r.update(membership('hedge', 1, [laggard]));
    const t0 = Date.now();
    const call = r.call('h', { hedgeAfterMs: 300, timeoutMs: 10_000 });
    await onSlow; // the first copy is on the slow replica …
    r.update(membership('hedge', 2, [laggard, fast])); // … and another replica is there for the hedge
    expect(await call).toEqual({ replica: 'fast', echo: 'h' });
    expect(Date.now() - t0).toBeLessThan(2_000);
    await waitFor('the slow copy cancelled', () => slowCancelled);
    expect(r.stats().hedges).toBe(1);
    expect([...runs.values()]).toEqual([2]);
  });
});

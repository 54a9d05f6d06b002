/**
 * Overflow on real processes (docs/replica-groups.md, "Overflow"): a small
 * primary group — one replica of the TS test replica (test/fixtures/
 * replica.mjs, which answers with its group and replica id), two calls in
 * flight per router, slow calls — names an overflow group of its own kind.
 *
 * Shown here: under concurrent load within both groups' room every call
 * succeeds and some are answered by the overflow group, as many as the
 * router counted; a stream overflows as a call does; beyond the room of
 * both, calls wait in the primary, and beyond its queue too the caller gets
 * MUSTER_BACKPRESSURE naming both groups, every other call still answered;
 * all routers of a process overflow through one shared router; an overflow group that does not exist means
 * back-pressure with a clear message, until it is made; taking the rule away
 * reaches routers without a roll; and through `muster gateway`, an OpenAI
 * call that overflows asks the overflow group for its own model, counted in
 * muster_overflow_calls_total, and one beyond both groups' room waits.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, isMusterError, type Cluster, type ReplicaGroupSpec, type Router } from '@muster/sdk';
import { waitFor, type LocalCluster, type ManagedProcess } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';
import { sample } from './prometheus-text.js';
import { startTestGateway, type TestGateway } from './gateway.test-support.js';

const replica = fileURLToPath(new URL('../fixtures/replica.mjs', import.meta.url));

type Answer = { group: string; replicaId: string; echo: unknown };

/** `workers` concurrent callers each making `each` calls one after another; answers and errors. */
async function load(call: (i: number) => Promise<unknown>, workers: number, each: number) {
  const answers: Answer[] = [];
  const errors: unknown[] = [];
  let n = 0;
  await Promise.all(Array.from({ length: workers }, async () => {
    for (let k = 0; k < each; k++) {
      try {
        answers.push((await call(n++)) as Answer);
      } catch (e) {
        errors.push(e);
      }
    }
  }));
  return { answers, errors };
}

const countBy = (xs: Answer[]) => xs.reduce((m, a) => m.set(a.group, (m.get(a.group) ?? 0) + 1), new Map<string, number>());

const group = (name: string, over: Partial<ReplicaGroupSpec> = {}): ReplicaGroupSpec => ({
  name,
  template: { command: process.execPath, args: [replica], readiness: { kind: 'sdk' }, env: { SERVICE_MS: '300' } },
  replicas: { initial: 1, max: 1 },
  maxInFlightPerReplica: 2,
  ...over,
});

describe('overflow to another replica group', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  const routers: Router[] = [];
  useCluster({ workers: 1 }, (fx) => ({ cluster, sdk } = fx));

  beforeAll(async () => {
    // Room before a call is saturated: 2 in flight + 2 waiting per replica (queuePerReplicaAbove 2), in each group.
    await sdk.replicaGroups.apply(group('ovf-small', { models: ['small-model'] }));
    await sdk.replicaGroups.apply(group('ovf-big', { models: ['big-model'], overflow: { group: 'ovf-small', queuePerReplicaAbove: 2 } }));
    await sdk.replicaGroups.apply(group('ovf-lone', { overflow: { group: 'ovf-none', onBackPressure: true } }));
    await waitFor('three groups ready', async () => {
      const ready = await Promise.all(['ovf-small', 'ovf-big', 'ovf-lone'].map(async (n) => (await sdk.replicaGroups.get(n)).replicas.some((r) => r.state === 'ready')));
      return ready.every(Boolean) || undefined;
    }, { timeoutMs: 30_000 });
  }, 60_000);
  afterAll(() => {
    for (const r of routers) r.close();
  });

  /** A router of `name` whose overflow router has a ready replica (or, for a missing group, has said why not). */
  async function routerOf(name: string, opts: { maxQueued?: number } = {}, overflowReady = true): Promise<Router> {
    const r = await sdk.replicaGroups.router(name, opts);
    routers.push(r);
    await waitFor(`${name}: a member and its overflow router`, () => (r.membership?.replicas.length === 1 && (overflowReady ? r.stats().overflow?.readyReplicas === 1 : r.stats().overflow !== undefined)) || undefined, { timeoutMs: 10_000 });
    return r;
  }

  it('under load within both groups\' room, every call succeeds and the overflow group answers some, as many as counted', async () => {
    const r = await routerOf('ovf-big');
    // 6 callers: at most 6 calls at once, under the 8 the two groups hold.
    const { answers, errors } = await load((i) => r.call({ i }, { timeoutMs: 10_000 }), 6, 4);
    expect(errors).toEqual([]);
    const by = countBy(answers);
    expect(answers).toHaveLength(24);
    expect(by.get('ovf-big')).toBeGreaterThan(0);
    expect(by.get('ovf-small')).toBeGreaterThan(0);
    expect(r.stats().overflow).toEqual({ group: 'ovf-small', readyReplicas: 1, sent: by.get('ovf-small'), refused: 0 });
  });

  it('a stream overflows too: its chunks come from the overflow group', async () => {
    const r = await routerOf('ovf-big');
    // 2 in flight and 2 waiting: the group is at its rule, the next call is saturated.
    const held = Array.from({ length: 4 }, (_, i) => r.call({ i }, { timeoutMs: 10_000 }) as Promise<Answer>);
    const chunks: Answer[] = [];
    for await (const c of r.stream({ s: 1 }, { timeoutMs: 10_000 })) chunks.push(c as Answer);
    expect(chunks.map((c) => c.group)).toEqual(['ovf-small', 'ovf-small', 'ovf-small']);
    expect((await Promise.all(held)).map((a) => a.group)).toEqual(['ovf-big', 'ovf-big', 'ovf-big', 'ovf-big']);
  });

  it('beyond the room of both groups, calls wait in the primary; beyond its queue too, the caller gets back-pressure naming both', async () => {
    // The primary holds 2 in flight and 2 waiting (maxQueued), the overflow group 2 + 2 by the rule: 8 of 20 are answered at most.
    const r = await routerOf('ovf-big', { maxQueued: 2 });
    const { answers, errors } = await load((i) => r.call({ i }, { timeoutMs: 10_000 }), 20, 1);
    expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) {
      expect(isMusterError(e) && e.code).toBe(ErrorCode.BACKPRESSURE);
      expect((e as Error).message).toMatch(/replica group "ovf-big" is saturated: .*its overflow group "ovf-small" is saturated too/);
    }
    expect(answers.length + errors.length).toBe(20);
    expect(countBy(answers).get('ovf-small')).toBe(r.stats().overflow?.sent);
    expect(r.stats().overflow?.refused).toBe(errors.length);
    // With room in its queue (the default maxQueued), the primary keeps what the overflow group cannot take: none is refused.
    const roomy = await routerOf('ovf-big');
    const waited = await load((i) => roomy.call({ i }, { timeoutMs: 20_000 }), 12, 1);
    expect(waited.errors).toEqual([]);
    expect(countBy(waited.answers).get('ovf-big')).toBeGreaterThan(4);
  });

  it('every router of this process overflows through the one router of the overflow group it shares', async () => {
    const a = await routerOf('ovf-big');
    const b = await routerOf('ovf-big');
    const small = await (await sdk.replicaGroups.get('ovf-small')).routerOf();
    // 2 in flight and 2 waiting in a primary: its next calls overflow, through the router this process keeps for `ovf-small`.
    const held = [a, b].flatMap((r) => Array.from({ length: 5 }, (_, i) => r.call({ i }, { timeoutMs: 10_000 }) as Promise<Answer>));
    await waitFor('an overflowed call in flight in the shared router', () => small.stats().replicas.some((x) => x.inFlight > 0) || undefined, { timeoutMs: 5_000 });
    const answered = countBy(await Promise.all(held));
    expect(answered.get('ovf-small')).toBe((a.stats().overflow?.sent ?? 0) + (b.stats().overflow?.sent ?? 0));
    await Promise.all(held);
  });

  it('an overflow group that does not exist: calls beyond the rule get back-pressure saying so, until it is made', async () => {
    const r = await routerOf('ovf-lone', { maxQueued: 1 }, false);
    const burst = () => load((i) => r.call({ i }, { timeoutMs: 10_000 }), 5, 1);
    const { answers, errors } = await burst();
    // 2 in flight and 1 waiting (maxQueued) are served; the rest would get back-pressure anyway.
    expect(answers.map((a) => a.group)).toEqual(['ovf-lone', 'ovf-lone', 'ovf-lone']);
    expect(errors).toHaveLength(2);
    for (const e of errors) {
      expect(isMusterError(e) && e.code).toBe(ErrorCode.BACKPRESSURE);
      expect((e as Error).message).toMatch(/replica group "ovf-lone" is saturated: no replica has a free slot .*; its overflow group "ovf-none" cannot take it: no membership: no replica group "ovf-none"/);
    }
    // Made later, the group is found by the router's next try (a call's, 2 s after the last; stats() only reads): the same burst is served.
    await sdk.replicaGroups.apply(group('ovf-none'));
    await waitFor('the overflow router has a ready replica', async () => {
      await r.call({ probe: true }, { timeoutMs: 10_000 });
      return r.stats().overflow?.readyReplicas === 1 || undefined;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    const again = await burst();
    expect(again.errors).toEqual([]);
    expect(countBy(again.answers)).toEqual(new Map([['ovf-lone', 3], ['ovf-none', 2]]));
    // Taking the overflow away reaches the router with the next membership, and rolls no replica.
    const before = (await sdk.replicaGroups.get('ovf-lone')).replicas.map((x) => x.id);
    await sdk.replicaGroups.apply(group('ovf-lone'));
    await waitFor('the rule gone from the router', () => r.stats().overflow === undefined || undefined, { timeoutMs: 10_000 });
    expect((await sdk.replicaGroups.get('ovf-lone')).replicas.map((x) => x.id)).toEqual(before);
  });

  describe('through the gateway', () => {
    let gw: ManagedProcess;
    let base: string;
    let metricsUrl: string;
    beforeAll(async () => {
      let ready: TestGateway['ready'];
      ({ gw, base, ready } = await startTestGateway(cluster, ['--no-auth', '--metrics-listen', '127.0.0.1:0']));
      metricsUrl = `http://${ready.metrics}/metrics`;
    }, 30_000);
    afterAll(async () => {
      await gw?.stop();
    });

    const chat = async (i: number): Promise<Answer> => {
      const res = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'big-model', messages: [{ content: `hi ${i}` }] }) });
      if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
      return (await res.json()) as Answer;
    };

    it('an OpenAI call that overflows asks the overflow group for its model, and is counted', async () => {
      // The gateway opens the group's router, and its overflow router, on the first call: until an
      // answer from the overflow group proves that one open, a saturated call may get back-pressure.
      const warm: Answer[] = [];
      await waitFor('a call answered by the overflow group', async () => {
        const { answers } = await load(chat, 6, 1);
        warm.push(...answers);
        return answers.some((a) => a.group === 'ovf-small') || undefined;
      }, { timeoutMs: 15_000 });
      const { answers, errors } = await load(chat, 6, 3);
      expect(errors).toEqual([]);
      const small = answers.filter((a) => a.group === 'ovf-small');
      expect(small.length).toBeGreaterThan(0);
      expect(answers.length - small.length).toBeGreaterThan(0);
      for (const a of answers) expect((a.echo as { body: { model: string } }).body.model).toBe(a.group === 'ovf-small' ? 'small-model' : 'big-model');
      const overflowed = [...warm, ...answers].filter((a) => a.group === 'ovf-small').length;
      const text = await (await fetch(metricsUrl)).text();
      expect(sample(text, 'muster_overflow_calls_total', { group: 'ovf-big', to: 'ovf-small' })).toBe(overflowed);
    });

    it('beyond what the overflow group takes, calls wait in the primary (the gateway\'s routers queue up to 1,000): none is refused', async () => {
      const refusedBefore = sample(await (await fetch(metricsUrl)).text(), 'muster_overflow_refused_total', { group: 'ovf-big', to: 'ovf-small' });
      const { answers, errors } = await load(chat, 20, 1);
      expect(errors).toEqual([]);
      expect(countBy(answers).get('ovf-big')).toBeGreaterThan(4);
      const text = await (await fetch(metricsUrl)).text();
      expect(sample(text, 'muster_overflow_refused_total', { group: 'ovf-big', to: 'ovf-small' }) - refusedBefore).toBe(0);
    }, 30_000);
  });
});

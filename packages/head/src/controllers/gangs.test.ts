/**
 * The gang controller's write path, on a store that fails on command
 * (FaultyStore over a real EmbeddedStore; real event log, node registry and
 * placement group controller; the agent is an in-process stub that records
 * what it is told). The rule: a call whose write fails returns the store's
 * error and changes nothing — memory, agents, events and listeners see only
 * what the store holds — and once the store heals, the same call works.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, otelContext, otelTrace, SpanKind, startSpan, waitFor } from '@muster/common';
import { startTracing } from '@muster/common/tracing';
import {
  Gang,
  GangState as G,
  PlacementGroupState as P,
  type ClusterEvent,
  type GangSpec,
  type HeadMessage,
  type ShardStatusReport,
} from '@muster/proto';
import { NodeRegistry } from '../cluster/registry.js';
import { leaderOnFaultyStore } from '../state/leader-store.test-support.js';
import type { GangRetention } from './gang-gc.js';
import { GANGS_PREFIX, GangController } from './gangs.js';
import { ackingAgent, gpuNodeRegistration } from './controllers.test-support.js';
import { PlacementGroupController } from './placement-groups.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const wire: GangSpec = {
  name: 'llm', placementGroup: 'pg-llm', tp: 2, pp: 2, logMaxBytes: 0, replicaGroup: '', replicaId: '',
  template: { command: 'serve', args: [], env: {}, cwd: '', ports: [], readiness: undefined, liveness: undefined, warmup: undefined },
  startup: { deadlineMs: 60_000, maxRestarts: 3, backoffInitialMs: 60_000, backoffMaxMs: 0, gracePeriodMs: 0 }, roles: [],
};

/** A placed group of two 2-GPU bundles on node n1, and a gang controller over a FaultyStore. */
async function harness(retention?: GangRetention) {
  const { store, writer, log, events, close } = await leaderOnFaultyStore('gangs');
  cleanups.push(close);
  let clock = 0;
  const registry = new NodeRegistry(writer, events, log, 60_000, () => clock);
  /** n1 silent past dead-after: the sweep declares it dead. */
  const kill = async () => {
    clock += 60_001;
    await registry.sweep();
  };
  const pgs = new PlacementGroupController(writer, registry, events, log);
  await pgs.load();
  /** What the agent of n1 was told, in order (reservations it acknowledges, as the real one does). */
  const { conn, told } = ackingAgent(pgs, 'n1');
  await registry.register(gpuNodeRegistration('n1'), conn);
  await pgs.create({ name: 'pg-llm', strategy: 'PACK', bundles: [0, 1].map(() => ({ cpuMillis: 0, memoryBytes: 0, gpus: 2, gpuMemoryMib: 0, migProfile: '', custom: {} })), topology: [], matchLabels: {}, tolerations: [], priority: 0 });
  expect((await pgs.wait('pg-llm', 5_000)).state).toBe(P.PLACEMENT_GROUP_STATE_CREATED);

  const gangs = new GangController(writer, registry, pgs, events, log, undefined, retention);
  await gangs.load();
  cleanups.push(() => gangs.close());
  const changed: Gang[] = [];
  gangs.onChange((g) => changed.push(g));
  const published: ClusterEvent[] = [];
  events.subscribe((e) => published.push(e));
  const gangEvents = async () => (await events.history()).filter((e) => e.kind.startsWith('gang.')).map((e) => e.kind);
  const stored = async (id: string) => {
    const kv = await store.get(GANGS_PREFIX + id);
    return kv && Gang.decode(kv.value);
  };
  return { store, gangs, told, changed, published, gangEvents, stored, kill };
}

function report(rank: number, phase: string, over: Partial<ShardStatusReport> = {}): ShardStatusReport {
  return { gangId: '', attempt: 1, rank, phase, pid: 100 + rank, exitCode: undefined, signal: '', reason: '', stopped: false, logTail: '', portInUse: 0, warmupMs: 0, ...over };
}

const kinds = (msgs: HeadMessage[]) => msgs.map((m) => m.msg?.$case);

describe('gang controller on a failing store', () => {
  it('a launch whose write fails rejects and leaves nothing: no gang, no agent order, no event, no listener call; healed, it works', async () => {
    const h = await harness();
    h.store.failWrites({ prefix: GANGS_PREFIX });
    await expect(h.gangs.launch(wire)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE, message: expect.stringMatching(/injected store fault/) });
    expect(h.store.failed).toBeGreaterThan(0);
    expect(h.gangs.list()).toEqual([]);
    expect(() => h.gangs.get('llm')).toThrow(/no gang "llm"/);
    expect(h.told).toEqual([]);
    expect(h.changed).toEqual([]);
    expect(h.published.filter((e) => e.kind.startsWith('gang.'))).toEqual([]);
    expect(await h.gangEvents()).toEqual([]);
    expect((await h.store.range(GANGS_PREFIX)).kvs).toEqual([]);

    // Healed: the same launch (same name, same group) goes through; nothing of the failed one is in its way.
    h.store.heal();
    const g = await h.gangs.launch(wire);
    expect(g.state).toBe(G.GANG_STATE_STARTING);
    expect(await h.stored(g.id)).toEqual(g);
    expect(kinds(h.told)).toEqual(['launchShards']);
    expect(h.told[0]?.msg?.$case === 'launchShards' && h.told[0].msg.value.shards.map((s) => s.rank)).toEqual([0, 1, 2, 3]);
    expect(h.changed.map((x) => x.state)).toEqual([G.GANG_STATE_PENDING, G.GANG_STATE_STARTING]);
    expect(await h.gangEvents()).toEqual(['gang.pending', 'gang.starting']);
  });

  it('a report whose write fails rejects; memory is what the store holds and no agent is told; healed, the report is decided again', async () => {
    const h = await harness();
    const g = await h.gangs.launch(wire);
    for (const rank of [0, 1, 2, 3]) await h.gangs.shardStatus('n1', report(rank, 'ready', { gangId: g.id }));
    expect(h.gangs.get(g.id).state).toBe(G.GANG_STATE_READY);
    h.told.length = 0;
    h.changed.length = 0;

    h.store.failWrites({ prefix: GANGS_PREFIX });
    const exited = report(2, 'exited', { gangId: g.id, exitCode: 1, reason: 'crashed' });
    await expect(h.gangs.shardStatus('n1', exited)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    const stored = await h.stored(g.id);
    expect(stored?.state).toBe(G.GANG_STATE_READY);
    expect(h.gangs.get(g.id)).toEqual(stored);
    expect(h.gangs.list()).toEqual([stored]);
    expect(h.told).toEqual([]);
    expect(h.changed).toEqual([]);
    expect(await h.gangEvents()).toEqual(['gang.pending', 'gang.starting', 'gang.ready']);

    // A stop whose write fails: the same.
    await expect(h.gangs.stop(g.id)).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    expect(h.gangs.get(g.id)).toEqual(await h.stored(g.id));
    expect(h.told).toEqual([]);

    // Healed: the agent sends the report again (its stream was refused; it re-registers). Had memory
    // kept the failed decision (RESTARTING), this report would change nothing.
    h.store.heal();
    await h.gangs.shardStatus('n1', exited);
    const after = h.gangs.get(g.id);
    expect(after).toMatchObject({ state: G.GANG_STATE_RESTARTING, restarts: 0, lastFailure: { rank: 2, reason: 'crashed', exitCode: 1 } });
    expect(await h.stored(g.id)).toEqual(after);
    expect(kinds(h.told)).toEqual(['stopShards']);
    expect(h.changed.map((x) => x.state)).toEqual([G.GANG_STATE_RESTARTING]);
    expect(await h.gangEvents()).toEqual(['gang.pending', 'gang.starting', 'gang.ready', 'gang.restarting']);
  });

  it('a node death whose write fails leaves the gang as stored, tells no one, and is decided again once the store heals', async () => {
    const h = await harness();
    const g = await h.gangs.launch(wire);
    for (const rank of [0, 1, 2, 3]) await h.gangs.shardStatus('n1', report(rank, 'ready', { gangId: g.id }));
    h.told.length = 0;
    h.changed.length = 0;

    h.store.failWrites({ prefix: GANGS_PREFIX });
    await h.kill();
    await waitFor('the store to refuse a write', () => h.store.failed > 0);
    await h.gangs.shardInventory('n2', []); // a call that waits for the reload and changes nothing
    const stored = await h.stored(g.id);
    expect(stored?.state).toBe(G.GANG_STATE_READY);
    expect(h.gangs.get(g.id)).toEqual(stored);
    expect(h.told).toEqual([]);
    expect(h.changed).toEqual([]);

    // Healed: the retry pass finds the ranks on a dead node (the node's death itself is not sent again).
    h.store.heal();
    await waitFor('the gang to restart', () => h.gangs.get(g.id).state === G.GANG_STATE_RESTARTING);
    expect(h.gangs.get(g.id)).toMatchObject({ restarts: 0, lastFailure: { rank: 0, nodeId: 'n1', reason: 'node n1 died' } });
    expect(await h.stored(g.id)).toEqual(h.gangs.get(g.id));
    expect(h.changed.map((x) => x.state)).toEqual([G.GANG_STATE_RESTARTING]);
    expect(await h.gangEvents()).toEqual(['gang.pending', 'gang.starting', 'gang.ready', 'gang.restarting']);
  });

  it('a phase report whose write fails is not waited for, tells no one, and leaves memory as stored', async () => {
    const h = await harness();
    const g = await h.gangs.launch(wire);
    h.told.length = 0;
    h.changed.length = 0;
    h.store.failWrites({ prefix: GANGS_PREFIX });
    await h.gangs.shardStatus('n1', report(0, 'started', { gangId: g.id })); // resolves before the write: nothing waits on it
    await waitFor('the store to refuse a write', () => h.store.failed > 0);
    await h.gangs.shardInventory('n2', []); // a call that waits for the reload and changes nothing
    expect(h.gangs.get(g.id)).toEqual(await h.stored(g.id));
    expect(h.gangs.get(g.id).ranks[0]?.phase).toBe('pending');
    expect(h.told).toEqual([]);
    expect(h.changed).toEqual([]);

    h.store.heal();
    for (const rank of [0, 1, 2, 3]) await h.gangs.shardStatus('n1', report(rank, 'ready', { gangId: g.id }));
    expect(h.gangs.get(g.id).state).toBe(G.GANG_STATE_READY);
    expect(await h.stored(g.id)).toEqual(h.gangs.get(g.id));
  });

  it('answers show only durable records: a launch in flight is not listed until its write is', async () => {
    const h = await harness();
    const launching = h.gangs.launch(wire);
    expect(h.gangs.list()).toEqual([]);
    const g = await launching;
    expect(h.gangs.list()).toEqual([g]);
  });
});

describe('finished gangs are collected through the commit', () => {
  it('a finished gang its owner holds stays; let go, a failed delete forgets nothing; healed, it is deleted with gang.collected', async () => {
    const h = await harness({ kept: 0, maxAgeMs: 3_600_000 });
    let held = true;
    h.gangs.setOwner(() => held);
    const g = await h.gangs.launch(wire);
    await h.gangs.stop(g.id);
    for (const rank of [0, 1, 2, 3]) await h.gangs.shardStatus('n1', report(rank, 'exited', { gangId: g.id, stopped: true }));
    await waitFor('the gang to stop', () => h.gangs.get(g.id).state === G.GANG_STATE_STOPPED);
    expect(await h.gangs.collect()).toBe(0);
    expect(h.gangs.list().map((x) => x.id)).toEqual([g.id]);

    held = false;
    h.store.failWrites({ prefix: GANGS_PREFIX });
    await expect(h.gangs.collect()).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
    expect(h.gangs.list().map((x) => x.id)).toEqual([g.id]);
    expect((await h.stored(g.id))?.state).toBe(G.GANG_STATE_STOPPED);
    expect(await h.gangEvents()).not.toContain('gang.collected');

    h.store.heal();
    expect(await h.gangs.collect()).toBe(1);
    expect(h.gangs.list()).toEqual([]);
    expect(() => h.gangs.get(g.id)).toThrow(/no gang/);
    expect(await h.stored(g.id)).toBeUndefined();
    expect((await h.gangEvents()).filter((k) => k === 'gang.collected')).toHaveLength(1);
    // A late report of the collected gang is answered as one of an unknown gang.
    h.told.length = 0;
    await h.gangs.shardStatus('n1', report(0, 'ready', { gangId: g.id }));
    expect(kinds(h.told)).toEqual(['stopShards']);
  });
});

describe('the trace a launch order carries', () => {
  /** A tracer provider (sampled out: contexts travel, nothing is exported) and a span standing for some traced call. */
  const traced = () => {
    const tracing = startTracing({ service: 'gangs-test', env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_TRACES_SAMPLER: 'always_off' } });
    cleanups.push(() => tracing.shutdown());
    const span = startSpan('some call', SpanKind.SERVER, {})!;
    return { traceId: span.spanContext().traceId, ctx: otelTrace.setSpan(otelContext.active(), span) };
  };
  const orderTrace = (msgs: HeadMessage[]) => (msgs[0]?.msg?.$case === 'launchShards' ? msgs[0].msg.value.trace : 'no order');

  it('is the one handed to launch(): the launching call\'s trace, under a launch span of its own', async () => {
    const h = await harness();
    const call = traced();
    await h.gangs.launch(wire, '', call.ctx);
    const trace = orderTrace(h.told);
    expect(trace).toMatchObject({ traceparent: expect.stringContaining(`-${call.traceId}-`) });
  });

  it('is none for a launch given no trace (a replica group\'s gangs), whatever call is active around it', async () => {
    const h = await harness();
    const kicker = traced();
    await otelContext.with(kicker.ctx, () => h.gangs.launch(wire, ''));
    expect(kinds(h.told)).toEqual(['launchShards']);
    expect(orderTrace(h.told)).toBeUndefined();
  });
});

/**
 * The registry's commit rule, on a store that fails writes on command
 * (FaultyStore over a real EmbeddedStore): a node change whose write fails
 * returns an error and changes nothing — memory, the agent's stream, the
 * event log and the listeners see only what the store holds — and happens
 * once the store takes writes again. Heartbeats write nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { MusterError } from '@muster/common';
import { Node, NodeState, type AgentMessage } from '@muster/proto';
import { agentServiceOn, openAgentStream, registration } from '../api/agent-stream.test-support.js';
import { leaderOnFaultyStore } from '../state/leader-store.test-support.js';
import { NODES_PREFIX, NodeRegistry, STORM_EXCUSE_LIMIT, type AgentConnection } from './registry.js';

const DEAD_AFTER_MS = 1_000;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function harness() {
  const { store, writer, log, events, close } = await leaderOnFaultyStore('registry', { eventRetention: 1_000 });
  cleanups.push(close);
  let clock = 0;
  const registry = new NodeRegistry(writer, events, log, DEAD_AFTER_MS, () => clock);
  const heard: string[] = [];
  registry.onTransition((kind, node) => heard.push(`${kind} ${node.nodeId}`));
  const closed: string[] = [];
  let ids = 0;
  const conn = (): AgentConnection => {
    const id = ++ids;
    return { id, send: () => undefined, close: (e: MusterError) => void closed.push(`${id}: ${e.code}`) };
  };
  const stored = async (nodeId: string) => {
    const kv = await store.get(NODES_PREFIX + nodeId);
    return kv && Node.decode(kv.value);
  };
  const eventKinds = async () => (await events.history()).map((e) => `${e.kind} ${e.nodeId}`);
  return { store, writer, events, registry, log, heard, closed, conn, stored, eventKinds, advance: (ms: number) => (clock += ms), clock: () => clock };
}

describe('NodeRegistry on a store that fails writes', () => {
  it('a registration whose write fails is refused and leaves no trace; healed, it registers', async () => {
    const h = await harness();
    h.store.failWrites({ prefix: NODES_PREFIX });
    await expect(h.registry.register(registration('n1'), h.conn())).rejects.toMatchObject({ code: 'MUSTER_UNAVAILABLE' });
    expect(h.store.failed).toBe(1);
    expect(h.registry.get('n1')).toBeUndefined();
    expect(h.registry.connection('n1')).toBeUndefined();
    expect(h.registry.version).toBe(0);
    expect(h.heard).toEqual([]);
    expect(await h.stored('n1')).toBeUndefined();
    expect(await h.eventKinds()).toEqual([]);

    h.store.heal();
    const node = await h.registry.register(registration('n1'), h.conn());
    expect(node.state).toBe(NodeState.NODE_STATE_ALIVE);
    expect(h.registry.get('n1')).toBe(node);
    expect(h.heard).toEqual(['node.registered n1']);
    expect((await h.stored('n1'))?.state).toBe(NodeState.NODE_STATE_ALIVE);
    expect(await h.eventKinds()).toEqual(['node.registered n1']);
  });

  it('a death whose write fails is not seen by anyone and is retried by the next sweep', async () => {
    const h = await harness();
    const c = h.conn();
    const alive = await h.registry.register(registration('n1'), c);
    h.heard.length = 0;
    h.advance(DEAD_AFTER_MS + 1);
    h.store.failWrites({ prefix: NODES_PREFIX });

    expect(await h.registry.sweep()).toEqual([]);
    expect(h.store.failed).toBe(1);
    expect(h.registry.get('n1')).toBe(alive);
    expect(h.registry.get('n1')?.state).toBe(NodeState.NODE_STATE_ALIVE);
    expect(h.registry.connection('n1')).toBe(c);
    expect(h.closed).toEqual([]);
    expect(h.heard).toEqual([]);
    expect(h.registry.count(NodeState.NODE_STATE_DEAD)).toBe(0);
    expect((await h.stored('n1'))?.state).toBe(NodeState.NODE_STATE_ALIVE);
    expect(await h.eventKinds()).toEqual(['node.registered n1']);

    h.store.heal();
    const dead = await h.registry.sweep();
    expect(dead.map((n) => n.nodeId)).toEqual(['n1']);
    expect(h.registry.get('n1')?.state).toBe(NodeState.NODE_STATE_DEAD);
    expect(h.registry.connection('n1')).toBeUndefined();
    expect(h.closed).toEqual([`${c.id}: MUSTER_UNAVAILABLE`]);
    expect(h.heard).toEqual(['node.dead n1']);
    expect((await h.stored('n1'))?.state).toBe(NodeState.NODE_STATE_DEAD);
    expect(await h.eventKinds()).toEqual(['node.registered n1', 'node.dead n1']);
  });

  it('a split commit whose later part fails: memory takes what the earlier parts wrote', async () => {
    const h = await harness();
    const ids = Array.from({ length: 150 }, (_, i) => `n${i}`);
    // One commit of 150 registrations is split into several transactions; the second one fails.
    h.store.failWrites({ prefix: NODES_PREFIX, after: 1, times: 1 });
    const results = await Promise.allSettled(ids.map((id) => h.registry.register(registration(id), h.conn())));
    expect(h.store.failed).toBe(1);
    const refused = ids.filter((_, i) => results[i]!.status === 'rejected');
    const written = (await Promise.all(ids.map(async (id) => ((await h.stored(id)) ? id : undefined)))).filter((id) => id !== undefined);
    // The case under test: records written by an earlier part of a commit whose caller was refused.
    expect(refused.some((id) => written.includes(id))).toBe(true);
    for (const id of ids) expect(h.registry.get(id)?.nodeId, id).toBe(written.includes(id) ? id : undefined);
    // Such a node's agent retries, and is taken as the reconnect of the node the store holds.
    const back = refused.find((id) => written.includes(id))!;
    await h.registry.register(registration(back), h.conn());
    expect(h.heard).toContain(`node.reconnected ${back}`);
  });

  it('a drain or uncordon whose write fails is refused and changes nothing', async () => {
    const h = await harness();
    await h.registry.register(registration('n1'), h.conn());
    h.heard.length = 0;
    h.store.failWrites({ prefix: NODES_PREFIX, times: 1 });
    await expect(h.registry.drain('n1', 'maintenance', 'operator')).rejects.toMatchObject({ code: 'MUSTER_UNAVAILABLE' });
    expect(h.registry.get('n1')?.draining).toBe(false);
    expect(h.heard).toEqual([]);

    await h.registry.drain('n1', 'maintenance', 'operator');
    expect(h.registry.get('n1')?.draining).toBe(true);
    h.store.failWrites({ prefix: NODES_PREFIX, times: 1 });
    await expect(h.registry.uncordon('n1', 'operator')).rejects.toMatchObject({ code: 'MUSTER_UNAVAILABLE' });
    expect(h.registry.get('n1')?.draining).toBe(true);
    expect((await h.stored('n1'))?.draining).toBe(true);
    expect(h.heard).toEqual(['node.draining n1']);
  });

  it('changes of one node run in turn: a drain sent during a registration is kept by it', async () => {
    const h = await harness();
    await h.registry.register(registration('n1', 'inc-1'), h.conn());
    h.advance(DEAD_AFTER_MS + 1);
    const again = h.registry.register(registration('n1', 'inc-2'), h.conn());
    const drained = h.registry.drain('n1', 'maintenance', 'operator');
    await Promise.all([again, drained]);
    expect(h.registry.get('n1')).toMatchObject({ incarnation: 'inc-2', draining: true });
    expect(await h.stored('n1')).toMatchObject({ incarnation: 'inc-2', draining: true });
  });

  it('heartbeats write nothing', async () => {
    const h = await harness();
    const c = h.conn();
    await h.registry.register(registration('n1'), c);
    const before = await h.store.revision();
    h.store.failWrites();
    for (let i = 0; i < 100; i++) {
      h.advance(10);
      expect(h.registry.heartbeat('n1', c)).toBe(true);
    }
    expect(h.store.failed).toBe(0);
    expect(await h.store.revision()).toBe(before);
  });
});

describe('an agent registering while the store refuses the write', () => {
  it('gets an error on its stream, and is neither answered nor heard of', async () => {
    const h = await harness();
    const service = agentServiceOn({ registry: h.registry, log: h.log, deadAfterMs: DEAD_AFTER_MS });
    h.store.failWrites({ prefix: NODES_PREFIX });
    const { call, failed } = openAgentStream(service);
    const register: AgentMessage = { msg: { $case: 'register', value: registration('n1') } };
    call.emit('data', register);
    const err = (await failed) as Error & { code: number };
    expect(err.message).toMatch(/injected store fault/);
    expect(call.written).toEqual([]); // no `registered`, no reservations
    expect(h.heard).toEqual([]);
    expect(h.registry.get('n1')).toBeUndefined();
  });
});

describe('an agent with a node certificate', () => {
  async function serve() {
    const h = await harness();
    const service = agentServiceOn({ registry: h.registry, log: h.log, deadAfterMs: DEAD_AFTER_MS });
    return { h, open: (node?: string) => openAgentStream(service, node) };
  }
  const register = (nodeId: string, incarnation?: string): AgentMessage => ({ msg: { $case: 'register', value: registration(nodeId, incarnation) } });

  it('registers its own node id, and no other (nothing written, nothing heard)', async () => {
    const { h, open } = await serve();
    const own = open('n2');
    own.call.emit('data', register('n2'));
    await expect.poll(() => own.call.written[0]?.msg?.$case).toBe('registered');
    const other = open('n2');
    other.call.emit('data', register('n3'));
    const err = (await other.failed) as Error & { code: number };
    expect(err.code).toBe(7); // PERMISSION_DENIED
    expect(err.message).toBe('node "n2" may not register as node "n3": a node certificate registers only the node id it names (CN)');
    expect(other.call.written).toEqual([]);
    expect(h.registry.get('n3')).toBeUndefined();
    expect(h.heard).toEqual(['node.registered n2']);
  });

  it('cannot take over another node by replaying its incarnation; the token (an admin) registers any node', async () => {
    const { h, open } = await serve();
    const victim = open(); // the token only: an admin
    victim.call.emit('data', register('n1', 'inc-victim'));
    await expect.poll(() => victim.call.written[0]?.msg?.$case).toBe('registered');
    let victimCut = false;
    void victim.failed.then(() => (victimCut = true));
    const thief = open('n2');
    thief.call.emit('data', register('n1', 'inc-victim'));
    // The thief's refusal is the marker: its registration was handled to the end.
    expect(((await thief.failed) as Error & { code: number }).code).toBe(7);
    expect(thief.call.written).toEqual([]);
    expect(h.registry.get('n1')?.incarnation).toBe('inc-victim');
    expect(victimCut).toBe(false); // the victim's stream was not superseded
    expect(h.heard).toEqual(['node.registered n1']);
  });
});

describe('NodeRegistry under load', () => {
  it('registrations that share one failed batched write are all refused and leave no trace', async () => {
    const h = await harness();
    h.store.failWrites({ prefix: NODES_PREFIX });
    const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => h.registry.register(registration(`n${i}`), h.conn())));
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(h.registry.list()).toEqual([]);
    expect(h.heard).toEqual([]);
    expect(await h.eventKinds()).toEqual([]);

    h.store.heal();
    await Promise.all(Array.from({ length: 20 }, (_, i) => h.registry.register(registration(`n${i}`), h.conn())));
    expect(h.registry.count(NodeState.NODE_STATE_ALIVE)).toBe(20);
    expect(h.heard).toHaveLength(20);
    expect(await h.eventKinds()).toHaveLength(20);
  });

  it('counts silence from when the head could read a heartbeat: its backlog extends the limit', async () => {
    const h = await harness();
    const c1 = h.conn();
    const c2 = h.conn();
    await h.registry.register(registration('n1'), c1);
    await h.registry.register(registration('n2'), c2);
    // Baselines: heartbeats read as soon as sent.
    h.registry.heartbeat('n1', c1, Date.now());
    h.registry.heartbeat('n2', c2, Date.now());
    expect(await h.registry.sweep()).toEqual([]);
    expect(h.registry.heartbeatBacklogMs).toBeLessThan(50);

    // The head reads n2's next heartbeat 2 s after it was sent: it is 2 s behind.
    h.advance(1_500);
    h.registry.heartbeat('n2', c2, Date.now() - 2_000);
    expect(await h.registry.sweep()).toEqual([]); // n1 silent 1.5 s, limit 1 s + 2 s
    expect(h.registry.heartbeatBacklogMs).toBeGreaterThanOrEqual(1_950);

    // No heartbeat read since: the backlog stands, and n1 is dead once silent beyond it.
    h.advance(1_600);
    expect((await h.registry.sweep()).map((n) => n.nodeId)).toEqual(['n1']);
    expect(h.registry.get('n1')?.stateReason).toMatch(/the head was behind reading heartbeats/);
    expect(h.registry.get('n2')?.state).toBe(NodeState.NODE_STATE_ALIVE);
  });

  it('excuses a stall of the head for every node', async () => {
    const h = await harness();
    await h.registry.register(registration('n1'), h.conn());
    h.advance(900);
    h.registry.excuse(500);
    h.advance(200); // 1.1 s since the last heartbeat, 0.6 s of it while the head listened
    expect(await h.registry.sweep()).toEqual([]);
    h.advance(400);
    expect((await h.registry.sweep()).map((n) => n.nodeId)).toEqual(['n1']);
  });

  it('declares no streamless node dead while registrations are turned away (a storm), and does once they are not', async () => {
    const h = await harness();
    // No room at all: every registration is refused, as in a storm.
    const full = agentServiceOn({ registry: h.registry, log: h.log, deadAfterMs: DEAD_AFTER_MS, maxAdmitting: 0 });
    const waiting = h.conn();
    const streaming = h.conn();
    await h.registry.register(registration('waiting'), waiting);
    await h.registry.register(registration('streaming'), streaming);
    h.registry.disconnected('waiting', waiting); // its head went away; its agent queues to get back in

    h.advance(500);
    const { call, failed } = openAgentStream(full);
    call.emit('data', { msg: { $case: 'register', value: registration('waiting', 'inc-1') } } satisfies AgentMessage);
    expect(await failed).toMatchObject({ message: expect.stringMatching(/admitting 0 registrations/) });

    // Both silent 1.2 s (limit 1 s): the one with a stream is judged by its heartbeats; the one without is excused.
    h.advance(700);
    expect((await h.registry.sweep()).map((n) => n.nodeId)).toEqual(['streaming']);
    expect(h.registry.get('waiting')?.state).toBe(NodeState.NODE_STATE_ALIVE);

    // No refusal for deadAfterMs: its silence counts again.
    h.advance(400);
    expect((await h.registry.sweep()).map((n) => n.nodeId)).toEqual(['waiting']);
  });

  it('excuses a stream-less node for at most STORM_EXCUSE_LIMIT × deadAfterMs more, however long refusals go on', async () => {
    const h = await harness();
    const conn = h.conn();
    await h.registry.register(registration('waiting'), conn);
    h.registry.disconnected('waiting', conn);
    const ceiling = DEAD_AFTER_MS * (1 + STORM_EXCUSE_LIMIT);
    // Refusals never stop (a storm that lasts, or a hostile agent keeping admission full).
    for (let silent = 0; silent + 500 < ceiling; silent += 500) {
      h.advance(500);
      h.registry.admissionRefused();
      expect(await h.registry.sweep()).toEqual([]);
    }
    h.advance(500);
    h.registry.admissionRefused();
    expect((await h.registry.sweep()).map((n) => n.nodeId)).toEqual(['waiting']);
  });

  it('gives nodes read back at load their grace from when the term starts judging, not from the read', async () => {
    const h = await harness();
    await h.registry.register(registration('n1'), h.conn());
    // A new term: a registry that loads the stored record, and takes 5 s (a busy machine) to start serving.
    const next = new NodeRegistry(h.writer, h.events, h.log, DEAD_AFTER_MS, () => h.clock());
    await next.load();
    h.advance(5_000);
    next.startJudging();
    h.advance(1_500); // 6.5 s after the read, 1.5 s into the term (grace: 2 × deadAfterMs)
    expect(await next.sweep()).toEqual([]);
    h.advance(600);
    expect((await next.sweep()).map((n) => n.nodeId)).toEqual(['n1']);
  });
});

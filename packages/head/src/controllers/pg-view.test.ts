/**
 * The scheduling view (pg-view.ts) catches up with the node registry one node
 * at a time: a registration, a drain or a death replaces that node in the
 * state it keeps (the same state object, its placements carried over), a new
 * node is added, and only what the registry can no longer name (a removal)
 * builds the state anew.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { NodeRegistry, type AgentConnection } from '../cluster/registry.js';
import { leaderOnFaultyStore } from '../state/leader-store.test-support.js';
import { gpuNodeRegistration } from './controllers.test-support.js';
import { SchedulingView } from './pg-view.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  const { writer, log, events, close } = await leaderOnFaultyStore('pg-view', { eventRetention: 1_000 });
  cleanups.push(close);
  const clock = { now: 0 };
  const registry = new NodeRegistry(writer, events, log, 1_000, () => clock.now);
  let ids = 0;
  const conn = (): AgentConnection => ({ id: ++ids, send: () => undefined, close: () => undefined });
  const placements = [{ id: 'pg-1', placements: [{ bundleIndex: 0, nodeId: 'a', gpuIndices: [0, 1, 2], gpuUuids: [], migUuids: [], cpuMillis: 1000, memoryBytes: 0, custom: {} }] }];
  const view = new SchedulingView(registry, () => placements);
  return { registry, view, conn, clock };
}

describe('scheduling view', () => {
  it('replaces a re-registered or drained node in the state it keeps, placements carried over', async () => {
    const { registry, view, conn } = await setup();
    await registry.register(gpuNodeRegistration('a', { gpus: 8 }), conn());
    await registry.register(gpuNodeRegistration('b', { gpus: 8 }), conn());
    const first = view.current();
    expect(first.state.node('a')!.freeGpuCount()).toBe(5);

    await registry.register(gpuNodeRegistration('a', { gpus: 8 }), conn()); // a reconnect: a new record
    await registry.drain('b', 'maintenance', 'operator');
    const next = view.current();
    expect(next.state).toBe(first.state); // caught up, not rebuilt
    expect(next.state.node('a')!.freeGpuCount()).toBe(5);
    expect(next.state.node('b')!.draining).toBe(true);
    expect([...next.draining]).toEqual(['b']);
    expect(next.nodeById.get('a')).toBe(registry.get('a'));
  });

  it('adds a node that joins, after the others, and takes a new inventory of a known one', async () => {
    const { registry, view, conn, clock } = await setup();
    await registry.register(gpuNodeRegistration('a', { gpus: 8 }), conn());
    const first = view.current();
    await registry.register(gpuNodeRegistration('c', { gpus: 4 }), conn());
    clock.now = 2_000; // a's old stream has been silent past deadAfterMs
    await registry.register(gpuNodeRegistration('a', { gpus: 4, incarnation: 'inc-2' }), conn()); // restarted with 4 GPUs (old stream silent)
    const next = view.current();
    expect(next.state).toBe(first.state);
    expect(next.state.nodes.map((n) => n.node.id)).toEqual(['a', 'c']);
    expect(next.state.node('a')!.freeGpuCount()).toBe(1); // 4 GPUs, 3 still held by pg-1
    expect(next.state.node('c')!.freeGpuCount()).toBe(4);
  });

  it('builds anew when a node was removed (indices would shift)', async () => {
    const { registry, view, conn, clock } = await setup();
    await registry.register(gpuNodeRegistration('a', { gpus: 8 }), conn());
    await registry.register(gpuNodeRegistration('b', { gpus: 8 }), conn());
    const first = view.current();
    clock.now = 5_000;
    registry.heartbeat('a', { id: -1, send: () => undefined, close: () => undefined }); // ignored: another stream
    await registry.sweep(); // both silent: dead
    await registry.remove('b');
    const next = view.current();
    expect(next.state).not.toBe(first.state);
    expect(next.state.nodes.map((n) => n.node.id)).toEqual(['a']);
    expect(next.state.node('a')!.alive).toBe(false);
  });
});

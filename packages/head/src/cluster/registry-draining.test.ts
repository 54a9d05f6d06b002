/**
 * Two per-tick costs of the registry on clusters of 10,000 nodes: the drain
 * check visits only the draining nodes (`listDraining`, kept in step with
 * every durable change: drain, uncordon, death, removal, reload; a failed
 * write leaves it alone), and a storm of node deaths is one warning per
 * liveness sweep, not one per node (each death keeps its node.dead event).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NodeState, type Register } from '@muster/proto';
import { leaderOnFaultyStore } from '../state/leader-store.test-support.js';
import { NODES_PREFIX, NodeRegistry, type AgentConnection } from './registry.js';

const DEAD_AFTER_MS = 1_000;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const registration = (nodeId: string): Register => ({ nodeId, incarnation: 'inc-1', agentVersion: 'test', address: '127.0.0.1', labels: {}, taints: [], inventory: undefined });
const conn = (id: number): AgentConnection => ({ id, send: () => undefined, close: () => undefined });

async function harness() {
  const { store, writer, log, events, close } = await leaderOnFaultyStore('registry-draining');
  cleanups.push(close);
  const clock = { t: 0 };
  const open = () => new NodeRegistry(writer, events, log, DEAD_AFTER_MS, () => clock.t);
  const registry = open();
  const register = async (...ids: string[]) => {
    for (const [i, id] of ids.entries()) await registry.register(registration(id), conn(i + 1));
  };
  return { store, registry, events, log, clock, open, register };
}

const draining = (r: NodeRegistry) => {
  const ids = r.listDraining().map((n) => n.nodeId);
  expect(r.drainingCount).toBe(ids.length); // nothing kept for a node that is gone
  return ids;
};

describe('NodeRegistry.listDraining', () => {
  it('follows drain, uncordon, death and removal, sorted by id', async () => {
    const h = await harness();
    await h.register('n1', 'n2', 'n3');
    expect(draining(h.registry)).toEqual([]);
    await h.registry.drain('n3', 'maintenance', 'operator');
    await h.registry.drain('n2', '', 'agent');
    expect(draining(h.registry)).toEqual(['n2', 'n3']);
    await h.registry.uncordon('n2', 'agent');
    expect(draining(h.registry)).toEqual(['n3']);
    // A dead node stays draining (it takes no work when it comes back).
    h.clock.t += DEAD_AFTER_MS + 1;
    await h.registry.sweep();
    expect(h.registry.get('n3')?.state).toBe(NodeState.NODE_STATE_DEAD);
    expect(draining(h.registry)).toEqual(['n3']);
    await h.registry.remove('n3');
    expect(draining(h.registry)).toEqual([]);
  });

  it('is read back by load() (head restart) and left alone by a failed write', async () => {
    const h = await harness();
    await h.register('n1', 'n2');
    await h.registry.drain('n1', 'maintenance', 'operator');
    h.store.failWrites({ prefix: NODES_PREFIX, times: 1 });
    await expect(h.registry.drain('n2', 'maintenance', 'operator')).rejects.toThrow();
    expect(draining(h.registry)).toEqual(['n1']);
    h.store.failWrites({ prefix: NODES_PREFIX, times: 1 });
    await expect(h.registry.uncordon('n1', 'operator')).rejects.toThrow();
    expect(draining(h.registry)).toEqual(['n1']);
    const next = h.open();
    await next.load();
    expect(draining(next)).toEqual(['n1']);
  });
});

describe('node death warnings', () => {
  it('are one line per sweep with the count and the first ids; every death keeps its event', async () => {
    const h = await harness();
    const warn = vi.spyOn(h.log, 'warn');
    const ids = Array.from({ length: 12 }, (_, i) => `n${String(i).padStart(2, '0')}`);
    await h.register(...ids);
    h.clock.t += DEAD_AFTER_MS + 1;
    const first = await h.registry.sweep(); // at most 10 deaths a sweep on a small cluster
    const second = await h.registry.sweep();
    expect(first.length + second.length).toBe(12);
    const deaths = warn.mock.calls.filter(([fields]) => (fields as { event?: string }).event === 'node.dead');
    expect(deaths.map(([fields]) => (fields as { nodes: number }).nodes)).toEqual([first.length, second.length]);
    expect(deaths[0]![0]).toMatchObject({ nodeIds: first.slice(0, 5).map((n) => n.nodeId) });
    expect(deaths[0]![1]).toMatch(new RegExp(`^${first.length} nodes dead this sweep \\(.*, \\.\\.\\.\\)`));
    // No other warning per node (the event log logs node.dead at debug).
    expect(warn).toHaveBeenCalledTimes(2);
    const dead = (await h.events.history()).filter((e) => e.kind === 'node.dead').map((e) => e.nodeId).sort();
    expect(dead).toEqual(ids);
  });
});

/**
 * Registry transition 9: a DEAD node is forgotten — by an operator
 * (`remove`) or once dead for the TTL (liveness.ts `collectDead`) — written first (record
 * deleted with its node.removed event), then memory and listeners. A live
 * node or one still holding bundles is refused by name; a failed write
 * forgets nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { NodeState, type Register } from '@muster/proto';
import { leaderOnFaultyStore } from '../state/leader-store.test-support.js';
import { collectDead } from './liveness.js';
import { NODES_PREFIX, NodeRegistry, type AgentConnection } from './registry.js';

const DEAD_AFTER_MS = 1_000;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const registration = (nodeId: string): Register => ({ nodeId, incarnation: 'inc-1', agentVersion: 'test', address: '127.0.0.1', labels: {}, taints: [], inventory: undefined });

async function harness() {
  const { store, writer, log, events, close } = await leaderOnFaultyStore('registry-rm', { eventRetention: 1_000 });
  cleanups.push(close);
  let clock = 0;
  const registry = new NodeRegistry(writer, events, log, DEAD_AFTER_MS, () => clock);
  const heard: string[] = [];
  registry.onTransition((kind, node) => heard.push(`${kind} ${node.nodeId}`));
  const conn = (id: number): AgentConnection => ({ id, send: () => undefined, close: () => undefined });
  /** Registers `ids` and lets them die. */
  const dead = async (...ids: string[]) => {
    for (const [i, id] of ids.entries()) await registry.register(registration(id), conn(i + 1));
    clock += DEAD_AFTER_MS + 1;
    await registry.sweep();
  };
  const kinds = async () => (await events.history()).map((e) => `${e.kind} ${e.nodeId}`).filter((k) => k.startsWith('node.removed'));
  return { store, registry, log, heard, conn, dead, kinds, stored: async (id: string) => (await store.get(NODES_PREFIX + id)) !== undefined };
}

describe('NodeRegistry.remove', () => {
  it('refuses a live node, naming it and its state; nothing changes', async () => {
    const h = await harness();
    await h.registry.register(registration('n1'), h.conn(1));
    await expect(h.registry.remove('n1')).rejects.toMatchObject({ code: 'MUSTER_FAILED_PRECONDITION', message: expect.stringMatching(/node n1 is ALIVE/) });
    expect(h.registry.get('n1')?.state).toBe(NodeState.NODE_STATE_ALIVE);
    expect(await h.stored('n1')).toBe(true);
    expect(await h.kinds()).toEqual([]);
  });

  it('refuses an unknown node with NOT_FOUND', async () => {
    const h = await harness();
    await expect(h.registry.remove('nope')).rejects.toMatchObject({ code: 'MUSTER_NOT_FOUND' });
  });

  it('refuses a dead node that placement groups still hold, naming them', async () => {
    const h = await harness();
    await h.dead('n1');
    h.registry.setHolders((id) => (id === 'n1' ? ['pg-a'] : []));
    await expect(h.registry.remove('n1')).rejects.toMatchObject({ code: 'MUSTER_FAILED_PRECONDITION', message: expect.stringMatching(/pg-a/) });
    expect(h.registry.get('n1')).toBeDefined();
  });

  it('removes a dead node: record deleted with node.removed, then memory and listeners', async () => {
    const h = await harness();
    await h.dead('n1');
    const v = h.registry.version;
    const last = await h.registry.remove('n1');
    expect(last.state).toBe(NodeState.NODE_STATE_DEAD);
    expect(h.registry.get('n1')).toBeUndefined();
    expect(h.registry.list()).toEqual([]);
    expect(h.registry.version).toBeGreaterThan(v);
    expect(await h.stored('n1')).toBe(false);
    expect(await h.kinds()).toEqual(['node.removed n1']);
    expect(h.heard.at(-1)).toBe('node.removed n1');
  });

  it('a removal whose write fails forgets nothing', async () => {
    const h = await harness();
    await h.dead('n1');
    h.store.failWrites({ prefix: NODES_PREFIX, times: 1 });
    await expect(h.registry.remove('n1')).rejects.toMatchObject({ code: 'MUSTER_UNAVAILABLE' });
    expect(h.registry.get('n1')?.state).toBe(NodeState.NODE_STATE_DEAD);
    expect(await h.stored('n1')).toBe(true);
    expect(await h.kinds()).toEqual([]);
    expect(h.heard).not.toContain('node.removed n1');
  });
});

describe('collectDead (the dead-node TTL)', () => {
  it('removes only nodes dead for the TTL; live and recently dead ones stay', async () => {
    const h = await harness();
    await h.dead('old1', 'old2');
    await h.registry.register(registration('live'), h.conn(9));
    // The two deaths may be stamped a millisecond or more apart on a busy machine.
    const diedAt = ['old1', 'old2'].map((id) => h.registry.get(id)!.stateChangedAtMs);
    expect(await collectDead(h.registry, 60_000, h.log, Math.min(...diedAt) + 59_000)).toEqual([]);
    const removed = await collectDead(h.registry, 60_000, h.log, Math.max(...diedAt) + 60_000);
    expect(removed.map((n) => n.nodeId).sort()).toEqual(['old1', 'old2']);
    expect(h.registry.list().map((n) => n.nodeId)).toEqual(['live']);
    expect((await h.kinds()).sort()).toEqual(['node.removed old1', 'node.removed old2']);
  });

  it('a node held by a placement group is kept and removed by a later sweep once released', async () => {
    const h = await harness();
    await h.dead('n1');
    let held = ['pg-a'];
    h.registry.setHolders(() => held);
    const later = Date.now() + 120_000;
    expect(await collectDead(h.registry, 60_000, h.log, later)).toEqual([]);
    held = [];
    expect((await collectDead(h.registry, 60_000, h.log, later)).map((n) => n.nodeId)).toEqual(['n1']);
  });
});

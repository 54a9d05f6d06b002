/**
 * node.drained, once per drain, made deterministic: the flake of
 * test/integration/drain.test.ts ("announced twice after a head restart") was
 * a node drained twice, where the first drain's node.drained was written or
 * not depending on whether the 500 ms check ran before the uncordon. Here the
 * check's timer is stopped and the drain status call is the only trigger, on
 * a real embedded store (FaultyStore to fail the event write).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterEvent, type Register } from '@muster/proto';
import { NodeRegistry } from '../cluster/registry.js';
import { EVENTS_PREFIX, EventLog } from '../events/event-log.js';
import { leaderOnFaultyStore } from '../state/leader-store.test-support.js';
import { NodeDrains } from './drain.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const registration: Register = {
  nodeId: 'n1',
  incarnation: 'inc-1',
  agentVersion: 'test',
  address: '127.0.0.1',
  labels: {},
  taints: [],
  inventory: undefined,
};

async function harness() {
  const { inner, store, writer, log, close } = await leaderOnFaultyStore('drain');
  cleanups.push(close);
  /** One leader term's registry, event log and drain announcer, loaded from the store; its timer stopped. */
  const term = async () => {
    const events = new EventLog(writer, log, { retention: 1_000, subjectPrefix: 'muster' });
    const registry = new NodeRegistry(writer, events, log, 60_000);
    await registry.load();
    const drains = new NodeDrains({ registry, pgs: { list: () => [], get: () => { throw new Error('no groups'); }, blockedMove: () => undefined }, gangs: { list: () => [] }, replicaGroups: { list: () => [] } }, events, log);
    drains.close();
    return { registry, drains, events };
  };
  /** The reasons of the stored node.drained events, oldest first. */
  const drained = async () => (await inner.range(EVENTS_PREFIX)).kvs.map((kv) => ClusterEvent.decode(kv.value)).filter((e) => e.kind === 'node.drained').map((e) => e.attributes.reason);
  return { store, term, drained };
}

describe('NodeDrains: node.drained once per drain', () => {
  it('a drain reported drained is announced before the answer, so a quick uncordon cannot skip it; each drain once, also in the next term', async () => {
    const h = await harness();
    const t1 = await h.term();
    await t1.registry.register(registration, { id: 1, send: () => undefined, close: () => undefined });

    await t1.registry.drain('n1', 'maintenance', 'operator');
    expect((await t1.drains.settledStatus('n1')).drained).toBe(true);
    expect(await h.drained()).toEqual(['maintenance']); // durable when the caller hears "drained"
    await t1.registry.uncordon('n1', 'operator');

    await t1.registry.drain('n1', 'gang test', 'operator');
    await t1.drains.settledStatus('n1');
    await t1.drains.settledStatus('n1');
    expect(await h.drained()).toEqual(['maintenance', 'gang test']);

    // A head restart: a new term reads the retained events and does not announce the drain again.
    const t2 = await h.term();
    expect((await t2.drains.settledStatus('n1')).drained).toBe(true);
    expect(await h.drained()).toEqual(['maintenance', 'gang test']);
  });

  it('an announcement whose write fails is not remembered as made: the next call makes it, once', async () => {
    const h = await harness();
    const t = await h.term();
    await t.registry.register(registration, { id: 1, send: () => undefined, close: () => undefined });
    await t.registry.drain('n1', 'disk', 'operator');
    h.store.failWrites({ prefix: EVENTS_PREFIX });
    await expect(t.drains.settledStatus('n1')).rejects.toMatchObject({ code: 'MUSTER_UNAVAILABLE' });
    expect(await h.drained()).toEqual([]);
    h.store.heal();
    await Promise.all([t.drains.settledStatus('n1'), t.drains.settledStatus('n1')]);
    expect(await h.drained()).toEqual(['disk']);
  });
});

/**
 * What the replica group controller's tests start from: the controller on a
 * real embedded store behind a FaultyStore (leaderOnFaultyStore), with
 * placement groups and gangs as in-process stubs (created at once; a gang
 * READY when the test says). `restart()` starts a second controller on the
 * same store and stubs, as a new leader would, to show what was stored.
 * Test support only (`*.test-support.ts` is not compiled into dist).
 */
import { ClusterEvent, GangState as G, type Gang, type GangSpec, type PlacementGroup, type PlacementGroupSpec } from '@muster/proto';
import { EVENTS_PREFIX } from '../events/event-log.js';
import { leaderOnFaultyStore } from '../state/leader-store.test-support.js';
import { ReplicaGroupController } from './replica-groups.js';
import type { GangsPort, PgsPort } from './rg-executor.js';

/** Placement groups and gangs as in-process stubs: created at once, a gang READY when the test says. */
export function stubs() {
  const pgs = new Map<string, PlacementGroup>();
  const gangs = new Map<string, Gang>();
  const listeners: Array<(g: Gang) => void> = [];
  /** The size of each removeMany call (frees are batched: one call per pass). */
  const removeBatches: number[] = [];
  const pgsPort = {
    create: async (spec: PlacementGroupSpec, requestId: string) => {
      const pg = pgs.get(`pg-${spec.name}`) ?? ({ id: `pg-${spec.name}`, spec, placements: [], requestId } as unknown as PlacementGroup);
      pgs.set(pg.id, pg);
      return pg;
    },
    get: (id: string) => pgs.get(id) ?? (() => { throw new Error(`no placement group ${id}`); })(),
    remove: async (id: string) => {
      const pg = pgs.get(id)!;
      pgs.delete(id);
      return pg;
    },
    removeMany: async (ids: string[]) => {
      removeBatches.push(ids.length);
      return ids.map((id) => {
        const pg = pgs.get(id)!;
        pgs.delete(id);
        return pg;
      });
    },
  } as unknown as PgsPort;
  const change = (g: Gang) => listeners.forEach((l) => l(g));
  const gangsPort = {
    launch: async (spec: GangSpec) => {
      const g = gangs.get(`gang-${spec.name}`) ?? ({ id: `gang-${spec.name}`, spec, state: G.GANG_STATE_STARTING, message: 'starting' } as unknown as Gang);
      gangs.set(g.id, g);
      return g;
    },
    get: (id: string) => gangs.get(id) ?? (() => { throw new Error(`no gang ${id}`); })(),
    stop: async (id: string) => {
      const g = gangs.get(id)!;
      g.state = G.GANG_STATE_STOPPED;
      change(g);
      return g;
    },
    onChange: (l: (g: Gang) => void) => listeners.push(l),
  } as unknown as GangsPort;
  /** The gang READY now (as if its ranks reported ready). */
  const ready = (gangId: string) => {
    const g = gangs.get(gangId)!;
    g.state = G.GANG_STATE_READY;
    change(g);
  };
  /** Every gang READY now. */
  const allReady = () => {
    for (const id of gangs.keys()) ready(id);
  };
  /** Gang changes reach no controller started before this (a closed one must not act). */
  const mute = () => listeners.splice(0);
  return { pgsPort, gangsPort, ready, allReady, mute, removeBatches };
}

/** A loaded controller on a fresh store; everything it starts is stopped by `cleanups`. */
export async function rgHarness(cleanups: Array<() => Promise<void> | void>) {
  const { inner, store, writer, log, events, close } = await leaderOnFaultyStore('rgc');
  cleanups.push(close);
  const heard: string[] = [];
  cleanups.push(events.subscribe((e) => heard.push(e.kind)));
  const { pgsPort, gangsPort, ready, allReady, mute, removeBatches } = stubs();
  const start = async () => {
    const c = new ReplicaGroupController(writer, pgsPort, gangsPort, events, log, undefined);
    cleanups.push(() => c.close());
    await c.load();
    return c;
  };
  const rgs = await start();
  let current = rgs;
  const stored = async () => (await inner.range(EVENTS_PREFIX)).kvs.map((kv) => ClusterEvent.decode(kv.value));
  const storedEvents = async () => (await stored()).map((e) => e.kind);
  /** The latest controller closed, a new one loaded from the store (a new leader, same agents). */
  const restart = async () => {
    current.close();
    mute();
    current = await start();
    return current;
  };
  return { inner, store, rgs, heard, stored, storedEvents, ready, allReady, restart, removeBatches, pgsPort, gangsPort };
}

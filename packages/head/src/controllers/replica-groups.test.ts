/**
 * The replica group controller's one rule for writes: a call whose write
 * fails returns an error and changes nothing — get()/list(), the membership,
 * events and their listeners see only what the store holds. The store is a
 * real embedded store behind the fault-injecting FaultyStore; placement
 * groups and gangs are in-process stubs (a test turns a gang READY).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Gang, Membership, RankStatus, ReplicaGroupSpec } from '@muster/proto';
import type { LoadReports } from './load-reports.js';
import { RGS_PREFIX, type ReplicaGroupController } from './replica-groups.js';
import { rgHarness } from './rg-controller.test-support.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const harness = () => rgHarness(cleanups);

const spec: ReplicaGroupSpec = { name: 'web', template: { command: 'node', args: [], env: {}, cwd: '', ports: [], readiness: undefined, liveness: undefined }, replicas: { min: 0, max: 5, initial: 1 } } as unknown as ReplicaGroupSpec;

/** The memberships a watcher of `name` has received, until the test ends. */
function watch(rgs: ReplicaGroupController, name: string): Membership[] {
  const got: Membership[] = [];
  const abort = new AbortController();
  cleanups.push(() => abort.abort());
  void (async () => {
    for await (const m of rgs.watch(name, abort.signal)) got.push(m);
  })();
  return got;
}

/** Rejects as `call` does; meanwhile `probe` looks at the controller on every turn of the event loop. */
async function during(call: Promise<unknown>, probe: () => void): Promise<unknown> {
  let settled = false;
  const settle = () => (settled = true);
  call.then(settle, settle);
  while (!settled) {
    probe();
    await new Promise((r) => setImmediate(r));
  }
  return call;
}

describe('ReplicaGroupController audit', () => {
  it('names the API caller who applied, scaled and deleted a group in its stored events', async () => {
    const { rgs, stored } = await harness();
    const dora = { role: 'deployer', name: 'dora', callGroups: [] } as const;
    await rgs.apply(spec, dora);
    await rgs.scale('web', 2, { ...dora, name: 'dan' });
    await rgs.delete('web', dora);
    const by = (await stored()).filter((e) => e.kind.startsWith('rg.')).map((e) => [e.kind, e.attributes.by]);
    expect(by).toEqual(expect.arrayContaining([['rg.created', 'deployer:dora'], ['rg.scaled', 'deployer:dan'], ['rg.deleting', 'deployer:dora']]));
  });
});

describe('ReplicaGroupController: whose usage it keeps', () => {
  it('only of a replica in the record, from the agent of a node its gang has a rank on', async () => {
    const { rgs, gangsPort } = await harness();
    await rgs.apply(spec);
    await vi.waitFor(() => expect(rgs.get('web').replicas.filter((r) => r.gangId)).toHaveLength(1), { timeout: 5_000 });
    const { id, gangId } = rgs.get('web').replicas[0]!;
    (gangsPort.get(gangId) as Gang).ranks = [{ nodeId: 'n1' }, { nodeId: 'n2' }] as RankStatus[];
    // The replica's own load report, fed as the controller's NATS subscription would.
    const reports = (rgs as unknown as { reports: LoadReports }).reports;
    reports.heard('muster.load.web', { v: 1, replicaId: id, inFlight: 0, queued: 0, timeMs: Date.now() }, 'load');
    // Usage, as the agent service hands it over: under the node the stream registered.
    const usage = (node: string, replicaId: string, cpu: number, group = 'web') => rgs.nodeUsage(node, { sampledAtMs: Date.now(), replicas: [{ group, replicaId, usage: { cpu, gpus: 0 } }] });
    usage('n1', id, 1);
    usage('n2', id, 0.5);
    usage('n3', id, 100); // a node the gang does not run on
    usage('n1', 'r-not-in-the-record', 100);
    usage('n1', id, 100, 'other'); // another group
    // An older worker's report on the load subject: not taken.
    reports.heard('muster.load.web', { v: 1, kind: 'resources', replicaId: id, node: 'n1', timeMs: Date.now(), resources: { cpu: 100 } }, 'load');
    expect(rgs.live('web').loads.get(id)?.resources).toEqual({ cpu: 1.5 });
  });
});

describe('ReplicaGroupController on a store that fails on command', () => {
  it('apply: a failed write creates nothing; healed, it creates the group', async () => {
    const { store, rgs, heard, storedEvents } = await harness();
    store.failWrites({ prefix: RGS_PREFIX });
    await expect(rgs.apply(spec)).rejects.toThrow(/injected store fault/);
    expect(store.failed).toBe(1);
    expect(rgs.list()).toEqual([]);
    expect(() => rgs.get('web')).toThrow(/no replica group/);
    expect(await storedEvents()).toEqual([]);
    expect(heard).toEqual([]);

    store.heal();
    const rg = await rgs.apply(spec);
    expect(rg).toMatchObject({ name: 'web', desired: 1 });
    expect(await storedEvents()).toContain('rg.created');
    expect(heard).toContain('rg.created');
  });

  it('scale, apply and delete: a failed write leaves the group, its membership and its events as stored', async () => {
    const { store, rgs, heard, storedEvents, allReady } = await harness();
    await rgs.apply(spec);
    const memberships = watch(rgs, 'web');
    await vi.waitFor(() => expect(rgs.get('web').replicas.filter((r) => r.gangId)).toHaveLength(1), { timeout: 5_000 });
    allReady();
    await vi.waitFor(() => expect(memberships.at(-1)?.replicas).toHaveLength(1), { timeout: 5_000 });
    const before = structuredClone(rgs.get('web'));
    const [eventsBefore, heardBefore, announced] = [await storedEvents(), [...heard], memberships.length];

    store.failWrites({ prefix: RGS_PREFIX });
    // Not even for a moment: what the call would change is looked at while it is in flight too.
    const seen: unknown[] = [];
    const probe = () => seen.push(rgs.get('web'));
    await expect(during(rgs.scale('web', 3), probe)).rejects.toThrow(/injected store fault/);
    await expect(during(rgs.apply({ ...spec, replicas: { min: 2, max: 5, initial: 2 } } as ReplicaGroupSpec), probe)).rejects.toThrow(/injected store fault/);
    await expect(during(rgs.delete('web'), probe)).rejects.toThrow(/injected store fault/);
    expect(seen.length).toBeGreaterThan(3);
    for (const rg of seen) expect(rg).toEqual(before);
    expect(store.failed).toBeGreaterThanOrEqual(3);
    expect(rgs.get('web')).toEqual(before);
    expect(rgs.list()).toEqual([before]);
    expect(await storedEvents()).toEqual(eventsBefore);
    expect(heard).toEqual(heardBefore);
    expect(memberships).toHaveLength(announced);

    store.heal();
    await rgs.scale('web', 3);
    expect(rgs.get('web').desired).toBe(3);
    expect(await storedEvents()).toContain('rg.scaled');
    await rgs.delete('web');
    expect(rgs.get('web').deleting).toBe(true);
  });

  it('reconcile: a replica turning READY is not announced until its record is stored; the version never goes back', async () => {
    const { store, rgs, allReady } = await harness();
    await rgs.apply(spec);
    const memberships = watch(rgs, 'web');
    await vi.waitFor(() => expect(rgs.get('web').replicas.filter((r) => r.gangId)).toHaveLength(1), { timeout: 5_000 });
    const version = rgs.get('web').membershipVersion;

    store.failWrites({ prefix: RGS_PREFIX });
    const failedBefore = store.failed;
    const seen: number[] = [];
    allReady();
    // The reconcile this kicks tried to store the replica READY (the proof the window was observed).
    await vi.waitFor(() => {
      seen.push(rgs.get('web').membershipVersion);
      expect(store.failed).toBeGreaterThan(failedBefore);
    }, { timeout: 5_000, interval: 1 });
    expect(new Set(seen)).toEqual(new Set([version]));
    expect(rgs.get('web').replicas[0]!.state).toBe('starting');
    expect(rgs.get('web').membershipVersion).toBe(version);
    expect(memberships.every((m) => m.replicas.length === 0)).toBe(true);

    store.heal();
    await vi.waitFor(() => expect(rgs.get('web').replicas[0]!.state).toBe('ready'), { timeout: 5_000 });
    await vi.waitFor(() => expect(memberships.at(-1)?.replicas).toHaveLength(1), { timeout: 5_000 });
    const stored = rgs.get('web').membershipVersion;
    expect(stored).toBe(version + 1);
    expect(memberships.at(-1)!.version).toBe(stored);
    expect(memberships.map((m) => m.version)).toEqual([...memberships.map((m) => m.version)].sort((a, b) => a - b));
  });

  it('a deleted group whose reconcile writes fail stays listed; healed, it drains, frees and goes', async () => {
    const { store, rgs, storedEvents, allReady } = await harness();
    await rgs.apply(spec);
    await vi.waitFor(() => expect(rgs.get('web').replicas.filter((r) => r.gangId)).toHaveLength(1), { timeout: 5_000 });
    allReady();
    await vi.waitFor(() => expect(rgs.get('web').replicas[0]!.state).toBe('ready'), { timeout: 5_000 });

    await rgs.delete('web');
    store.failWrites({ prefix: RGS_PREFIX });
    const failedBefore = store.failed;
    await vi.waitFor(() => expect(store.failed).toBeGreaterThan(failedBefore + 1), { timeout: 5_000 });
    expect(rgs.get('web')).toMatchObject({ deleting: true, replicas: [{ state: 'ready' }] });
    expect(await storedEvents()).not.toContain('rg.deleted');

    store.heal();
    await vi.waitFor(() => expect(() => rgs.get('web')).toThrow(/no replica group/), { timeout: 5_000 });
    expect(await storedEvents()).toContain('rg.deleted');
  });
});

describe('replica group controller: autoscaling turns', () => {
  const autoscaled = (initial: number): ReplicaGroupSpec => ({
    ...spec,
    replicas: { min: 0, max: 5, initial },
    autoscaling: { metric: 'queue', target: 5, upscaleDelayMs: 0, downscaleDelayMs: 0, maxStep: 0, tolerance: 0, scaleToZeroAfterMs: 0, lookbackMs: 0, floors: [] },
  }) as unknown as ReplicaGroupSpec;

  it('queues at most one autoscaling decision behind a group whose turn is held', async () => {
    // Only the controller's timers are driven by hand; the store's I/O runs as usual.
    vi.useFakeTimers({ toFake: ['setInterval'] });
    try {
      const { rgs, store } = await harness();
      await rgs.apply(autoscaled(0));
      const decisions = vi.spyOn(rgs as unknown as { autoscale: (name: string) => Promise<void> }, 'autoscale');
      let open!: () => void;
      const gate = new Promise<void>((resolve) => (open = resolve));
      const txn = store.txn.bind(store);
      vi.spyOn(store, 'txn').mockImplementation(async (req) => {
        await gate;
        return txn(req);
      });
      // The group's turn is held: this apply's write waits at the store.
      const busy = rgs.apply(autoscaled(1));
      vi.advanceTimersByTime(2_500); // ten autoscaling ticks
      open();
      await busy;
      // A turn queued after every tick's: once it has run, so has whatever the ticks queued.
      await rgs.apply(autoscaled(1));
      expect(decisions).toHaveBeenCalledTimes(1);
    } finally {
      vi.useRealTimers();
    }
  });
});

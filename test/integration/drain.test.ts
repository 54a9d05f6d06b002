/**
 * Draining nodes end to end: 3 simulated 8×H100 workers, a replica group of
 * 2 replicas that each fill a node (TP=2 × 4 GPUs), a directly launched gang,
 * the CLI, a head restart, and a worker that follows a (fake) Kubernetes
 * Node's cordon. The tests run in order and share the cluster: each one
 * starts from the state the previous one left, said at its top.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import type { Cluster, ClusterEventView, ReplicaGroup, ReplicaGroupSpec } from '@muster/sdk';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const replica = fileURLToPath(new URL('../fixtures/replica.mjs', import.meta.url));
const shard = fileURLToPath(new URL('../fixtures/shard.mjs', import.meta.url));
const cli = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));

/** Calls the group with `concurrency` in flight until stopped; collects answers and errors. */
function callsUntilStopped(g: ReplicaGroup, concurrency: number) {
  const answers: Array<{ replicaId: string }> = [];
  const errors: unknown[] = [];
  let stopped = false;
  const running = Promise.all(Array.from({ length: concurrency }, async () => {
    while (!stopped) {
      try {
        answers.push((await g.call({ x: 1 }, { timeoutMs: 10_000 })) as { replicaId: string });
      } catch (e) {
        errors.push(e);
      }
    }
  }));
  return { answers, errors, stop: async () => { stopped = true; await running; } };
}

describe('draining a node', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  let env: Record<string, string>;
  const spec: ReplicaGroupSpec = {
    name: 'echo',
    tp: 2,
    resources: { gpus: 4 }, // 8 GPUs per replica: each fills one node
    template: { command: process.execPath, args: [replica], readiness: { kind: 'sdk' }, env: { SERVICE_MS: '2' } },
    replicas: { min: 0, max: 4, initial: 2 },
    startup: { gracePeriodMs: 2_000, backoffInitialMs: 200 },
    drainDeadlineMs: 10_000,
  };
  /** Node of each of the group's replicas, by replica id. */
  const nodesOf = async (g: ReplicaGroup) => {
    const out = new Map<string, string>();
    for (const r of (await g.refresh()).replicas) if (r.placementGroupId) out.set(r.id, (await sdk.placementGroups.get(r.placementGroupId)).placements[0]?.nodeId ?? '');
    return out;
  };
  const onNode = async (nodeId: string) => (await sdk.placementGroups.list()).filter((pg) => pg.placements.some((p) => p.nodeId === nodeId)).map((pg) => pg.name);
  const events = async (after: number): Promise<ClusterEventView[]> => {
    const out: ClusterEventView[] = [];
    // Every retained event, up to the head's end-of-replay marker.
    for await (const e of sdk.events({ replay: true, untilReplayed: true })) if (e.time.getTime() >= after) out.push(e);
    return out;
  };
  let a = ''; // the node drained first
  let b = ''; // the other replica's node
  let c = ''; // the free node
  const evac = { old: '', oldGang: '' };

  useCluster({ workers: 3 }, (fx) => {
    ({ cluster, sdk } = fx);
    env = cluster.clientEnv();
  });
  // The head-restart test below connects a new client; the fixture closes the one it made.
  afterAll(() => sdk?.close());

  it('no room elsewhere: the replica on the draining node keeps serving, and the group says it waits for capacity', async () => {
    const g = await sdk.replicaGroups.apply(spec);
    await waitFor('2 ready replicas', async () => (await g.refresh()).replicas.filter((r) => r.state === 'ready').length === 2 || undefined, { timeoutMs: 20_000 });
    const where = await nodesOf(g);
    const [first, second] = [...where];
    [evac.old, a] = first!;
    b = second![1];
    c = (await sdk.nodes()).map((n) => n.id).find((n) => n !== a && n !== b)!;
    evac.oldGang = g.replicas.find((r) => r.id === evac.old)!.gangId;
    const filler = await sdk.placementGroups.create({ name: 'filler', bundles: [{ gpus: 8 }] });
    await filler.ready({ timeout: 5_000 });
    expect(filler.placements[0]!.nodeId).toBe(c);

    const n = await sdk.drainNode(a, { reason: 'test' });
    expect(n).toMatchObject({ id: a, state: 'alive', draining: true, drainReason: 'test', drainedBy: 'operator' });
    const waiting = await waitFor('the group to say it waits for capacity', async () => {
      const v = (await g.refresh()).toJSON();
      return /moving r-\w+ off draining node \S+: replacement r-\w+ waiting for capacity: .*node draining/.test(v.message) ? v : undefined;
    }, { timeoutMs: 10_000 });
    expect(waiting.message).toContain(`moving ${evac.old} off draining node ${a}`);
    expect(waiting.desired).toBe(2);
    const old = waiting.replicas.find((r) => r.id === evac.old)!;
    expect(old.state).toBe('ready');
    expect(waiting.replicas.find((r) => r.replaces === evac.old)?.state).toBe('starting');
    const status = await sdk.drainStatus(a);
    expect(status.drained).toBe(false);
    expect(status.remaining).toEqual([expect.objectContaining({ owner: `replica group echo, replica ${evac.old}`, waitingOn: expect.stringMatching(/waiting for capacity/) })]);
    // Both old replicas still answer.
    const calls = callsUntilStopped(g, 4);
    await waitFor('answers from both replicas', () => new Set(calls.answers.map((x) => x.replicaId)).size === 2 || undefined, { timeoutMs: 10_000 });
    await calls.stop();
    expect(calls.errors).toEqual([]);
  });

  it('moves the replica make-before-break once there is room: the replacement is READY before the old one stops, zero failed calls', async () => {
    const g = await sdk.replicaGroups.get('echo');
    const t0 = Date.now();
    const calls = callsUntilStopped(g, 8);
    const readyCounts: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        readyCounts.push((await g.refresh()).replicas.filter((r) => r.state === 'ready').length);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await sdk.placementGroups.remove('filler');
    const status = await waitFor(`${a} drained`, async () => {
      const s = await sdk.drainStatus(a);
      return s.drained ? s : undefined;
    }, { timeoutMs: 20_000, intervalMs: 100 });
    sampling = false;
    await sampler;
    await calls.stop();
    expect(status.remaining).toEqual([]);
    expect(calls.errors).toEqual([]);
    expect(calls.answers.length).toBeGreaterThan(50);
    expect(Math.min(...readyCounts)).toBeGreaterThanOrEqual(2); // never fewer than desired serving
    expect(await onNode(a)).toEqual([]);

    const v = (await g.refresh()).toJSON();
    expect(v.desired).toBe(2);
    expect(v.replicas.map((r) => r.state)).toEqual(['ready', 'ready']);
    const replacement = v.replicas.find((r) => r.replaces === evac.old)!;
    expect((await nodesOf(g)).get(replacement.id)).toBe(c);
    const log = await events(t0);
    const readyAt = log.find((e) => e.kind === 'gang.ready' && e.attributes.gang === replacement.gangId);
    const stopAt = log.find((e) => e.kind === 'gang.stopping' && e.attributes.gang === evac.oldGang);
    expect(readyAt && stopAt && readyAt.id < stopAt.id).toBe(true);
    // Announced by the head's drain check (every 500 ms), so maybe a moment after the status says so.
    await waitFor('the node.drained event', async () => (await events(t0)).some((e) => e.kind === 'node.drained' && e.nodeId === a) || undefined, { timeoutMs: 3_000 });
  });

  it('CLI: `muster status` shows the drain, `muster node uncordon` takes placements again, `muster node drain --wait` follows a drain to the end', async () => {
    const status = await execa(process.execPath, [cli, 'status'], { env });
    expect(status.stdout).toMatch(/3 node\(s\): 3 alive, 0 dead, 1 draining;/);
    expect(status.stdout).toMatch(new RegExp(`^${a}\\s+alive, draining \\(test\\)\\s`, 'm'));

    const un = await execa(process.execPath, [cli, 'node', 'uncordon', a], { env });
    expect(un.stdout).toBe(`node ${a} uncordoned: it takes new placements again`);
    const probe = await sdk.placementGroups.create({ name: 'probe', bundles: [{ gpus: 8 }] });
    await probe.ready({ timeout: 5_000 });
    expect(probe.placements[0]!.nodeId).toBe(a); // the only node with room
    await probe.remove();

    const drain = await execa(process.execPath, [cli, 'node', 'drain', b, '--reason', 'maintenance', '--wait', '30'], { env, reject: false });
    expect(drain.exitCode, drain.stderr).toBe(0);
    expect(drain.stderr).toContain(`node ${b} draining (maintenance): no new placements`);
    expect(drain.stderr).toMatch(new RegExp(`waiting… 1 left on ${b}:\\n  placement group echo-r-\\w+ \\(replica group echo, replica r-\\w+\\): `));
    expect(drain.stdout).toBe(`${b} drained: nothing placed or running there`);
    expect(await onNode(b)).toEqual([]);
  });

  it('a gang launched on its own stays while it fits nowhere else, then moves and is READY elsewhere (not counted as a restart)', async () => {
    // Now: a and c hold a replica each (full), b is drained. Give b back for the gang.
    await sdk.uncordonNode(b);
    const pg = await sdk.placementGroups.create({ name: 'train-pg', bundles: [{ gpus: 4 }] });
    await pg.ready({ timeout: 5_000 });
    expect(pg.placements[0]!.nodeId).toBe(b);
    const gang = await sdk.gangs.launch({
      name: 'train',
      placementGroup: 'train-pg',
      tp: 4,
      pp: 1,
      template: { command: process.execPath, args: [shard], ports: [{ name: 'http' }], readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 50 } },
      startup: { gracePeriodMs: 500, backoffInitialMs: 200 },
    });
    await gang.ready({ timeout: 15_000 });
    // What the move must add to: the launch itself may have needed a restart on a busy machine.
    const before = (await sdk.gangs.get('train')).toJSON();

    await sdk.drainNode(b, { reason: 'gang test' });
    const stuck = await waitFor('the gang to be reported as waiting for room', async () => {
      const s = await sdk.drainStatus(b);
      return s.remaining[0]?.waitingOn.includes('no room elsewhere') ? s : undefined;
    }, { timeoutMs: 5_000 });
    expect(stuck.remaining).toEqual([expect.objectContaining({ placementGroup: 'train-pg', owner: 'gang train', waitingOn: expect.stringMatching(/^no room elsewhere: bundle 0 needs 4 GPUs; .*1 node draining.*; the gang keeps running here until its group fits elsewhere$/) })]);
    expect((await sdk.gangs.get('train')).state).toBe('ready');

    // Room appears: one replica fewer.
    await (await sdk.replicaGroups.get('echo')).scale(1);
    await waitFor(`${b} drained`, async () => (await sdk.drainStatus(b)).drained || undefined, { timeoutMs: 20_000, intervalMs: 100 });
    const after = await sdk.gangs.get('train');
    await after.ready({ timeout: 15_000 });
    const v = (await sdk.gangs.get('train')).toJSON();
    expect(v.state).toBe('ready');
    // One move, one more attempt, not counted as a restart; on a failure, say why there were others.
    const story = JSON.stringify({ before: [before.attempt, before.restarts], restarts: v.restarts, message: v.message, first: v.firstFailure, last: v.lastFailure });
    expect(v.attempt, story).toBe(before.attempt + 1);
    expect(v.restarts, story).toBe(before.restarts);
    expect(v.ranks.every((r) => r.nodeId !== b)).toBe(true);
    const moved = await sdk.placementGroups.get('train-pg');
    expect(moved.state).toBe('created');
    expect(moved.toJSON().reschedules).toBe(1);
  });

  it('the drain survives a head restart and the agent\'s re-registration, and `pg why` counts the draining node', async () => {
    // Now: b is draining and empty; the gang and one replica run on a and c.
    // This drain's announcements (b was drained once before, for maintenance, and that drain was announced too).
    const drainedEvents = async () => (await events(0)).filter((e) => e.kind === 'node.drained' && e.nodeId === b && e.attributes.reason === 'gang test');
    await waitFor(`${b}'s node.drained event`, async () => ((await drainedEvents()).length > 0) || undefined, { timeoutMs: 5_000 });
    await cluster.restartHead();
    sdk.close();
    sdk = await cluster.connect();
    const restartedAt = Date.now();
    expect(await sdk.node(b)).toMatchObject({ draining: true, drainReason: 'gang test', drainedBy: 'operator' });
    await waitFor(`${b} to re-register`, async () => (await sdk.node(b)).lastHeartbeatAt.getTime() > restartedAt || undefined, { timeoutMs: 5_000 });
    expect(await sdk.node(b)).toMatchObject({ state: 'alive', draining: true, drainReason: 'gang test' });
    expect((await sdk.drainStatus(b)).drained).toBe(true);
    // Announced once per drain: the new leader term reads the retained events and does not say it again.
    // (An absence, so a window: three rounds of the head's 500 ms drain check.)
    await new Promise((r) => setTimeout(r, 1_500));
    const drained = await drainedEvents();
    expect(drained, JSON.stringify(drained)).toHaveLength(1);

    const big = await sdk.placementGroups.create({ name: 'big', bundles: [{ gpus: 8 }] });
    const why = await waitFor('a scheduler reason', async () => ((await sdk.placementGroups.get('big')).reason?.rejections.length ? true : undefined), { timeoutMs: 5_000 });
    expect(why).toBe(true);
    const out = await execa(process.execPath, [cli, 'pg', 'why', 'big'], { env: { ...env, MUSTER_ADDRESS: cluster.address } });
    expect(out.stdout).toMatch(/^\s+1\s+node-draining$/m);
    expect(out.stdout).toMatch(/1 node draining/);
    await big.remove();
  });

  it('a worker following its Kubernetes Node drains on cordon and undrains on uncordon, but never undoes an operator\'s drain', async () => {
    const unschedulable = { value: false };
    const server: Server = createServer((req, res) => {
      if (req.headers.authorization !== 'Bearer sa-token') return void res.writeHead(401).end();
      if (req.url !== '/api/v1/nodes/k8s-node') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Node', spec: unschedulable.value ? { unschedulable: true } : {} }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const saDir = join(cluster.dataDir, 'sa');
    mkdirSync(saDir, { recursive: true });
    writeFileSync(join(saDir, 'token'), 'sa-token\n');
    try {
      const api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const worker = await cluster.addWorker({ nodeId: 'k8s-node', args: ['--watch-node-cordon', 'true', '--kube-api', api, '--service-account-dir', saDir, '--node-poll-ms', '100'] });
      const node = () => sdk.node('k8s-node');
      expect((await node()).draining).toBe(false);
      unschedulable.value = true; // kubectl cordon k8s-node
      await waitFor('the agent\'s drain', async () => (await node()).draining || undefined, { timeoutMs: 5_000 });
      expect(await node()).toMatchObject({ drainReason: 'Kubernetes node k8s-node cordoned', drainedBy: 'agent' });
      unschedulable.value = false; // kubectl uncordon k8s-node
      await waitFor('the agent\'s undrain', async () => !(await node()).draining || undefined, { timeoutMs: 5_000 });

      await sdk.drainNode('k8s-node', { reason: 'operator' });
      const refused = cluster.head.process.waitForLine((l) => l.includes('an operator drained; left draining'), 5_000);
      unschedulable.value = true;
      await worker.process.waitForLine((l) => l.includes('asking the head to drain this node'), 5_000);
      unschedulable.value = false;
      await refused; // the agent's undrain reached the head, which kept the operator's drain
      expect(await node()).toMatchObject({ draining: true, drainReason: 'operator', drainedBy: 'operator' });
      expect((await sdk.uncordonNode('k8s-node')).draining).toBe(false);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

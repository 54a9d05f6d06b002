/**
 * Chaos: one cluster (etcd store, 4 simulated 8×H100 workers) running two
 * gangs of test shards, a spare placement group and a replica group, and one
 * fault after another — a worker SIGKILLed and restarted, a worker frozen
 * past its dead-after, a rank SIGKILLed, etcd and NATS restarted, the head
 * SIGKILLed and restarted. After every fault the cluster must settle and the
 * invariants hold (packages/testing/src/invariants.ts: no GPU booked twice,
 * no half gang, no orphan process, no acknowledged group lost), and the
 * workload must be whole again.
 *
 * The tests run in order on the same cluster: each starts from what the
 * previous one left, which is the point.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster, Gang, ReplicaGroup } from '@muster/sdk';
import {
  assertInvariants,
  checkInvariants,
  clusterShards,
  createTestCluster,
  freeze,
  kill,
  killShard,
  spawnManaged,
  thaw,
  waitFor,
  type InvariantOptions,
  type LocalCluster,
} from '@muster/testing';

const shard = fileURLToPath(new URL('../fixtures/shard.mjs', import.meta.url));
const replica = fileURLToPath(new URL('../fixtures/replica.mjs', import.meta.url));

/** MUSTER_CHAOS_LOGS=<dir>: every child's output goes to <dir>/<name>.log, to read after a failure. */
const logDir = process.env.MUSTER_CHAOS_LOGS;
if (logDir) mkdirSync(logDir, { recursive: true });
const onLine = logDir ? (name: string, line: string) => appendFileSync(join(logDir, `${name}.log`), `${line}\n`) : undefined;

describe('the chaos kit', () => {
  it('refuses several heads on the embedded store before starting anything', async () => {
    await expect(createTestCluster({ heads: 2 })).rejects.toThrow(/heads: 2 needs store: 'etcd'/);
  });
});

describe('chaos on one head (etcd store)', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  let echo: ReplicaGroup;
  /** Placement groups whose create() returned: the head must never lose one. */
  const acknowledged: string[] = [];
  const acknowledgedGangs: string[] = [];
  const invariants = (o: InvariantOptions = {}) => assertInvariants(cluster, { acknowledged, acknowledgedGangs, timeoutMs: 25_000, ...o });

  /** A TP×PP gang of test shards on a new placement group (one bundle of `tp` GPUs per stage). */
  async function gang(name: string, tp: number, pp: number): Promise<Gang> {
    const pg = await sdk.placementGroups.create({ name: `${name}-pg`, strategy: pp > 1 ? 'STRICT_SPREAD' : 'STRICT_PACK', bundles: Array.from({ length: pp }, () => ({ gpus: tp })), topology: [{ level: 'gpu-island' }] });
    acknowledged.push(pg.id);
    await pg.ready({ timeout: 10_000 });
    const g = await sdk.gangs.launch({
      name,
      placementGroup: pg.name,
      tp,
      pp,
      template: { command: process.execPath, args: [shard], ports: [{ name: 'http' }], readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 50 } },
      startup: { gracePeriodMs: 500, backoffInitialMs: 200, maxRestarts: 10 },
    });
    acknowledgedGangs.push(g.id);
    return g;
  }

  /** Every directly launched gang READY, and the replica group's replicas too. */
  async function workloadWhole(timeoutMs = 30_000): Promise<void> {
    for (const name of ['train', 'small']) await (await sdk.gangs.get(name)).ready({ timeout: timeoutMs });
    await waitFor('2 ready echo replicas', async () => {
      const r = (await echo.refresh()).toJSON().replicas;
      return (r.length === 2 && r.every((x) => x.state === 'ready')) || undefined;
    }, { timeoutMs, intervalMs: 100 });
  }

  /** A call through the data plane (NATS) gets an answer, retried while the plane recovers. */
  const answers = (timeoutMs = 15_000) =>
    waitFor('an echo answer', async () => (await echo.call({ hi: 1 }, { timeoutMs: 2_000, idempotent: true }).catch(() => undefined)) as object | undefined, { timeoutMs, intervalMs: 100 });

  beforeAll(async () => {
    cluster = await createTestCluster({ store: 'etcd', workers: 4, onLine });
    sdk = await cluster.connect();
    const train = await gang('train', 2, 2); // 4 ranks on 2 nodes
    const small = await gang('small', 2, 1);
    const spare = await sdk.placementGroups.create({ name: 'spare', bundles: [{ gpus: 4 }] });
    acknowledged.push(spare.id);
    echo = await sdk.replicaGroups.apply({
      name: 'echo',
      tp: 1,
      resources: { gpus: 1 },
      template: { command: process.execPath, args: [replica], readiness: { kind: 'sdk' } },
      replicas: { min: 0, max: 2, initial: 2 },
      startup: { gracePeriodMs: 1_000, backoffInitialMs: 200 },
    });
    await Promise.all([train.ready({ timeout: 30_000 }), small.ready({ timeout: 30_000 }), spare.ready({ timeout: 10_000 })]);
    await workloadWhole();
  });
  afterAll(async () => {
    sdk?.close();
    await cluster?.stop();
  });

  it('holds the invariants before any fault, and the checker sees every shard', async () => {
    await invariants();
    const shards = await clusterShards(cluster);
    expect(shards).toHaveLength(4 + 2 + 2);
    await answers();
  });

  it('a worker SIGKILLed and restarted: its shards are adopted or the gang restarts, never doubled', async () => {
    const node = (await sdk.gangs.get('train')).ranks[0]!.nodeId;
    await kill(cluster.workers.get(node)!.process);
    await cluster.restartWorker(node);
    await invariants();
    await workloadWhole();
  });

  it('a rank SIGKILLed: the whole gang restarts as one', async () => {
    const small = await sdk.gangs.get('small');
    const before = small.toJSON().attempt;
    const victim = await killShard(cluster, { gangId: small.id, rank: 1 });
    expect(victim.attempt).toBe(before);
    await waitFor('small to restart', async () => (await small.refresh()).toJSON().attempt > before || undefined, { timeoutMs: 10_000 });
    await invariants();
    await workloadWhole();
  });

  it('etcd SIGKILLed and restarted on its data: nothing lost, and the head takes new work again', async () => {
    await cluster.etcd!.restart({ signal: 'SIGKILL' });
    await invariants();
    await workloadWhole();
    const pg = await waitFor('a create after the restart', () => sdk.placementGroups.create({ name: 'after-etcd', bundles: [{ gpus: 1 }] }).catch(() => undefined), { timeoutMs: 15_000, intervalMs: 200 });
    acknowledged.push(pg.id);
    await pg.ready({ timeout: 10_000 });
    await invariants();
  });

  it('NATS restarted: the data plane comes back by itself', async () => {
    await cluster.nats!.restart({ signal: 'SIGKILL' });
    await answers(20_000);
    await invariants();
  });

  it('the head SIGKILLed and restarted: every group and gang still there, shards untouched', async () => {
    const pids = (await clusterShards(cluster)).map((s) => s.pid).sort();
    await cluster.restartHead(0, 'SIGKILL');
    await invariants();
    await workloadWhole();
    expect((await clusterShards(cluster)).map((s) => s.pid).sort()).toEqual(pids);
    await answers();
  });

  it('the checker can fail: a stray shard, an extra rank and a lost group are all reported', async () => {
    const train = (await sdk.gangs.get('train')).toJSON();
    const idle = ['-e', 'setInterval(() => {}, 1000)'];
    const stray = spawnManaged('stray', process.execPath, idle, { tag: cluster.runTag, env: { MUSTER_GANG_ID: 'gang-nope', MUSTER_ATTEMPT: '1', RANK: '0' } });
    const extra = spawnManaged('extra', process.execPath, idle, { tag: cluster.runTag, env: { MUSTER_GANG_ID: train.id, MUSTER_ATTEMPT: String(train.attempt), RANK: '0' } });
    try {
      await waitFor('the fakes to run', async () => (await clusterShards(cluster)).filter((s) => s.pid === stray.pid || s.pid === extra.pid).length === 2 || undefined);
      const v = await checkInvariants(cluster, { acknowledged: [...acknowledged, 'pg-never-made'], timeoutMs: 1_000 });
      expect(v).toEqual(expect.arrayContaining([
        { rule: 'no-orphan', message: expect.stringMatching(new RegExp(`pid ${stray.pid} \\(gang gang-nope.*does not know the gang`)) },
        { rule: 'no-half-gang', message: expect.stringMatching(new RegExp(`gang train .*extra process pid ${extra.pid}`)) },
        { rule: 'no-lost-group', message: expect.stringMatching(/placement group pg-never-made was acknowledged/) },
      ]));
      expect(v).toHaveLength(3);
    } finally {
      await Promise.all([stray.stop(), extra.stop()]);
    }
    await invariants();
  });

  it('etcd frozen for 3 s: the head waits it out, nothing lost', async () => {
    await freeze(cluster.etcd!.process, 3_000);
    await invariants();
    await workloadWhole();
  });

  it('the head frozen past dead-after: once thawed it does not declare the nodes it could not hear dead', async () => {
    const since = new Date();
    await freeze(cluster.head.process, 2_500);
    await invariants();
    await workloadWhole();
    const dead = [];
    // Every retained node.dead event, up to the head's end-of-replay marker.
    for await (const e of sdk.events({ replay: true, kinds: ['node.dead'], untilReplayed: true })) if (e.time >= since) dead.push(e.nodeId);
    expect(dead).toEqual([]);
  });

  // Found by this suite: the thawed node's agent reported the ranks of the
  // RESTARTING attempt as ready again, and nobody stopped them, so the restart
  // waited forever. Last, because it is the harshest fault.
  it('a worker frozen past dead-after, then thawed: declared dead, its gang re-placed, its stale ranks stopped', async () => {
    const train = await sdk.gangs.get('train');
    const before = train.toJSON().attempt;
    const node = train.ranks[train.ranks.length - 1]!.nodeId;
    const w = cluster.workers.get(node)!;
    await freeze(w.process);
    try {
      await waitFor(`${node} declared dead`, async () => (await sdk.node(node)).state === 'dead' || undefined, { timeoutMs: 5_000 });
    } finally {
      thaw(w.process);
    }
    await invariants({ timeoutMs: 15_000 });
    await workloadWhole(5_000);
    expect((await train.refresh()).toJSON().attempt).toBeGreaterThan(before);
  });
});

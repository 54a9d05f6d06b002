/**
 * Head failover, on DEFAULT settings (1 s heartbeats, dead after 3 s, 2 s
 * leader lease): three heads on one etcd, four simulated 8×H100 workers, a
 * TP×PP gang and a replica group under steady load from the SDK. The leader
 * is SIGKILLed, then another leader is frozen (SIGSTOP) for 10 s and thawed,
 * then etcd is down for longer than the lease.
 *
 * What must hold (the HA issue's acceptance):
 *  - a new leader soon after the kill: the 3 s target is measured by
 *    bench/failover.ts (median of 10, docs/benchmarks.md); here the bound is
 *    5 s, so a busy CI machine shows a broken failover, not a slow one;
 *  - zero shards restarted (same pids, same gang attempt, same replicas);
 *  - zero failed data-plane calls, before, during and after;
 *  - the thawed leader's writes are refused by the fence (its log shows it),
 *    and it stands by;
 *  - etcd down past the lease: every head stands by and refuses with the
 *    reason, the data plane keeps serving, and a leader is back by itself
 *    once etcd is;
 *  - after every fault, the invariants (packages/testing/src/invariants.ts).
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Cluster, type Gang, type ReplicaGroup } from '@muster/sdk';
import { LocalCluster, assertInvariants, clusterShards, freeze, kill, thaw, waitFor, type HeadHandle } from '@muster/testing';

const shard = fileURLToPath(new URL('../fixtures/shard.mjs', import.meta.url));
const replica = fileURLToPath(new URL('../fixtures/replica.mjs', import.meta.url));
const logDir = process.env.MUSTER_CHAOS_LOGS;
if (logDir) mkdirSync(logDir, { recursive: true });
const onLine = logDir ? (name: string, line: string) => appendFileSync(join(logDir, `failover-${name}.log`), `${line}\n`) : undefined;

/** Callers that keep calling the group until stopped; every outcome is counted. */
function load(group: ReplicaGroup, callers: number) {
  const counts = { ok: 0, failed: 0, errors: [] as string[] };
  let running = true;
  const loops = Array.from({ length: callers }, async (_, c) => {
    for (let i = 0; running; i++) {
      try {
        await group.call({ c, i }, { timeoutMs: 10_000 });
        counts.ok++;
      } catch (e) {
        counts.failed++;
        if (counts.errors.length < 5) counts.errors.push((e as Error).message);
        await new Promise((r) => setImmediate(r)); // a call that fails at once must not starve the event loop
      }
    }
  });
  return {
    counts,
    async stop() {
      running = false;
      await Promise.all(loops);
      return counts;
    },
  };
}

describe('head failover on default settings (3 heads, 4 workers, a replica group under load)', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  let train: Gang;
  let chat: ReplicaGroup;
  const acknowledged: string[] = [];

  /** What must not change across a failover: shard pids, the gang's attempt, the replicas. */
  async function workload() {
    const shards = (await clusterShards(cluster)).map((s) => s.pid).sort();
    const g = await train.refresh();
    const rg = await chat.refresh();
    return { shards, attempt: g.toJSON().attempt, state: g.state, replicas: rg.replicas.map((r) => `${r.id}:${r.state}`).sort() };
  }

  beforeAll(async () => {
    cluster = await LocalCluster.start({ store: 'etcd', heads: 3, workers: 4, profile: 'hgx-h100-8', onLine });
    sdk = await cluster.connect();
    await cluster.waitForAlive(4);
    const pg = await sdk.placementGroups.create({ name: 'train-pg', strategy: 'STRICT_SPREAD', bundles: [{ gpus: 2 }, { gpus: 2 }] });
    acknowledged.push(pg.id);
    await pg.ready({ timeout: 15_000 });
    train = await sdk.gangs.launch({
      name: 'train', placementGroup: 'train-pg', tp: 2, pp: 2,
      template: { command: process.execPath, args: [shard], ports: [{ name: 'http' }], readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 100 } },
    });
    chat = await sdk.replicaGroups.apply({
      name: 'chat', tp: 1, resources: { gpus: 1 },
      template: { command: process.execPath, args: [replica], readiness: { kind: 'sdk' }, env: { SERVICE_MS: '2' } },
      replicas: { min: 2, max: 2, initial: 2 },
    });
    await train.ready({ timeout: 30_000 });
    await waitFor('2 ready chat replicas', async () => {
      const r = (await chat.refresh()).replicas;
      return (r.length === 2 && r.every((x) => x.state === 'ready')) || undefined;
    }, { timeoutMs: 30_000, intervalMs: 200 });
    await assertInvariants(cluster, { acknowledged });
  });
  afterAll(async () => {
    sdk?.close();
    await cluster?.stop();
  });

  it('the leader SIGKILLed: a new leader within seconds, zero shards restarted, zero failed calls', async () => {
    const before = await workload();
    const old = await cluster.waitForLeader();
    const traffic = load(chat, 4);
    let next: HeadHandle | undefined;
    let tookMs: number | undefined;
    try {
      await waitFor('calls flowing', () => traffic.counts.ok > 50 || undefined);
      const killedAt = Date.now();
      await kill(old.process);
      next = await cluster.waitForLeader({ not: old, timeoutMs: 10_000 });
      tookMs = Date.now() - killedAt;
      expect(tookMs).toBeLessThan(5_000);
      // Control calls find the new leader by themselves; the data plane never stopped.
      const pg = await sdk.placementGroups.create({ name: 'after-kill', bundles: [{ gpus: 1 }] });
      acknowledged.push(pg.id);
      await pg.ready({ timeout: 10_000 });
      const okAtNewLeader = traffic.counts.ok;
      await waitFor('calls flowing after the failover', () => traffic.counts.ok > okAtNewLeader + 50 || undefined);
    } finally {
      await traffic.stop();
    }
    const counts = traffic.counts;
    expect(counts.errors).toEqual([]);
    expect(counts.failed).toBe(0);
    await assertInvariants(cluster, { acknowledged });
    expect(await workload()).toEqual(before);
    expect(next!.index).not.toBe(old.index);
    console.log(`failover: new leader ${next!.name} ${tookMs} ms after the kill; ${counts.ok} calls, 0 failed`);
    await cluster.startHead(old.index); // back, as a standby
    await assertInvariants(cluster, { acknowledged });
  });

  it('the leader frozen for 10 s: a standby takes over; thawed, its writes are fenced and it stands by', async () => {
    const before = await workload();
    const old = await cluster.waitForLeader();
    const traffic = load(chat, 4);
    try {
      await waitFor('calls flowing', () => traffic.counts.ok > 50 || undefined);
      await freeze(old.process);
      const frozenAt = Date.now();
      try {
        await cluster.waitForLeader({ not: old, timeoutMs: 8_000 });
        await new Promise((r) => setTimeout(r, 10_000 - (Date.now() - frozenAt))); // the rest of the 10 s
      } finally {
        thaw(old.process);
      }
      // Thawed, the old leader may still write before it hears of the new one
      // (its liveness sweep finds every node silent for 10 s); and when its
      // term ends it always gives the leader key up through the fence. Each
      // such write carries the fence and is refused by etcd, which it logs.
      await waitFor('the old leader to stand by', () => old.process.output().includes('leadership lost') || undefined, { timeoutMs: 10_000 });
      await waitFor('its fenced write', () => /is no longer the leader \(leader key now held by head-\d\); write refused/.test(old.process.output()) || undefined, { timeoutMs: 10_000 });
    } finally {
      await traffic.stop();
    }
    const counts = traffic.counts;
    expect(counts.errors).toEqual([]);
    expect(counts.failed).toBe(0);
    // Nothing it tried went through: every node is alive, nothing moved.
    expect((await sdk.nodes({ state: 'dead' })).map((n) => n.id)).toEqual([]);
    await assertInvariants(cluster, { acknowledged });
    expect(await workload()).toEqual(before);
  });

  it('etcd down past the lease: every head stands by and says why, the data plane keeps serving, a leader is back by itself', async () => {
    const before = await workload();
    // Short control calls, to see the refusal itself rather than the SDK's 10 s of retries.
    const probe = await connect({ ...cluster.clientOptions(), callTimeoutMs: 1_000 });
    const traffic = load(chat, 4);
    try {
      await waitFor('calls flowing', () => traffic.counts.ok > 50 || undefined);
      await cluster.etcd!.kill('SIGKILL');
      const refusal = await waitFor('heads refusing for want of the store', () =>
        probe.nodes().then(() => undefined, (e: Error) => (/the state store is unreachable/.test(e.message) ? e.message : undefined)), { timeoutMs: 15_000, intervalMs: 250 });
      expect(refusal).toMatch(/no leader: the state store is unreachable \(etcd at https:\/\/127\.0\.0\.1:\d+ is unavailable/);
      await cluster.etcd!.start();
      const pg = await waitFor('a create accepted again', () => sdk.placementGroups.create({ name: 'after-etcd', bundles: [{ gpus: 1 }] }).catch(() => undefined), { timeoutMs: 20_000, intervalMs: 250 });
      acknowledged.push(pg.id);
      await pg.ready({ timeout: 10_000 });
    } finally {
      await traffic.stop();
      probe.close();
    }
    expect(traffic.counts.errors).toEqual([]);
    expect(traffic.counts.failed).toBe(0);
    await assertInvariants(cluster, { acknowledged });
    expect(await workload()).toEqual(before);
  });
});

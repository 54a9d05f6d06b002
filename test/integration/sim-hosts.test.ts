/**
 * Simulated agents as hosts (bench/agents/sim-agent.ts): each registers a
 * loopback address of its own, so each is a port space of its own at the
 * head, as a real host is; and with `runShards` they acknowledge launches and
 * stops, so gangs on them reach READY and STOPPED. Shown with a rank port
 * range of 4 ports: one host holds two one-rank gangs (an http port and
 * MASTER_PORT each), so 12 gangs (24 ports) fit only because the 6 hosts
 * each have their 4 — one address shared by every simulated agent, as
 * before, gave 4 ports to the whole cluster.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import type { Cluster } from '@muster/sdk';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';
import { AgentPool } from '../../bench/agents/pool.js';

const HOSTS = 6;
const GANGS = 12;

describe('simulated agents: a host each', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  let pool: AgentPool | undefined;

  // Simulated ranks bind nothing: the range is only what the head allocates.
  useCluster({ workers: 0, shardPortRange: '31000-31003' }, (fx) => ({ cluster, sdk } = fx));
  afterAll(async () => {
    await pool?.stop();
  });

  it('registers each agent with its own loopback address; gangs get ports per host and reach READY, then STOPPED', async () => {
    const token = readFileSync(cluster.tokenFile, 'utf8').trim();
    pool = await AgentPool.start({ head: cluster.address, token, tlsCa: cluster.tls?.ca, agents: HOSTS, channels: 1, profile: 'hgx-h100-8', runShards: true });
    const agents = pool;
    await waitFor(`${HOSTS} agents registered`, () => agents.stats().registered === HOSTS, { timeoutMs: 30_000 });
    const nodes = await sdk.nodes({ state: 'alive' });
    const addressOf = new Map(nodes.map((n) => [n.id, n.address]));
    expect(new Set(addressOf.values()).size).toBe(HOSTS);
    for (const a of addressOf.values()) expect(a).toMatch(/^127\.\d+\.\d+\.\d+$/);
    expect([...addressOf.values()]).not.toContain('127.0.0.1');

    // Half a node's GPUs each: at most two groups, so two gangs, a host.
    const pgs = await Promise.all(Array.from({ length: GANGS }, (_, i) => sdk.placementGroups.create({ name: `half-${i}`, bundles: [{ gpus: 4 }] })));
    await Promise.all(pgs.map((pg) => pg.ready({ timeout: 20_000 })));
    const gangs = await Promise.all(pgs.map((pg) => sdk.gangs.launch({ name: pg.name, placementGroup: pg.name, tp: 1, pp: 1, template: { command: '/bin/true', ports: [{ name: 'http' }] } })));
    await Promise.all(gangs.map((g) => g.ready({ timeout: 20_000 })));

    const views = await Promise.all(gangs.map(async (g) => (await sdk.gangs.get(g.id)).toJSON()));
    expect(views.map((v) => v.state)).toEqual(Array(GANGS).fill('ready'));
    const byHost = new Map<string, number[]>();
    for (const v of views) {
      const r = v.ranks[0]!;
      const host = addressOf.get(r.nodeId)!;
      expect(v.masterAddr).toBe(host); // the rendezvous is on rank 0's own host
      byHost.set(host, [...(byHost.get(host) ?? []), r.ports.http!, v.masterPort]);
    }
    for (const [host, ports] of byHost) {
      expect([host, new Set(ports).size]).toEqual([host, ports.length]); // no port twice on one host
      for (const p of ports) expect(p).toBeGreaterThanOrEqual(31_000);
    }
    // Every host's space starts at the range's lowest port: spaces are per host, not shared.
    expect([...byHost.values()].filter((ports) => ports.includes(31_000)).length).toBe(byHost.size);

    // A stop is acknowledged as the real agent does: the rank exits, the gang is STOPPED.
    await gangs[0]!.stop();
    await waitFor('the stopped gang is STOPPED', async () => (await sdk.gangs.get(gangs[0]!.id)).state === 'stopped', { timeoutMs: 10_000 });
  });
});

/**
 * A leader failover with many agents, at CI scale: two heads on a real etcd,
 * 300 simulated agents (bench/agents, following leader hints as the real
 * agent does) registered with the leader; the leader is SIGKILLed, the
 * standby wins the election, and every agent registers again — with the new
 * leader, the only head left — and the new leader lists all 300 alive.
 * The 10,000-agent numbers are bench/registration.ts --etcd --heads 2's
 * (docs/benchmarks.md, "Head failover").
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import type { Cluster } from '@muster/sdk';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';
import { AgentPool } from '../../bench/agents/pool.js';

const AGENTS = 300;

describe('leader failover with simulated agents (etcd)', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  let pool: AgentPool | undefined;

  useCluster({ workers: 0, store: 'etcd', heads: 2 }, (fx) => ({ cluster, sdk } = fx));
  afterAll(async () => {
    await pool?.stop();
  });

  it(`re-registers all ${AGENTS} agents with the new leader after the leader is killed`, async () => {
    const token = readFileSync(cluster.tokenFile, 'utf8').trim();
    // Both heads' addresses: an agent that dials the standby is sent to the leader by its hint.
    pool = await AgentPool.start({ head: cluster.address, token, tlsCa: cluster.tls?.ca, agents: AGENTS, channels: 2, profile: 'hgx-h100-8' });
    const agents = pool;
    await waitFor(`${AGENTS} agents registered`, () => agents.stats().registered === AGENTS, { timeoutMs: 60_000 });
    const old = await cluster.waitForLeader();
    expect(await sdk.nodes({ state: 'alive' })).toHaveLength(AGENTS);
    const before = new Map(agents.agents.map((a) => [a.nodeId, a.registrations]));

    await cluster.stopHead(old.index, 'SIGKILL');
    const next = await cluster.waitForLeader({ not: old, timeoutMs: 30_000 });
    expect(next.process.running).toBe(true);
    // Each agent's own count: it registered again since the kill, and is registered now (only `next` accepts).
    await waitFor('every agent registered again', () => agents.agents.every((a) => a.state === 'registered' && a.registrations > before.get(a.nodeId)!), { timeoutMs: 60_000 });
    expect(agents.stats().registered).toBe(AGENTS);

    // The new leader knows every node as alive (the SDK follows the leader; its list is paged).
    await waitFor('the new leader lists every node alive', async () => (await sdk.nodes({ state: 'alive' })).length === AGENTS, { timeoutMs: 15_000 });
    const nodes = await sdk.nodes();
    expect(nodes).toHaveLength(AGENTS);
    expect(new Set(nodes.map((n) => n.id))).toEqual(new Set(before.keys()));
  });
});

/**
 * The agent simulator (bench/agents) against a real head, at CI scale: 200
 * simulated agents register over two gRPC channels, a placement group lands
 * on one of them and is acknowledged by it, and a simulated death is
 * detected by the head's liveness sweep — while the other 199 stay alive.
 * The 10,000-agent numbers are bench/registration.ts's (docs/benchmarks.md).
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import type { Cluster } from '@muster/sdk';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';
import { AgentPool } from '../../bench/agents/pool.js';

describe('agent simulator', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  let pool: AgentPool | undefined;

  useCluster({ workers: 0 }, (fx) => ({ cluster, sdk } = fx));
  afterAll(async () => {
    await pool?.stop();
  });

  it('registers 200 simulated agents, places a group on one, and detects its death', async () => {
    const token = readFileSync(cluster.tokenFile, 'utf8').trim();
    pool = await AgentPool.start({ head: cluster.address, token, tlsCa: cluster.tls?.ca, agents: 200, channels: 2, profile: 'hgx-h100-8' });
    const agents = pool;
    await waitFor('200 agents registered', () => agents.stats().registered === 200, { timeoutMs: 30_000 });
    const alive = await sdk.nodes({ state: 'alive' });
    expect(alive).toHaveLength(200);
    expect(alive.every((n) => n.gpus.length === 8)).toBe(true);

    const pg = await sdk.placementGroups.create({ name: 'on-a-sim', bundles: [{ gpus: 8 }] });
    await pg.ready({ timeout: 10_000 });
    const nodeId = pg.placements[0]!.nodeId;
    const agent = agents.agents.find((a) => a.nodeId === nodeId)!;
    expect(agent.reservations.has(pg.id)).toBe(true);

    const seen: Array<{ kind: string; nodeId: string | undefined }> = [];
    const stop = new AbortController();
    let replayed = false;
    const watching = (async () => {
      for await (const e of sdk.events({ replay: true, signal: stop.signal, kinds: ['node.'] })) {
        seen.push({ kind: e.kind, nodeId: e.nodeId });
        if (e.kind === 'node.registered') replayed = true;
      }
    })();
    try {
      // The head subscribes before it replays: once a replayed event is here, no live one is missed.
      await waitFor('replayed registrations', () => replayed);
      agent.kill();
      await waitFor(`node.dead for ${nodeId}`, () => seen.some((e) => e.kind === 'node.dead' && e.nodeId === nodeId), { timeoutMs: 15_000 });
      expect((await sdk.node(nodeId)).state).toBe('dead');
      // The group lost its node and goes back to be placed again, on another simulated agent.
      await waitFor('group placed elsewhere', async () => {
        const g = await sdk.placementGroups.get(pg.id);
        return g.state === 'created' && g.placements[0]!.nodeId !== nodeId;
      }, { timeoutMs: 15_000 });
      expect(seen.filter((e) => e.kind === 'node.dead').map((e) => e.nodeId)).toEqual([nodeId]);
      expect(agents.stats().registered).toBe(199);
    } finally {
      stop.abort();
      await watching.catch(() => undefined);
    }
  });
});

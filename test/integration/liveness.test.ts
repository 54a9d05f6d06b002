/**
 * Node liveness on real processes: a head, 3 workers and a real nats-server.
 * Intervals are shortened (200 ms heartbeats, dead after 1 s); the default
 * 3 s detection is measured in bench/node-failure.ts.
 */
import { describe, expect, it } from 'vitest';
import { connectNats, decode } from '@muster/common';
import type { Cluster, ClusterEventView } from '@muster/sdk';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

describe('node liveness', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;

  useCluster({ workers: 3 }, (fx) => ({ cluster, sdk } = fx));

  it('registers every worker with its simulated inventory', async () => {
    const nodes = await sdk.nodes();
    expect(nodes.map((n) => n.id)).toEqual(['node-1', 'node-2', 'node-3']);
    for (const n of nodes) {
      expect(n.state).toBe('alive');
      expect(n.gpus).toHaveLength(8);
      expect(n.nvlinkIslands).toEqual([[0, 1, 2, 3, 4, 5, 6, 7]]);
      expect(n.inventorySource).toBe('simulated:hgx-h100-8');
    }
  });

  it('marks a SIGKILLed worker dead within deadAfterMs, tells SDK and NATS, and takes it back as one record', async () => {
    // Events on NATS are the head's subjects: read here with the launcher's all-subjects test user
    // (ClusterInfo names the servers but hands out no NATS credential).
    const nc = await connectNats(cluster.nats!.access, 'liveness-test');
    const natsDead = new Promise<{ nodeId: string }>((resolve) => {
      const sub = nc.subscribe('muster.events.node.dead');
      void (async () => {
        for await (const m of sub) resolve(decode<{ nodeId: string }>(m.data));
      })();
    });
    const seen: ClusterEventView[] = [];
    const stop = new AbortController();
    const watching = (async () => {
      for await (const e of sdk.events({ replay: true, signal: stop.signal, kinds: ['node.'] })) seen.push(e);
    })();
    try {
      // The head subscribes before it replays, so once a replayed event is
      // here, no live event can be missed.
      await waitFor('replayed registration of node-3', () => seen.find((e) => e.nodeId === 'node-3'));
      const victim = cluster.workers.get('node-2')!;
      const killedAt = Date.now();
      victim.process.signal('SIGKILL');
      const dead = await waitFor('node.dead event for node-2', () => seen.find((e) => e.kind === 'node.dead' && e.nodeId === 'node-2'), { timeoutMs: 5_000 });
      // 1 s without heartbeat + one sweep (≤ 100 ms) + delivery; the last
      // heartbeat was up to 200 ms before the kill.
      expect(dead.time.getTime() - killedAt).toBeLessThan(1_500);
      expect((await sdk.node('node-2')).state).toBe('dead');
      expect((await sdk.node('node-2')).stateReason).toMatch(/no heartbeat for \d+ ms/);
      expect((await natsDead).nodeId).toBe('node-2');
      // The others never flapped.
      expect(seen.filter((e) => e.kind === 'node.dead').map((e) => e.nodeId)).toEqual(['node-2']);

      await cluster.restartWorker('node-2');
      await waitFor('node.alive event for node-2', () => seen.find((e) => e.kind === 'node.alive' && e.nodeId === 'node-2'), { timeoutMs: 5_000 });
      const nodes = await sdk.nodes();
      expect(nodes.map((n) => n.id)).toEqual(['node-1', 'node-2', 'node-3']);
      expect(nodes.every((n) => n.state === 'alive')).toBe(true);
    } finally {
      stop.abort();
      await watching;
      await nc.close();
    }
  });

  it('serves Prometheus metrics from head and workers', async () => {
    const head = await (await fetch(`http://${cluster.head.metricsAddress}/metrics`)).text();
    expect(head).toMatch(/muster_nodes\{[^}]*state="alive"[^}]*\} 3/);
    expect(head).toMatch(/muster_rpc_total\{[^}]*method="ListNodes"/);
    expect(head).toMatch(/muster_heartbeat_lag_seconds_count/);
    const worker = await (await fetch(`http://${cluster.workers.get('node-1')!.metricsAddress}/metrics`)).text();
    expect(worker).toMatch(/muster_agent_heartbeats_total/);
    expect(worker).toMatch(/muster_agent_registered\{[^}]*\} 1/);
  });
});

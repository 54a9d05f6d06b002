/** Head restarts: state survives on the embedded store; agents come back by themselves. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCluster, waitFor, type LocalCluster } from '@muster/testing';

describe('head restart', () => {
  let cluster: LocalCluster;

  beforeAll(async () => {
    cluster = await createTestCluster({ workers: 3 });
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`keeps node records and gets every worker back within 5 s (${signal})`, async () => {
      const before = await cluster.connect();
      const registered = new Map((await before.nodes()).map((n) => [n.id, n]));
      before.close();

      await cluster.stopHead(signal);
      await cluster.startHead();
      const restartedAt = Date.now();
      const sdk = await cluster.connect();
      try {
        // Straight from the store, before any agent is back:
        const loaded = await sdk.nodes();
        expect(loaded.map((n) => n.id)).toEqual([...registered.keys()]);
        for (const n of loaded) expect(n.incarnation).toBe(registered.get(n.id)!.incarnation);

        await waitFor('3 reconnected workers', async () => {
          const nodes = await sdk.nodes({ state: 'alive' });
          return nodes.length === 3 && nodes.every((n) => n.lastHeartbeatAt.getTime() > restartedAt) ? nodes : undefined;
        }, { timeoutMs: 5_000 });
        const events = [];
        const stop = new AbortController();
        setTimeout(() => stop.abort(), 300);
        for await (const e of sdk.events({ replay: true, signal: stop.signal })) events.push(e);
        const reconnected = events.filter((e) => e.kind === 'node.reconnected' && e.time.getTime() >= restartedAt - 1000);
        expect(new Set(reconnected.map((e) => e.nodeId))).toEqual(new Set(registered.keys()));
        // Same agents (incarnations), no duplicates, nobody declared dead.
        const nodes = await sdk.nodes();
        expect(nodes).toHaveLength(3);
        for (const n of nodes) expect(n.incarnation).toBe(registered.get(n.id)!.incarnation);
        expect(events.filter((e) => e.kind === 'node.dead' && e.time.getTime() >= restartedAt)).toEqual([]);
      } finally {
        sdk.close();
      }
    });
  }
});

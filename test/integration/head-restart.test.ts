/** Head restarts: state survives on the embedded store; agents come back by themselves. */
import { describe, expect, it } from 'vitest';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

describe('head restart', () => {
  let cluster: LocalCluster;

  useCluster({ workers: 3 }, (fx) => ({ cluster } = fx));

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
        // Every retained event, up to the head's end-of-replay marker.
        for await (const e of sdk.events({ replay: true, untilReplayed: true })) events.push(e);
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

describe('placement groups across a head restart', () => {
  let cluster: LocalCluster;

  useCluster({ workers: 3 }, (fx) => ({ cluster } = fx));

  it('keeps every group and its placements, and re-places those whose node died while the head was down', async () => {
    let sdk = await cluster.connect();
    const keep = await sdk.placementGroups.create({ name: 'keep', bundles: [{ gpus: 4 }], selector: { matchLabels: {} } });
    await keep.ready({ timeout: 5_000 });
    const moving = await sdk.placementGroups.create({ name: 'moving', strategy: 'STRICT_SPREAD', bundles: [{ gpus: 2 }, { gpus: 2 }] });
    await moving.ready({ timeout: 5_000 });
    sdk.close();
    const keepNode = keep.placements[0]!.nodeId;
    const victim = moving.placements.map((p) => p.nodeId).find((n) => n !== keepNode)!;

    await cluster.stopHead('SIGKILL');
    const w = cluster.workers.get(victim)!;
    w.process.signal('SIGKILL');
    await w.process.exited;
    await cluster.startHead();

    sdk = await cluster.connect();
    try {
      const kept = await sdk.placementGroups.get('keep');
      expect(kept.state).toBe('created');
      expect(kept.placements).toEqual(keep.placements);
      await waitFor('moving to be placed again away from the dead node', async () => {
        const g = await sdk.placementGroups.get('moving');
        return g.state === 'created' && g.placements.every((p) => p.nodeId !== victim) ? g : undefined;
      }, { timeoutMs: 8_000 });
      expect((await sdk.placementGroups.list()).map((g) => g.name).sort()).toEqual(['keep', 'moving']);
    } finally {
      sdk.close();
    }
  });
});

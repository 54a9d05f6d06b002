/**
 * Replicas' resource use travels on the agent's authenticated stream
 * (AgentMessage.usage), not on NATS (docs/security.md, "Load reports"):
 *
 *  - a resource report published on the group's load subject with the
 *    group's own NATS credential — what any shard of the group holds — is
 *    dropped and counted, and the replica's use stays what its node's agent
 *    measured. The marker that the window was observed: the dropped-reports
 *    count rising past the forged report (the head has read it), then the
 *    replica's load read at once;
 *  - a worker SIGKILLed and restarted adopts its running rank and reports
 *    its use again. The marker that the old agent's reports are gone first:
 *    the replica's load seen without `resources` (no node has reported it
 *    for RESOURCE_REPORT_FRESH_MS) while the rank keeps sending its own load
 *    reports.
 *
 * Dead after 30 s: the restart must finish inside the node's liveness, so
 * the gang is adopted, not restarted (that would be new pids, and another
 * test).
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { connectNats, encode } from '@muster/common';
import { loadSubject, replicaPermissions } from '@muster/contracts';
import type { Cluster, ReplicaGroup } from '@muster/sdk';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const replica = fileURLToPath(new URL('../fixtures/replica.mjs', import.meta.url));

async function metric(cluster: LocalCluster, line: RegExp): Promise<number> {
  const text = await (await fetch(`http://${cluster.head.metricsAddress}/metrics`)).text();
  const m = text.split('\n').find((l) => line.test(l));
  return m === undefined ? 0 : Number(m.split(' ').at(-1));
}

describe('resource reports on the agent stream', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  let group: ReplicaGroup;

  useCluster({ workers: 1, deadAfterMs: 30_000 }, (fx) => ({ cluster, sdk } = fx));

  /** The group's one replica as the head sees it now. */
  const replicaNow = async () => (await group.refresh()).toJSON().replicas.find((r) => r.state === 'ready');

  it('a forged resource report with the group\'s NATS credential is dropped and moves nothing', async () => {
    group = await sdk.replicaGroups.apply({
      name: 'usage',
      tp: 1,
      resources: { gpus: 1 },
      template: { command: process.execPath, args: [replica], readiness: { kind: 'sdk' } },
      replicas: { min: 1, max: 1, initial: 1 },
    });
    const measured = await waitFor('the replica measured by its agent', async () => {
      const r = await replicaNow();
      return r?.load?.resources?.memoryBytes !== undefined ? r : undefined;
    }, { timeoutMs: 30_000 });
    const nodeId = (await sdk.gangs.get(measured.gangId)).ranks[0]!.nodeId;
    const dropped = /^muster_load_reports_dropped_total\{.*kind="load".*\}/;
    const forger = await connectNats(cluster.nats!.mint('replica usage', replicaPermissions('muster', 'usage')), 'forger');
    try {
      for (let i = 0; i < 3; i++) {
        const before = await metric(cluster, dropped);
        forger.publish(loadSubject('muster', 'usage'), encode({ v: 1, kind: 'resources', replicaId: measured.id, node: nodeId, timeMs: Date.now(), resources: { cpu: 500, memoryBytes: 1e14 } }));
        await forger.flush();
        await waitFor('the head to drop the forged report', async () => (await metric(cluster, dropped)) > before, { timeoutMs: 10_000 });
        const r = await replicaNow();
        expect(r?.id).toBe(measured.id);
        expect(r?.load?.resources?.cpu ?? 0).toBeLessThan(500);
        expect(r?.load?.resources?.memoryBytes ?? 0).toBeLessThan(1e14);
      }
    } finally {
      await forger.close();
    }
  });

  it('a restarted worker adopts the running rank and keeps reporting its use', async () => {
    const r0 = (await replicaNow())!;
    const gang = await sdk.gangs.get(r0.gangId);
    const nodeId = gang.ranks[0]!.nodeId;
    const pid = ((await group.call('before', { timeoutMs: 5_000 })) as { pid: number }).pid;
    const w = cluster.workers.get(nodeId)!;
    w.process.signal('SIGKILL');
    await w.process.exited;
    // The marker: nobody reports the replica's use any more, while the rank still sends its own load reports.
    await waitFor('the replica\'s use unreported', async () => {
      const r = await replicaNow();
      return r?.load !== undefined && r.load.resources === undefined;
    }, { timeoutMs: 15_000 });
    await cluster.restartWorker(nodeId);
    // CPU needs two samples of the new agent: memory first, then CPU.
    const after = await waitFor('the adopted rank\'s use reported by the new agent', async () => {
      const r = await replicaNow();
      return r?.load?.resources?.cpu !== undefined && r.load.resources.memoryBytes !== undefined ? r : undefined;
    }, { timeoutMs: 15_000 });
    expect(after.id).toBe(r0.id);
    expect(after.load!.resources!.memoryBytes).toBeGreaterThan(10 * 1024 * 1024); // a Node process's resident memory
    // The same process, adopted: not restarted.
    expect(((await group.call('after', { timeoutMs: 5_000 })) as { pid: number }).pid).toBe(pid);
    expect((await sdk.gangs.get(r0.gangId)).toJSON().attempt).toBe(gang.toJSON().attempt);
  });
});

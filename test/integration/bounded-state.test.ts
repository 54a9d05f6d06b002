/**
 * Bounded state on real processes (issue 15, point 5): finished gangs beyond
 * --finished-gangs-kept are deleted from the store (gone after a head
 * restart) and from `gang ls`, each with gang.collected; a DEAD node is
 * forgotten after --dead-node-ttl-ms with node.removed; `muster node rm`
 * refuses a live node and removes a dead one.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Client, Metadata, type ServiceError } from '@grpc/grpc-js';
import { grpcChannelCredentials } from '@muster/common';
import { execa } from 'execa';
import { RemoveNodeRequest } from '@muster/proto';
import type { Cluster, ClusterEventView } from '@muster/sdk';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const shard = fileURLToPath(new URL('../fixtures/shard.mjs', import.meta.url));
const cli = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));

/** Collects the events of `kinds` from the replay on, until `stop` is called. */
function watch(sdk: Cluster, kinds: string[]) {
  const seen: ClusterEventView[] = [];
  const ac = new AbortController();
  const done = (async () => {
    for await (const e of sdk.events({ replay: true, signal: ac.signal, kinds })) seen.push(e);
  })().catch(() => undefined);
  return { seen, stop: async () => (ac.abort(), await done) };
}

describe('finished gangs and `muster node rm`', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  useCluster({ workers: 3, headArgs: ['--finished-gangs-kept', '2'] }, (fx) => ({ cluster, sdk } = fx));

  it('keeps the newest 2 finished gangs: the older ones leave `gang ls` and the store, with gang.collected', async () => {
    const env = cluster.clientEnv();
    const events = watch(sdk, ['gang.collected']);
    const ids: string[] = [];
    for (const name of ['g1', 'g2', 'g3', 'g4']) {
      const pg = await sdk.placementGroups.create({ name: `${name}-pg`, strategy: 'PACK', bundles: [{ gpus: 1 }] });
      await pg.ready({ timeout: 5_000 });
      const gang = await sdk.gangs.launch({
        name, placementGroup: pg.name, tp: 1, pp: 1,
        template: { command: process.execPath, args: [shard], ports: [{ name: 'http' }], readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 50 } },
        startup: { gracePeriodMs: 500 },
      });
      await gang.ready({ timeout: 15_000 });
      ids.push(gang.id);
      await gang.stop();
      await waitFor(`${name} stopped`, async () => (await sdk.gangs.list()).find((g) => g.id === gang.id)?.state === 'stopped', { timeoutMs: 10_000 });
      await pg.remove();
    }
    await waitFor('g1 and g2 collected', () => events.seen.filter((e) => e.kind === 'gang.collected').length >= 2, { timeoutMs: 10_000 });
    await events.stop();
    expect(events.seen.map((e) => e.attributes.gang)).toEqual([ids[0], ids[1]]);
    expect((await sdk.gangs.list()).map((g) => g.name)).toEqual(['g3', 'g4']);
    const ls = JSON.parse((await execa(process.execPath, [cli, 'gang', 'ls', '--json'], { env })).stdout) as Array<{ name: string }>;
    expect(ls.map((g) => g.name)).toEqual(['g3', 'g4']);

    // Deleted from the store, not only from memory: a restarted head reads back only g3 and g4.
    await cluster.restartHead(0);
    await waitFor('gangs read back', async () => (await sdk.gangs.list().catch(() => [])).length > 0, { timeoutMs: 15_000 });
    expect((await sdk.gangs.list()).map((g) => g.id)).toEqual([ids[2], ids[3]]);
  });

  it('`muster node rm` refuses a live node by name and state, and removes a dead one', async () => {
    const env = cluster.clientEnv();
    const live = await execa(process.execPath, [cli, 'node', 'rm', 'node-1'], { env, reject: false });
    expect(live.exitCode).toBe(1);
    expect(live.stderr).toMatch(/node node-1 is ALIVE: only a DEAD node can be removed.*\[MUSTER_FAILED_PRECONDITION\]/);
    expect((await sdk.node('node-1')).state).toBe('alive');

    // Authenticated like every other call: without the token or a client certificate, refused and nothing removed.
    const raw = new Client(cluster.address, grpcChannelCredentials({ ca: cluster.tls!.ca }));
    const err = await new Promise<ServiceError>((resolve) =>
      raw.makeUnaryRequest('/muster.v1.ClusterService/RemoveNode', (r: RemoveNodeRequest) => Buffer.from(RemoveNodeRequest.encode(r).finish()), (b: Buffer) => b, { nodeId: 'node-3' }, new Metadata(), (e) => resolve(e!)),
    );
    raw.close();
    expect(err.code).toBe(16); // UNAUTHENTICATED

    const events = watch(sdk, ['node.dead', 'node.removed']);
    cluster.workers.get('node-3')!.process.signal('SIGKILL');
    await waitFor('node-3 dead', () => events.seen.find((e) => e.kind === 'node.dead' && e.nodeId === 'node-3'), { timeoutMs: 10_000 });
    const rm = await execa(process.execPath, [cli, 'node', 'rm', 'node-3'], { env });
    expect(rm.stdout).toMatch(/node node-3 removed/);
    await waitFor('node.removed', () => events.seen.find((e) => e.kind === 'node.removed' && e.nodeId === 'node-3'), { timeoutMs: 5_000 });
    await events.stop();
    expect((await sdk.nodes()).map((n) => n.id)).toEqual(['node-1', 'node-2']);
    const again = await execa(process.execPath, [cli, 'node', 'rm', 'node-3'], { env, reject: false });
    expect(again.stderr).toMatch(/no node "node-3".*\[MUSTER_NOT_FOUND\]/);
  });
});

describe('dead nodes past --dead-node-ttl-ms', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  useCluster({ workers: 2, heartbeatIntervalMs: 200, deadAfterMs: 1_000, headArgs: ['--dead-node-ttl-ms', '2000'] }, (fx) => ({ cluster, sdk } = fx));

  it('are removed with node.removed; the live one stays; the agent coming back registers anew', async () => {
    const events = watch(sdk, ['node.']);
    await waitFor('replayed registrations', () => events.seen.filter((e) => e.kind === 'node.registered').length === 2);
    cluster.workers.get('node-2')!.process.signal('SIGKILL');
    const dead = await waitFor('node-2 dead', () => events.seen.find((e) => e.kind === 'node.dead' && e.nodeId === 'node-2'), { timeoutMs: 10_000 });
    const removed = await waitFor('node-2 removed', () => events.seen.find((e) => e.kind === 'node.removed' && e.nodeId === 'node-2'), { timeoutMs: 10_000 });
    expect(removed.time.getTime() - dead.time.getTime()).toBeGreaterThanOrEqual(2_000);
    expect((await sdk.nodes()).map((n) => n.id)).toEqual(['node-1']);

    await cluster.restartWorker('node-2');
    await waitFor('node-2 registered again', () => events.seen.filter((e) => e.kind === 'node.registered' && e.nodeId === 'node-2').length === 2, { timeoutMs: 10_000 });
    await events.stop();
    expect((await sdk.nodes()).map((n) => n.id)).toEqual(['node-1', 'node-2']);
    // node-1 never flapped.
    expect(events.seen.filter((e) => e.nodeId === 'node-1').map((e) => e.kind)).toEqual(['node.registered']);
  });
});

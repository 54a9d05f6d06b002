/**
 * Placement groups end to end on real processes: 4 simulated 8×H100 workers,
 * the head's controller, the SDK and the CLI.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { grpcChannelCredentials, readToken, tokenMetadata } from '@muster/common';
import { PlacementGroupServiceClient, PlacementGroupState, type WaitPlacementGroupsReply } from '@muster/proto';
import { ErrorCode, type Cluster, type PlacementGroup } from '@muster/sdk';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const cli = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));

describe('placement groups', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;

  useCluster({ workers: 4 }, (fx) => ({ cluster, sdk } = fx));
  afterEach(async () => {
    for (const g of await sdk.placementGroups.list()) await g.remove();
  });

  const gpusInUse = async () => {
    const used = new Set<string>();
    for (const g of await sdk.placementGroups.list()) {
      for (const p of g.placements) {
        for (const i of p.gpuIndices) {
          const key = `${p.nodeId}/${i}`;
          expect(used.has(key), `GPU ${key} booked twice`).toBe(false);
          used.add(key);
        }
      }
    }
    return used;
  };

  it('reserves a TP×PP gang inside NVLink islands, tells the caller where, and frees it on remove', async () => {
    const pg = await sdk.placementGroups.create({
      name: 'tp4-pp2',
      bundles: [{ gpus: 4, cpuMillis: 8_000 }, { gpus: 4, cpuMillis: 8_000 }],
      topology: [{ level: 'gpu-island' }],
    });
    await pg.ready({ timeout: 5_000 });
    expect(pg.state).toBe('created');
    expect(pg.placements).toHaveLength(2);
    for (const p of pg.placements) {
      expect(p.gpuIndices).toHaveLength(4);
      expect(p.gpuUuids.every((u) => u.startsWith('GPU-'))).toBe(true);
    }
    expect(await pg.explain()).toBeUndefined();
    expect((await gpusInUse()).size).toBe(8);
    await pg.remove();
    expect(pg.state).toBe('removed');
    expect((await gpusInUse()).size).toBe(0);
    expect((await sdk.placementGroups.get(pg.id)).state).toBe('removed');
  });

  it('explains a pending group from data, and places it when capacity frees up', async () => {
    const big = await sdk.placementGroups.create({ name: 'fill', strategy: 'STRICT_SPREAD', bundles: Array.from({ length: 4 }, () => ({ gpus: 6 })) });
    await big.ready({ timeout: 5_000 });
    const waiting = await sdk.placementGroups.create({ name: 'needs-8', bundles: [{ gpus: 8 }], topology: [{ level: 'gpu-island' }] });
    const err = await waiting.ready({ timeout: 300 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.DEADLINE_EXCEEDED });
    expect(String((err as Error).message)).toMatch(/needs-8 not ready after 300 ms \(pending\): /);
    const reason = (await waiting.explain())!;
    expect(reason.message).toMatch(/8 GPUs/);
    expect(reason.nodesTotal).toBe(4);
    expect(reason.rejections.reduce((s, r) => s + r.count, 0)).toBe(4);
    expect(reason.mostFreeGpus?.count).toBe(2);

    await big.remove();
    await waiting.ready({ timeout: 5_000 });
    expect(waiting.placements[0]!.gpuIndices).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('never books a GPU twice under many concurrent creates, and never half-places a gang', async () => {
    const groups = await Promise.all(Array.from({ length: 40 }, (_, i) => sdk.placementGroups.create({ name: `c-${i}`, bundles: [{ gpus: 1 }, { gpus: 1 }] })));
    await waitFor('the cycle to settle', async () => (await sdk.placementGroups.list({ state: 'reserved' })).length === 0 || undefined);
    const all = await sdk.placementGroups.list();
    const created = all.filter((g) => g.state === 'created');
    expect(created).toHaveLength(16); // 32 GPUs / 2 per group
    expect(all.filter((g) => g.state === 'pending')).toHaveLength(24);
    for (const g of all) expect(g.placements.length === 0 || g.placements.length === 2).toBe(true);
    expect((await gpusInUse()).size).toBe(32);
    await Promise.all(groups.map((g) => g.remove()));
  });

  it('answers many waits over one stream, each under its tag, as soon as each can be answered', async () => {
    const placed = await sdk.placementGroups.create({ name: 'w-placed', bundles: [{ gpus: 1 }] });
    await placed.ready({ timeout: 5_000 });
    // Every GPU of the cluster: pending while w-placed holds one.
    const whole = await sdk.placementGroups.create({ name: 'w-whole', strategy: 'STRICT_SPREAD', bundles: Array.from({ length: 4 }, () => ({ gpus: 8 })) });
    const client = new PlacementGroupServiceClient(cluster.address, grpcChannelCredentials(cluster.tls!));
    const stream = client.waitPlacementGroups(tokenMetadata(await readToken(cluster.tokenFile)));
    try {
      const replies = new Map<number, { reply: WaitPlacementGroupsReply; ms: number }>();
      const t0 = Date.now();
      stream.on('data', (r: WaitPlacementGroupsReply) => replies.set(r.tag, { reply: r, ms: Date.now() - t0 }));
      stream.on('error', () => undefined); // CANCELLED, from the cancel below
      stream.write({ tag: 1, id: whole.id, timeoutMs: 400, batchedAnswers: false });
      stream.write({ tag: 2, id: 'pg-nosuchgroup', timeoutMs: 5_000, batchedAnswers: false });
      stream.write({ tag: 3, id: 'w-placed', timeoutMs: 5_000, batchedAnswers: false }); // by name
      await waitFor('three replies', () => replies.size === 3 || undefined, { timeoutMs: 5_000 });
      expect(replies.get(2)!.reply).toMatchObject({ errorCode: ErrorCode.NOT_FOUND, errorMessage: 'no placement group "pg-nosuchgroup"' });
      expect(replies.get(3)!.reply.group).toMatchObject({ id: placed.id, state: PlacementGroupState.PLACEMENT_GROUP_STATE_CREATED });
      expect(replies.get(3)!.ms).toBeLessThan(400);
      // Not settled: answered at its time, with the state and the reason it waits.
      expect(replies.get(1)!.ms).toBeGreaterThanOrEqual(390);
      expect(replies.get(1)!.reply.group).toMatchObject({ id: whole.id, state: PlacementGroupState.PLACEMENT_GROUP_STATE_PENDING });
      expect(replies.get(1)!.reply.group!.reason?.message).toMatch(/GPU/);

      stream.write({ tag: 4, id: whole.id, timeoutMs: 10_000, batchedAnswers: false });
      const removedAt = Date.now() - t0;
      await placed.remove(); // the GPU it lacked is free: it is placed, and the wait answered then
      await waitFor('the wait to be answered', () => replies.get(4), { timeoutMs: 5_000 });
      expect(replies.get(4)!.reply.group?.state).toBe(PlacementGroupState.PLACEMENT_GROUP_STATE_CREATED);
      expect(replies.get(4)!.ms - removedAt).toBeLessThan(5_000);
    } finally {
      stream.cancel();
      client.close();
    }
  });

  it('sends creates and removes issued together as one batched call each; a refused item fails only itself', async () => {
    /** Calls the head counted for `method`, from its metrics. */
    const calls = async (method: string) => {
      const text = await (await fetch(`http://${cluster.head.metricsAddress}/metrics`)).text();
      return text.split('\n').filter((l) => l.startsWith('muster_rpc_total{') && l.includes(`method="${method}"`)).reduce((n, l) => n + Number(l.split(' ').at(-1)), 0);
    };
    const taken = await sdk.placementGroups.create({ name: 'b-taken', bundles: [{ gpus: 1 }] });
    const before = { create: await calls('CreatePlacementGroup'), creates: await calls('CreatePlacementGroups'), remove: await calls('RemovePlacementGroup'), removes: await calls('RemovePlacementGroups') };
    const made = await Promise.allSettled([
      ...Array.from({ length: 20 }, (_, i) => sdk.placementGroups.create({ name: `b-${i}`, bundles: [{ gpus: 1 }] })),
      sdk.placementGroups.create({ name: 'b-taken', bundles: [{ gpus: 1 }] }),
    ]);
    expect(made.slice(0, 20).every((r) => r.status === 'fulfilled')).toBe(true);
    expect((made[20] as PromiseRejectedResult).reason).toMatchObject({ code: ErrorCode.ALREADY_EXISTS });
    const groups = made.slice(0, 20).map((r) => (r as PromiseFulfilledResult<PlacementGroup>).value);
    await Promise.all(groups.map((g) => g.ready({ timeout: 10_000 })));
    expect((await gpusInUse()).size).toBe(21);
    const removed = await Promise.allSettled([...groups.map((g) => g.remove()), sdk.placementGroups.remove('pg-nosuchgroup')]);
    expect(removed.slice(0, 20).every((r) => r.status === 'fulfilled')).toBe(true);
    expect((removed[20] as PromiseRejectedResult).reason).toMatchObject({ code: ErrorCode.NOT_FOUND });
    expect(groups.every((g) => g.state === 'removed')).toBe(true);
    expect([...(await gpusInUse())]).toEqual([`${taken.placements[0]!.nodeId}/${taken.placements[0]!.gpuIndices[0]}`]);
    // One batched call each way, no single ones.
    expect(await calls('CreatePlacementGroups')).toBe(before.creates + 1);
    expect(await calls('CreatePlacementGroup')).toBe(before.create);
    expect(await calls('RemovePlacementGroups')).toBe(before.removes + 1);
    expect(await calls('RemovePlacementGroup')).toBe(before.remove);
  });

  it('refuses invalid specs by naming the field, and marks impossible ones INFEASIBLE', async () => {
    const refusals: Array<[unknown, RegExp]> = [
      [{ name: 'x', bundles: [] }, /bundles: a placement group needs at least one bundle/],
      [{ name: 'x', bundles: [{ gpus: -1 }] }, /bundles\[0\]\.gpus/],
      [{ name: 'x', strategy: 'SOMETIMES', bundles: [{ gpus: 1 }] }, /strategy/],
      [{ name: '', bundles: [{ gpus: 1 }] }, /name/],
      [{ name: 'x', bundles: [{ gpus: 1.5 }] }, /bundles\[0\]\.gpus: expected an integer/],
    ];
    for (const [spec, field] of refusals) {
      const e = await sdk.placementGroups.create(spec as never).catch((x: unknown) => x);
      expect(e, JSON.stringify(spec)).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
      expect((e as Error).message).toMatch(field);
    }
    expect(await sdk.placementGroups.list()).toEqual([]);

    const tooBig = await sdk.placementGroups.create({ name: 'too-big', bundles: [{ gpus: 16 }] });
    await expect(tooBig.ready({ timeout: 2_000 })).rejects.toMatchObject({ code: ErrorCode.PG_INFEASIBLE });
    expect(tooBig.state).toBe('infeasible');
    const spread = await sdk.placementGroups.create({ name: 'spread-5', strategy: 'STRICT_SPREAD', bundles: Array.from({ length: 5 }, () => ({ gpus: 1 })) });
    const e = await spread.ready({ timeout: 2_000 }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: ErrorCode.PG_INFEASIBLE });
    expect((e as Error).message).toMatch(/5 bundles|4 nodes|STRICT_SPREAD/);
    const dup = await sdk.placementGroups.create({ name: 'too-big', bundles: [{ gpus: 1 }] }).catch((x: unknown) => x);
    expect(dup).toMatchObject({ code: ErrorCode.ALREADY_EXISTS });
  });

  it('works from the CLI: create -f, ls, get, why, rm', async () => {
    const env = cluster.clientEnv();
    const spec = join(cluster.dataDir, 'pg.yaml');
    await writeFile(spec, 'name: cli-pg\nstrategy: PACK\nbundles:\n  - gpus: 2\n    cpuMillis: 1000\ntopology:\n  - level: gpu-island\n');
    const created = await execa(process.execPath, [cli, 'pg', 'create', '-f', spec, '--wait', '10'], { env });
    expect(created.stdout).toMatch(/cli-pg\s+created/);
    expect(created.stdout).toMatch(/node-\d\s+\d,\d/);
    expect((await execa(process.execPath, [cli, 'pg', 'ls'], { env })).stdout).toMatch(/cli-pg\s+created\s+1\s+2/);
    expect((await execa(process.execPath, [cli, 'pg', 'get', 'cli-pg'], { env })).stdout).toMatch(/GPU-/);
    expect((await execa(process.execPath, [cli, 'pg', 'why', 'cli-pg'], { env })).stdout).toMatch(/nothing is holding it back/);

    await writeFile(spec, 'name: cli-huge\nbundles:\n  - gpus: 9\n');
    await execa(process.execPath, [cli, 'pg', 'create', '-f', spec], { env });
    const why = await execa(process.execPath, [cli, 'pg', 'why', 'cli-huge'], { env });
    expect(why.stdout).toMatch(/cli-huge is infeasible: .*9 GPUs/);
    expect((await execa(process.execPath, [cli, 'pg', 'rm', 'cli-pg'], { env })).stdout).toMatch(/removed pg-/);

    await writeFile(spec, 'name: bad\nbundles:\n  - gpu: 2\n');
    const bad = await execa(process.execPath, [cli, 'pg', 'create', '-f', spec], { env, reject: false });
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toMatch(/bundles\[0\].*gpu.*\[MUSTER_INVALID_ARGUMENT\]/);
  });

  it('places a group again, whole, when a node holding a bundle dies', async () => {
    const pg = await sdk.placementGroups.create({ name: 'survivor', strategy: 'SPREAD', bundles: [{ gpus: 4 }, { gpus: 4 }] });
    await pg.ready({ timeout: 5_000 });
    const victim = pg.placements[0]!.nodeId;
    const killedAt = Date.now();
    cluster.workers.get(victim)!.process.signal('SIGKILL');
    let again: PlacementGroup | undefined;
    await waitFor('the group to be placed again without the dead node', async () => {
      const g = await sdk.placementGroups.get(pg.id);
      if (g.state === 'created' && g.placements.every((p) => p.nodeId !== victim)) again = g;
      return again;
    }, { timeoutMs: 5_000 });
    expect(Date.now() - killedAt).toBeLessThan(5_000);
    expect(again!.placements).toHaveLength(2);
    expect(again!.toJSON().reschedules).toBe(1);
    await cluster.restartWorker(victim);
  });
});

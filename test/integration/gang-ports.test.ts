/**
 * A port in use on the host (issue 15, point 8): another process holds the
 * port the head allocates first (a 10-port --shard-port-range, so we know
 * which), the worker finds it taken before spawning the rank, and the head
 * starts the gang again on a free port, without spending its restart budget
 * (maxRestarts 0: a counted restart would have failed the gang).
 */
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Cluster } from '@muster/sdk';
import { claimPortBlock, createTestCluster, type LocalCluster } from '@muster/testing';

const shard = fileURLToPath(new URL('../fixtures/shard.mjs', import.meta.url));

describe('a rank whose allocated port is taken', () => {
  let block: Awaited<ReturnType<typeof claimPortBlock>>;
  let cluster: LocalCluster | undefined;
  let sdk: Cluster | undefined;
  let first = 0;
  let squatter: Server | undefined;

  beforeAll(async () => {
    block = await claimPortBlock(); // a block no other test cluster hands out; we use its first 10 ports
    first = Number(block.range.split('-')[0]);
    cluster = await createTestCluster({ workers: 1, shardPortRange: `${first}-${first + 9}` });
    sdk = await cluster.connect();
  });
  afterAll(async () => {
    sdk?.close();
    await cluster?.stop();
    await new Promise((r) => (squatter ? squatter.close(r) : r(undefined)));
    await block?.release();
  });

  it('is re-allocated a free port: the gang is READY on attempt 2 with no restart counted', async () => {
    squatter = createServer();
    await new Promise<void>((resolve, reject) => squatter!.once('error', reject).listen(first, resolve));
    const pg = await sdk!.placementGroups.create({ name: 'ports-pg', bundles: [{ gpus: 1 }] });
    await pg.ready({ timeout: 5_000 });
    const gang = await sdk!.gangs.launch({
      name: 'ports',
      placementGroup: 'ports-pg',
      tp: 1,
      pp: 1,
      template: { command: process.execPath, args: [shard], ports: [{ name: 'http' }], readiness: { kind: 'http', port: 'http', path: '/health', periodMs: 50 } },
      startup: { maxRestarts: 0, backoffInitialMs: 200 },
    });
    await gang.ready({ timeout: 15_000 });
    const v = (await sdk!.gangs.get('ports')).toJSON();
    const story = JSON.stringify({ attempt: v.attempt, restarts: v.restarts, message: v.message, last: v.lastFailure });
    expect(v.state, story).toBe('ready');
    expect(v.attempt, story).toBe(2);
    expect(v.restarts, story).toBe(0);
    expect(v.lastFailure, story).toMatchObject({ attempt: 1, rank: 0, reason: expect.stringContaining(`port ${first} is in use`) });
    const port = v.ranks[0]!.ports.http!;
    expect(port).not.toBe(first);
    expect(port).toBeGreaterThan(first);
    expect(port).toBeLessThanOrEqual(first + 9);
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    expect(health.status).toBe(200);
    await gang.stop();
  });
});

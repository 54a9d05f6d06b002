/**
 * `createTestCluster()`: a LocalCluster (from `@muster/local`) set up for
 * tests: temp dir, free ports, fast liveness, a run tag of its own (so chaos
 * helpers and the invariant checker find its shards), a shard port block no
 * other live test cluster uses (port-blocks.ts), and chaos's frozen
 * processes thawed before it stops.
 */
import { childRunTag, LocalCluster, type ClusterOptions } from '@muster/local';
import { thawAll } from './chaos.js';
import { claimPortBlock } from './port-blocks.js';

export async function createTestCluster(opts: ClusterOptions = {}): Promise<LocalCluster> {
  const block = opts.shardPortRange ? undefined : await claimPortBlock();
  try {
    const cluster = await LocalCluster.start({
      heartbeatIntervalMs: 200,
      deadAfterMs: 1_000,
      profile: 'hgx-h100-8',
      runTag: childRunTag(process.env.MUSTER_TEST_RUN ?? 'test'),
      shardPortRange: block?.range,
      ...opts,
    });
    // A frozen process keeps signals pending: thaw before anything is stopped.
    cluster.onStopping(thawAll);
    if (block) cluster.onStop(block.release);
    return cluster;
  } catch (e) {
    await block?.release();
    throw e;
  }
}

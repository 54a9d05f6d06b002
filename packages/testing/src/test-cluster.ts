/**
 * `createTestCluster()`: a LocalCluster (from `@muster/local`) set up for
 * tests: temp dir, free ports, fast liveness, a run tag of its own (so chaos
 * helpers and the invariant checker find its shards), a shard port block no
 * other live test cluster uses (port-blocks.ts), and chaos's frozen
 * processes thawed before it stops.
 */
import { statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
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
      shardUser: rootRanksFallback(),
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

let fallbackSaid = false;

/**
 * As root, a worker runs each gang under its own unprivileged uid; those
 * uids must be able to read the fixtures and node_modules of this checkout.
 * A checkout they cannot reach (say under /root, mode 0700) would fail every
 * shard test for a reason that is not the test's: there the kit runs ranks
 * as root (`--shard-user 0:0`) and says so once. Undefined: the worker's default.
 */
export function rootRanksFallback(dir = process.cwd()): string | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const blocked = unreachableByOthers(resolve(dir));
  if (!blocked) return undefined;
  if (!fallbackSaid) {
    fallbackSaid = true;
    process.stderr.write(`test kit: ${blocked} is not searchable by other uids, so ranks run as root here (--shard-user 0:0); move the checkout or chmod o+x it to test ranks under their own uids\n`);
  }
  return '0:0';
}

/** The first directory from `dir` up that others cannot search, or undefined. */
function unreachableByOthers(dir: string): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    try {
      if ((statSync(d).mode & 0o001) === 0) return d;
    } catch {
      return d;
    }
    if (d === dirname(d)) return undefined;
  }
}

/**
 * Shard port blocks for test clusters: each live test cluster on this machine
 * hands its shards ports from a block no other one uses (see claimPortBlock).
 * Test-only, so it lives in the test kit, not in `@muster/local`.
 */
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pidAlive } from '@muster/common';

/** Shard port blocks inside the head's default range (30000-32767), one per live test cluster on this machine. */
const BLOCKS = 10;
const BLOCK_SIZE = 270;
const BLOCK_DIR = join(tmpdir(), 'muster-test-port-blocks');

/**
 * Claims a block of ports no other live test cluster on this machine hands
 * to its shards, and returns it as a head's `--shard-port-range`.
 *
 * Shards bind the ports their head allocates, and test files run in
 * parallel processes, each with its own cluster: two clusters handing out
 * the same port made ranks fail with EADDRINUSE. A block is claimed by
 * creating `<tmp>/muster-test-port-blocks/<n>` exclusively with our pid in
 * it; `release` removes it, and a block whose process is gone is taken over.
 * (Vitest's VITEST_POOL_ID cannot serve: it is 1 in every forks worker.)
 */
export async function claimPortBlock(): Promise<{ range: string; release: () => Promise<void> }> {
  await mkdir(BLOCK_DIR, { recursive: true });
  const holders: string[] = [];
  for (let i = 0; i < BLOCKS; i++) {
    const path = join(BLOCK_DIR, String(i));
    if (!(await takeFile(path))) {
      holders.push(`${i}: pid ${(await readFile(path, 'utf8').catch(() => '?')).trim()}`);
      continue;
    }
    const first = 30_000 + i * BLOCK_SIZE;
    return {
      range: `${first}-${first + BLOCK_SIZE - 1}`,
      release: async () => {
        if ((await readFile(path, 'utf8').catch(() => '')).trim() === String(process.pid)) await rm(path, { force: true });
      },
    };
  }
  throw new Error(`all ${BLOCKS} shard port blocks are held by live test clusters (${holders.join(', ')}); stop some, or remove stale files in ${BLOCK_DIR}`);
}

/**
 * Creates `path` with our pid unless a live process holds it; takes over the
 * file of a dead one. The file appears with its pid already in it (written
 * to a private file, then hard-linked into place, which fails if the name
 * exists): a file created empty and written after would let a cluster
 * starting at the same moment read no pid, take the holder for dead and
 * share its block.
 */
async function takeFile(path: string): Promise<boolean> {
  const mine = `${path}.${process.pid}`;
  await writeFile(mine, `${process.pid}\n`);
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await link(mine, path);
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const pid = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
      if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) return false;
      await rm(path, { force: true }); // its process is gone
    }
    return false;
  } finally {
    await rm(mine, { force: true });
  }
}

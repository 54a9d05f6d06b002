import { spawnSync } from 'node:child_process';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { claimPortBlock } from './port-blocks.js';

const dir = join(tmpdir(), 'muster-test-port-blocks');

describe('shard port blocks', () => {
  it('gives live claimants disjoint blocks inside 30000-32767, and a released or orphaned block to the next', async () => {
    const a = await claimPortBlock();
    const b = await claimPortBlock();
    try {
      const [a0, a1] = a.range.split('-').map(Number) as [number, number];
      const [b0, b1] = b.range.split('-').map(Number) as [number, number];
      expect(a0).toBeGreaterThanOrEqual(30_000);
      expect(Math.max(a1, b1)).toBeLessThanOrEqual(32_767);
      expect(a1 < b0 || b1 < a0).toBe(true);

      await a.release();
      const again = await claimPortBlock();
      expect(again.range).toBe(a.range);
      await again.release();

      // A block whose holder died (its file names a pid that is gone) is taken over: the lowest free
      // one is made to look held by a dead process, and the next claim gets it all the same.
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
      const names = new Set(await readdir(dir));
      const lowest = Array.from({ length: 10 }, (_, i) => i).find((i) => !names.has(String(i)))!;
      await writeFile(join(dir, String(lowest)), `${dead}\n`);
      const taken = await claimPortBlock();
      expect(taken.range).toBe(`${30_000 + lowest * 270}-${30_000 + lowest * 270 + 269}`);
      await taken.release();
      await rm(join(dir, String(lowest)), { force: true });
    } finally {
      await a.release();
      await b.release();
    }
  });
});

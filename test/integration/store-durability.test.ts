/**
 * The real muster-head on its embedded store's data dir: a second head on
 * the same dir is refused by the flock lock and a SIGKILLed head's lock does
 * not block the next start; a log damaged before its end (a bad frame with
 * later, acknowledged records after it) makes the head exit non-zero with
 * MUSTER_STORE_CORRUPT naming file and offset, and `--repair-wal` starts it.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { decode } from '@muster/common';
import { spawnManaged, tempDir, type ManagedProcess } from '@muster/testing';

const headBin = fileURLToPath(new URL('../../packages/head/dist/main.js', import.meta.url));
const started: ManagedProcess[] = [];
afterAll(async () => {
  for (const p of started) await p.stop(2_000);
});

function head(dataDir: string, ...extra: string[]): ManagedProcess {
  const p = spawnManaged('head', process.execPath, [headBin, '--listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--data-dir', dataDir, '--insecure', ...extra]);
  started.push(p);
  return p;
}
const ready = (p: ManagedProcess) => p.waitForLine((l) => l.includes('"head ready"'), 30_000);

describe('embedded store durability, real head', () => {
  it('refuses a second head on a locked data dir; a SIGKILLed head leaves no lock behind', async () => {
    const dir = await tempDir('muster-durability-');
    try {
      const a = head(dir.path);
      await ready(a);
      const b = head(dir.path);
      expect(await b.exited).not.toBe(0);
      expect(b.output()).toContain('MUSTER_FAILED_PRECONDITION');
      expect(b.output()).toContain(`pid ${a.pid}`);

      a.signal('SIGKILL');
      await a.exited;
      const c = head(dir.path); // same data dir at once, as a supervisor restarting a container would
      await ready(c);
      await c.stop(5_000);
      expect(await c.exited).toBe(0);
    } finally {
      await dir.remove();
    }
  });

  it('exits non-zero on a WAL damaged before its end, naming file and offset; --repair-wal starts it', async () => {
    const dir = await tempDir('muster-durability-');
    try {
      for (let i = 0; i < 2; i++) { // two starts: the log holds several batches
        const h = head(dir.path);
        await ready(h);
        await h.stop(5_000);
        expect(await h.exited, h.output()).toBe(0);
      }
      const seg = join(dir.path, 'store', 'wal-0000000001.log');
      const buf = await readFile(seg);
      // Frames: [u32 length][u32 crc32][msgpack record]; `b` is the first record of a record's batch.
      const batches: number[] = [];
      for (let pos = 0; pos < buf.length; pos += 8 + buf.readUInt32LE(pos)) {
        batches.push(decode<{ b: number }>(buf.subarray(pos + 8, pos + 8 + buf.readUInt32LE(pos))).b);
      }
      expect(Math.max(...batches)).toBeGreaterThan(2); // a later, acknowledged batch follows record 2
      const second = 8 + buf.readUInt32LE(0); // offset of record 2
      buf[second + 8 + 2]! ^= 0x10; // one flipped bit in its payload
      await writeFile(seg, buf);

      const refused = head(dir.path);
      expect(await refused.exited).toBe(1);
      const out = refused.output();
      expect(out).toContain('MUSTER_STORE_CORRUPT');
      expect(out).toContain(seg);
      expect(out).toContain(`byte ${second}`);
      expect(out).toContain('--repair-wal');
      expect(out).not.toContain('"head ready"');
      expect((await readFile(seg)).length).toBe(buf.length); // refusing touched nothing

      const repaired = head(dir.path, '--repair-wal');
      await ready(repaired);
      expect(repaired.output()).toContain(`truncating at byte ${second}`);
      await repaired.stop(5_000);
      expect((await readFile(seg)).length).toBeGreaterThanOrEqual(second); // cut there, then appended to
      expect((await readFile(`${seg}.dropped-${second}`)).equals(buf.subarray(second))).toBe(true);
    } finally {
      await dir.remove();
    }
  });
});

import { appendFileSync, existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '@muster/common';
import { followLog, readTail, readTailRotated, rotateIfNeeded } from './logs.js';
import { Harness, node } from './test-support.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.cleanup();
});

async function collect(it: AsyncIterable<Uint8Array>, into: { text: string }): Promise<void> {
  for await (const c of it) into.text += Buffer.from(c).toString('utf8');
}

const size = (f: string): number => (existsSync(f) ? statSync(f).size : 0);

describe('shard logs', () => {
  it('keeps the log and one rotated copy near logMaxBytes while the shard writes 300 KB', async () => {
    const sup = await h.open({ logCheckMs: 25 });
    // 300 lines of 1000 bytes, one every 5 ms: ~1.5 s, 300 KB.
    const script = 'let i = 0; const t = setInterval(() => { console.log(String(i).padStart(999, "x")); if (++i === 300) clearInterval(t) }, 5)';
    const s = h.spec({ ...node(script), logMaxBytes: 8192 });
    sup.launch(s);
    const started = await h.status(s.key, 'started');
    const file = started.logFile!;
    let maxLog = 0;
    let maxOld = 0;
    await waitFor('shard to finish writing', () => {
      maxLog = Math.max(maxLog, size(file));
      maxOld = Math.max(maxOld, size(`${file}.1`));
      return sup.list()[0]!.phase === 'exited';
    }, { timeoutMs: 15_000, intervalMs: 20 });
    // Soft bound: logMaxBytes plus what one check period lets through (generous for a loaded CI box).
    expect(maxLog).toBeLessThanOrEqual(64 * 1024);
    expect(maxOld).toBeGreaterThanOrEqual(8192);
    expect(maxOld).toBeLessThanOrEqual(64 * 1024);
    expect((await h.status(s.key, 'exited')).logTail).toContain('299');
  });

  it('readLog: the last tailBytes, by default everything up to 64 KiB', async () => {
    const sup = await h.open();
    const s = h.spec(node('for (let i = 0; i < 100; i++) console.log("line " + i)'));
    sup.launch(s);
    const ex = await h.status(s.key, 'exited');
    const all = h.log(ex);
    const tail = { text: '' };
    await collect(sup.readLog(s.key, { tailBytes: 20 }), tail);
    expect(tail.text).toBe(all.slice(-20));
    const whole = { text: '' };
    await collect(sup.readLog(s.key, {}), whole);
    expect(whole.text).toBe(all);
    expect(() => sup.readLog('nope/1/0', {})).toThrow(expect.objectContaining({ code: 'MUSTER_NOT_FOUND' }));
  });

  it('readLog follow: streams new output and ends by itself once the shard exited and all was read', async () => {
    const sup = await h.open();
    const s = h.spec(node('let i = 0; const t = setInterval(() => { console.log("tick " + i); if (++i === 15) clearInterval(t) }, 40)'));
    sup.launch(s);
    const got = { text: '' };
    await collect(sup.readLog(s.key, { follow: true }), got);
    expect(sup.list()[0]!.phase).toBe('exited');
    expect(got.text).toBe(Array.from({ length: 15 }, (_, i) => `tick ${i}\n`).join(''));
  });

  it('readLog follow: ends when aborted', async () => {
    const sup = await h.open();
    const s = h.spec(node('let i = 0; setInterval(() => console.log("tick " + i++), 40)'));
    sup.launch(s);
    await h.status(s.key, 'ready');
    const ac = new AbortController();
    const got = { text: '' };
    const reading = collect(sup.readLog(s.key, { follow: true, signal: ac.signal }), got);
    await waitFor('tick 2', () => got.text.includes('tick 2'), { timeoutMs: 5000, intervalMs: 20 });
    ac.abort();
    await reading;
    expect(sup.list()[0]!.phase).toBe('ready');
    await sup.stop(s.key);
  });

  it('followLog reads across a truncate-copy rotation without losing what it had not read yet', async () => {
    const file = join(h.dataDir, 'f.log');
    writeFileSync(file, 'aaaa\n');
    let done = false;
    const got = { text: '' };
    const reading = collect(followLog(file, { tailBytes: 1 << 20, follow: true, isDone: () => done, pollMs: 300 }), got);
    await waitFor('first read', () => got.text === 'aaaa\n', { timeoutMs: 5000, intervalMs: 20 });
    // While the follower sleeps: more output, then a rotation before it looked.
    appendFileSync(file, 'bbbb\n');
    expect(rotateIfNeeded(file, 8)).toBe(true);
    expect(size(file)).toBe(0);
    appendFileSync(file, 'cc\n');
    await waitFor('after rotation', () => got.text.endsWith('cc\n'), { timeoutMs: 5000, intervalMs: 20 });
    done = true;
    await reading;
    expect(got.text).toBe('aaaa\nbbbb\ncc\n');
  });

  it('readTailRotated: a rotation just before the exit leaves the last lines in <file>.1; they come first, within the bounds', () => {
    const file = join(h.dataDir, 'r.log');
    writeFileSync(`${file}.1`, Array.from({ length: 30 }, (_, i) => `old${i}`).join('\n') + '\n');
    writeFileSync(file, '');
    expect(readTailRotated(file).split('\n')).toEqual(Array.from({ length: 20 }, (_, i) => `old${i + 10}`));
    writeFileSync(file, 'new0\nnew1\n');
    expect(readTailRotated(file).split('\n')).toEqual([...Array.from({ length: 18 }, (_, i) => `old${i + 12}`), 'new0', 'new1']);
    writeFileSync(file, Array.from({ length: 25 }, (_, i) => `new${i}`).join('\n') + '\n');
    expect(readTailRotated(file)).toBe(readTail(file)); // enough in the current file: the copy is not read
  });

  it('readTail keeps at most 20 lines and 4 KiB, never a cut first line', () => {
    const file = join(h.dataDir, 't.log');
    writeFileSync(file, Array.from({ length: 50 }, (_, i) => `l${i}`).join('\n') + '\n');
    expect(readTail(file).split('\n')).toEqual(Array.from({ length: 20 }, (_, i) => `l${i + 30}`));
    writeFileSync(file, Array.from({ length: 10 }, (_, i) => `${i}`.repeat(1000)).join('\n'));
    const t = readTail(file);
    expect(t.length).toBeLessThanOrEqual(4096);
    expect(t.split('\n').every((l) => l.length === 1000)).toBe(true);
    expect(t.endsWith('9'.repeat(1000))).toBe(true);
    expect(readTail(join(h.dataDir, 'missing'))).toBe('');
  });
});

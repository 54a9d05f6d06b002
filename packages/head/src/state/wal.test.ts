/**
 * The embedded store's log and snapshot files under damage: a torn last batch
 * is cut off and the store opens with every acknowledged write; a bad frame
 * with durable records after it refuses to open (MUSTER_STORE_CORRUPT, naming
 * file and offset) unless repairWal is asked for; snapshots larger than one
 * frame are written in several and read back.
 */
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedStore } from './embedded.js';
import type { WalRecord } from './keyspace.js';
import { readSnapshot, snapshotFrames } from './snapshot.js';
import { frame, listDataDir, readFrames, segmentName, snapshotName } from './wal.js';

const enc = (s: string) => new TextEncoder().encode(s);
const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'muster-wal-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function lastSegment(dir: string): Promise<string> {
  return join(dir, segmentName((await listDataDir(dir)).segments.at(-1)!));
}

/** Start offsets of the frames of a whole segment, read from their length fields. */
function frameOffsets(buf: Buffer): number[] {
  const offsets: number[] = [];
  for (let pos = 0; pos < buf.length; pos += 8 + buf.readUInt32LE(pos)) offsets.push(pos);
  return offsets;
}

/** Writes k0..k{n-1}, each awaited on its own: one record, one batch each. */
async function writeOneByOne(dir: string, n: number): Promise<void> {
  const s = await EmbeddedStore.open(dir);
  for (let i = 0; i < n; i++) await s.put(`k${i}`, enc(`v${i}`));
  await s.close();
}

async function openError(dir: string, opts = {}): Promise<Error & { code?: string; details?: Record<string, unknown> }> {
  return EmbeddedStore.open(dir, opts).then(
    async (s) => {
      await s.close();
      throw new Error('the store opened');
    },
    (e: Error) => e,
  );
}

async function keys(dir: string, opts = {}): Promise<string[]> {
  const s = await EmbeddedStore.open(dir, opts);
  const ks = (await s.range('k')).kvs.map((kv) => kv.key);
  await s.close();
  return ks;
}

describe('WAL recovery: torn tail or corruption', () => {
  it('refuses a log whose middle frame is damaged, naming the file and offset', async () => {
    const dir = await tmp();
    await writeOneByOne(dir, 9);
    const seg = await lastSegment(dir);
    const buf = await readFile(seg);
    const offsets = frameOffsets(buf);
    const bad = offsets[4]!; // k4's record; k5..k8 were acknowledged after it was durable
    buf[bad + 8 + 3]! ^= 0x40; // one flipped bit in its payload
    await writeFile(seg, buf);

    const err = await openError(dir);
    expect(err.code).toBe('MUSTER_STORE_CORRUPT');
    expect(err.message).toContain(seg);
    expect(err.message).toContain(`byte ${bad}`);
    expect(err.message).toContain('--repair-wal');
    expect((await stat(seg)).size).toBe(buf.length); // refusing changed nothing
    expect(await openError(dir)).toMatchObject({ code: 'MUSTER_STORE_CORRUPT' }); // and keeps refusing
  });

  it('refuses when the damaged length field hides where the next frame starts', async () => {
    const dir = await tmp();
    await writeOneByOne(dir, 6);
    const seg = await lastSegment(dir);
    const buf = await readFile(seg);
    const bad = frameOffsets(buf)[2]!;
    buf.writeUInt32LE(0xfffffff0, bad); // garbage length: the scan goes byte by byte
    await writeFile(seg, buf);
    expect(await openError(dir)).toMatchObject({ code: 'MUSTER_STORE_CORRUPT', details: { offset: bad } });
  });

  it('repairWal truncates at the bad frame, keeps every record before it and saves what it cut', async () => {
    const dir = await tmp();
    await writeOneByOne(dir, 9);
    const seg = await lastSegment(dir);
    const buf = await readFile(seg);
    const bad = frameOffsets(buf)[4]!;
    buf[bad + 8 + 3]! ^= 0x40;
    await writeFile(seg, buf);

    const warnings: string[] = [];
    expect(await keys(dir, { repairWal: true, onWarning: (m: string) => warnings.push(m) })).toEqual(['k0', 'k1', 'k2', 'k3']);
    expect(warnings.join('\n')).toContain(`truncating at byte ${bad}`);
    expect((await stat(seg)).size).toBe(bad);
    expect((await readFile(`${seg}.dropped-${bad}`)).equals(buf.subarray(bad))).toBe(true);
    expect(await keys(dir)).toEqual(['k0', 'k1', 'k2', 'k3']); // a plain open works again
  });

  it('cuts a last frame torn in half and opens with every earlier write, warning with the offset', async () => {
    const dir = await tmp();
    await writeOneByOne(dir, 5);
    const seg = await lastSegment(dir);
    const buf = await readFile(seg);
    const last = frameOffsets(buf).at(-1)!;
    const cut = last + Math.floor((buf.length - last) / 2);
    await truncate(seg, cut);

    const warnings: { message: string; details: Record<string, unknown> }[] = [];
    expect(await keys(dir, { onWarning: (message: string, details: Record<string, unknown>) => warnings.push({ message, details }) }))
      .toEqual(['k0', 'k1', 'k2', 'k3']);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toContain(`from byte ${last}`);
    expect(warnings[0]!.details).toMatchObject({ file: seg, offset: last, droppedBytes: cut - last });
    expect((await stat(seg)).size).toBe(last);
  });

  it('treats a bad frame followed only by frames of its own (unacknowledged) batch as a torn tail', async () => {
    const dir = await tmp();
    const s = await EmbeddedStore.open(dir);
    await s.put('k0', enc('v0'));
    await Promise.all(Array.from({ length: 5 }, (_, i) => s.put(`k${i + 1}`, enc('batch')))); // one batch, one write
    await s.close();
    const seg = await lastSegment(dir);
    const buf = await readFile(seg);
    const offsets = frameOffsets(buf);
    expect(readFrames<WalRecord>(buf).records.map((r) => r.b)).toEqual([1, 2, 2, 2, 2, 2]);
    // A power cut persisted the batch's later pages but not the one holding k2's record.
    buf.fill(0, offsets[2]!, offsets[3]!);
    await writeFile(seg, buf);

    const warnings: string[] = [];
    expect(await keys(dir, { onWarning: (m: string) => warnings.push(m) })).toEqual(['k0', 'k1']);
    expect(warnings.join()).toContain('torn write');
  });

  it('refuses a bad frame followed by records of a log written before batch numbers existed', async () => {
    const dir = await tmp();
    const old = (s: number, key: string): Buffer => frame({ s, r: s, ch: [[key, enc('v'), null]] } satisfies WalRecord);
    const bad = old(2, 'k1');
    bad[bad.length - 1]! ^= 1;
    await writeFile(join(dir, segmentName(1)), Buffer.concat([old(1, 'k0'), bad, old(3, 'k2')]));
    expect(await openError(dir)).toMatchObject({ code: 'MUSTER_STORE_CORRUPT' });
    await rm(join(dir, segmentName(1)));
    await writeFile(join(dir, segmentName(1)), Buffer.concat([old(1, 'k0'), old(2, 'k1')]));
    expect(await keys(dir)).toEqual(['k0', 'k1']); // an old, undamaged log still loads
  });
  it('refuses a segment that ends badly when a later segment follows it; repair drops that segment, keeping a copy', async () => {
    const dir = await tmp();
    const rec = (s: number, key: string): Buffer => frame({ s, r: s, b: s, ch: [[key, enc('v'), null]] } satisfies WalRecord);
    const torn = rec(2, 'k1').subarray(0, 10);
    await writeFile(join(dir, segmentName(1)), Buffer.concat([rec(1, 'k0'), torn]));
    await writeFile(join(dir, segmentName(2)), rec(3, 'k2'));
    const err = await openError(dir);
    expect(err).toMatchObject({ code: 'MUSTER_STORE_CORRUPT' });
    expect(err.message).toContain('1 more log segment');

    expect(await keys(dir, { repairWal: true, onWarning: () => undefined })).toEqual(['k0']);
    expect((await listDataDir(dir)).segments).toEqual([1]);
    expect(await readFile(join(dir, `${segmentName(2)}.dropped-0`))).toEqual(rec(3, 'k2'));
  });
});

describe('snapshots larger than one frame', () => {
  it('splits the keys into chunks under the limit and reads them back whole', () => {
    const kv = Array.from({ length: 100 }, (_, i) => [`k${String(i).padStart(3, '0')}`, Buffer.alloc(1000, i), i + 1, i + 1, 1, null] as const);
    const state = { v: 1 as const, s: 100, r: 100, g: 2, nl: 3, kv: kv.map((e) => [...e]) as never, ls: [['1', 10]] as [string, number][] };
    const frames = snapshotFrames(state, 10_000);
    expect(frames.length).toBeGreaterThan(10);
    for (const f of frames) expect(f.length).toBeLessThan(10_000 + 1_200);
    expect(readSnapshot(Buffer.concat(frames))).toEqual(state);
    expect(readSnapshot(Buffer.concat(frames.slice(0, -1)))).toMatchObject({ error: expect.stringContaining('key chunks') });
    expect(readSnapshot(frame(state))).toEqual(state); // version 1: the whole state in one frame
  });

  it('the store writes a state larger than one chunk as several frames and reopens it', async () => {
    const dir = await tmp();
    const s = await EmbeddedStore.open(dir, { snapshotBytes: 1 << 20 });
    const value = new Uint8Array(256 * 1024).fill(7);
    for (let i = 0; i < 24; i++) await s.put(`big/${i}`, value); // 6 MiB: more than one 4 MiB chunk
    await s.close();
    const { snapshots } = await listDataDir(dir);
    expect(snapshots.length).toBe(1);
    const snap = await readFile(join(dir, snapshotName(snapshots[0]!)));
    expect(readFrames(snap).records.length).toBeGreaterThan(2); // header + at least two chunks

    const b = await EmbeddedStore.open(dir);
    const { kvs } = await b.range('big/');
    expect(kvs.length).toBe(24);
    expect(kvs.every((kv) => kv.value.length === value.length && kv.value[1000] === 7)).toBe(true);
    await b.close();
    expect((await readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});

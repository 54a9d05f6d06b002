import { spawn, spawnSync } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '@muster/common';
import { describeStoreContract } from './contract.test-suite.js';
import { EmbeddedStore } from './embedded.js';
import { listDataDir, segmentName } from './wal.js';

const enc = (s: string) => new TextEncoder().encode(s);
const text = (v: Uint8Array | undefined) => (v ? Buffer.from(v).toString() : undefined);

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'muster-store-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describeStoreContract('embedded', async () => {
  const dir = await tmp();
  const store = await EmbeddedStore.open(dir);
  return { store, compact: (rev) => store.compact(rev), cleanup: () => store.close() };
});

/** The newest log segment of a data dir. */
async function lastSegment(dir: string): Promise<string> {
  const { segments } = await listDataDir(dir);
  return join(dir, segmentName(segments.at(-1)!));
}

/** Writes k0..k{n-1} one by one (one record each) and closes the store. */
async function writeKeys(dir: string, n: number): Promise<number[]> {
  const s = await EmbeddedStore.open(dir);
  const revs: number[] = [];
  for (let i = 0; i < n; i++) revs.push((await s.put(`k${i}`, enc(`v${i}`))).revision);
  await s.close();
  return revs;
}

describe('EmbeddedStore durability', () => {
  it('keeps keys, revisions, versions and leases across close and reopen', async () => {
    const dir = await tmp();
    const a = await EmbeddedStore.open(dir);
    await a.put('x', enc('1'));
    const r2 = await a.put('x', enc('2'));
    await a.put('gone', enc('g'));
    await a.delete('gone');
    const lease = await a.grantLease(60);
    await a.put('leased', enc('l'), { lease: lease.id });
    const rev = await a.revision();
    await a.close();

    const b = await EmbeddedStore.open(dir);
    expect(await b.revision()).toBe(rev);
    expect(await b.get('x')).toMatchObject({ version: 2, modRevision: r2.revision });
    expect(await b.get('gone')).toBeUndefined();
    expect((await b.get('leased'))?.lease).toBe(lease.id);
    expect((await b.put('y', enc('y'))).revision).toBe(rev + 1);
    const fresh = await b.grantLease(60);
    expect(fresh.id).not.toBe(lease.id);
    await b.close();
  });

  it('drops a torn last record and keeps every complete one; the repaired log takes new writes', async () => {
    const dir = await tmp();
    const revs = await writeKeys(dir, 10);
    const seg = await lastSegment(dir);
    await truncate(seg, (await stat(seg)).size - 3); // crash in the middle of k9's record

    const a = await EmbeddedStore.open(dir);
    expect((await a.range('k')).kvs.map((kv) => kv.key)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7', 'k8']);
    expect(await a.revision()).toBe(revs[8]);
    await a.put('k9', enc('again'));
    await a.close();

    const b = await EmbeddedStore.open(dir);
    expect(text((await b.get('k9'))?.value)).toBe('again');
    expect((await b.range('k')).kvs.length).toBe(10);
    await b.close();
  });

  it('ignores garbage, zero-filled or checksum-failing bytes after the last record', async () => {
    const dir = await tmp();
    await writeKeys(dir, 5);
    const seg = await lastSegment(dir);
    await appendFile(seg, Buffer.from([0x20, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3]));
    let s = await EmbeddedStore.open(dir);
    expect((await s.range('k')).kvs.length).toBe(5);
    await s.close();

    await appendFile(seg, Buffer.alloc(4096)); // what a filesystem may leave after a crash
    s = await EmbeddedStore.open(dir);
    expect((await s.range('k')).kvs.length).toBe(5);
    await s.put('k5', enc('v5'));
    await s.close();

    const buf = await readFile(seg);
    buf[buf.length - 2]! ^= 0xff; // flip a bit inside k5's payload: its checksum fails
    await writeFile(seg, buf);
    s = await EmbeddedStore.open(dir);
    expect((await s.range('k')).kvs.map((kv) => kv.key)).toEqual(['k0', 'k1', 'k2', 'k3', 'k4']);
    await s.close();
  });

  it('snapshots and truncates the log, then recovers from snapshot + log', async () => {
    const dir = await tmp();
    const s = await EmbeddedStore.open(dir, { snapshotBytes: 8 * 1024 });
    const value = enc('v'.repeat(100));
    for (let round = 0; round < 4; round++) {
      await Promise.all(Array.from({ length: 100 }, (_, i) => s.put(`s/${i}`, value)));
    }
    await s.deletePrefix('s/9');
    const rev = await s.revision();
    await s.close();
    expect(s.stats.snapshots).toBeGreaterThan(0);

    const { segments, snapshots } = await listDataDir(dir);
    expect(snapshots.length).toBe(1); // older snapshots and the segments they cover are gone
    expect(segments.length).toBeLessThanOrEqual(2);
    let logBytes = 0;
    for (const g of segments) logBytes += (await stat(join(dir, segmentName(g)))).size;
    expect(logBytes).toBeLessThan(4 * 100 * 130); // far less than the ~400 records written

    const b = await EmbeddedStore.open(dir);
    expect(await b.revision()).toBe(rev);
    const { kvs } = await b.range('s/');
    expect(kvs.length).toBe(89);
    expect(kvs.every((kv) => kv.version === 4)).toBe(true);
    await b.close();
  });

  it('close() flushes pending writes and ends open watches', async () => {
    const dir = await tmp();
    const s = await EmbeddedStore.open(dir);
    const w = await s.watch('');
    const ended = (async () => {
      for await (const _ of w) void _;
    })();
    const pending = s.put('late', enc('x')); // not yet durable when close() starts
    await s.close();
    await pending;
    await ended;
    await expect(s.get('late')).rejects.toMatchObject({ code: 'MUSTER_FAILED_PRECONDITION' });
    const again = await EmbeddedStore.open(dir);
    expect(text((await again.get('late'))?.value)).toBe('x');
    await again.close();
  });

  it('groups writes issued together into one batch (one fdatasync)', async () => {
    const dir = await tmp();
    const s = await EmbeddedStore.open(dir);
    await Promise.all(Array.from({ length: 500 }, (_, i) => s.put(`g/${i}`, enc('x'))));
    expect(s.stats.records).toBe(500);
    expect(s.stats.batches).toBeLessThanOrEqual(2);
    await s.close();
  });

  it('refuses a second open of a locked data dir, naming the holder; outside processes cannot take the lock either', async () => {
    const dir = await tmp();
    const a = await EmbeddedStore.open(dir);
    const err = await EmbeddedStore.open(dir).then(() => undefined, (e: Error & { code?: string }) => e);
    expect(err?.code).toBe('MUSTER_FAILED_PRECONDITION');
    expect(err?.message).toContain(dir);
    expect(err?.message).toContain(`pid ${process.pid}`);
    // flock(1) from another process: the kernel lock, not the file's content, is what refuses it.
    expect(spawnSync('flock', ['--nonblock', join(dir, 'LOCK'), 'true']).status).toBe(1);
    await a.close();
    expect(spawnSync('flock', ['--nonblock', join(dir, 'LOCK'), 'true']).status).toBe(0);
  });

  it('starts on a lock file left by a dead holder, even one naming this very pid (a restarted container)', async () => {
    const dir = await tmp();
    await writeFile(join(dir, 'LOCK'), `pid ${process.pid} on ${hostname()} since 2026-01-01T00:00:00.000Z\n`);
    const b = await EmbeddedStore.open(dir);
    await b.put('k', enc('v'));
    await b.close();
    await writeFile(join(dir, 'LOCK'), `${process.pid}\n`); // the pid file of an older version
    const c = await EmbeddedStore.open(dir);
    expect(text((await c.get('k'))?.value)).toBe('v');
    await c.close();
  });

  it('keeps a bounded watch history; older revisions are compacted', async () => {
    const dir = await tmp();
    const s = await EmbeddedStore.open(dir, { historyRevisions: 5 });
    const revs: number[] = [];
    for (let i = 0; i < 10; i++) revs.push((await s.put('h', enc(String(i)))).revision);
    await expect(s.watch('h', { fromRevision: revs[4]! })).rejects.toMatchObject({ code: 'MUSTER_STORE_COMPACTED' });
    const w = await s.watch('h', { fromRevision: revs[5]! });
    const it = w[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.value?.map((e: { type: string }) => e.type)).toEqual(['put', 'put', 'put', 'put', 'put']);
    await s.close();
  });

  it('restores leases after a restart with their full TTL, then expires them', async () => {
    const dir = await tmp();
    const a = await EmbeddedStore.open(dir);
    const lease = await a.grantLease(1); // kept alive while `a` is open
    await a.put('l/a', enc('a'), { lease: lease.id });
    await a.close();

    const b = await EmbeddedStore.open(dir);
    const opened = Date.now();
    expect((await b.get('l/a'))?.lease).toBe(lease.id);
    await waitFor('the restored lease to expire', async () => (await b.get('l/a')) === undefined);
    expect(Date.now() - opened).toBeGreaterThanOrEqual(900);
    await expect(b.put('l/b', enc('b'), { lease: lease.id })).rejects.toMatchObject({ code: 'MUSTER_NOT_FOUND' });
    await b.close();
  });

  it('after SIGKILL, every acknowledged write is there', async () => {
    const dir = await tmp();
    const work = await tmp();
    const repo = fileURLToPath(new URL('../../../../', import.meta.url));
    // tsx runs the child from source; this tsconfig maps @muster/common to it, as vitest's alias does.
    await writeFile(join(work, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { baseUrl: repo, paths: { '@muster/common': ['packages/common/src/index.ts'] } },
    }));
    await writeFile(join(work, 'writer.mts'), `
      import { EmbeddedStore } from ${JSON.stringify(fileURLToPath(new URL('./embedded.ts', import.meta.url)))};
      const s = await EmbeddedStore.open(${JSON.stringify(dir)});
      let n = 0;
      const writer = async () => { for (;;) { const k = 'c/' + n++; await s.put(k, new TextEncoder().encode(k)); process.stdout.write(k + '\\n'); } };
      for (let i = 0; i < 16; i++) void writer();
    `);
    const child = spawn(process.execPath, ['--import', 'tsx', join(work, 'writer.mts')], {
      cwd: repo,
      env: { ...process.env, TSX_TSCONFIG_PATH: join(work, 'tsconfig.json') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const acked: string[] = [];
    let out = '';
    let errText = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const lines = out.split('\n');
      out = lines.pop()!;
      acked.push(...lines);
    });
    child.stderr.on('data', (d: Buffer) => (errText += d.toString()));
    const exited = new Promise((r) => child.once('exit', r));
    try {
      await waitFor('the child to acknowledge 2,000 writes', () => {
        if (child.exitCode !== null) throw new Error(`writer exited: ${errText}`);
        return acked.length >= 2000;
      }, { timeoutMs: 15_000 });
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const s = await EmbeddedStore.open(dir); // the dead child's flock lock went with it
    const have = new Set((await s.range('c/')).kvs.map((kv) => kv.key));
    expect(acked.filter((k) => !have.has(k))).toEqual([]);
    expect(have.size).toBeGreaterThanOrEqual(acked.length);
    await s.close();
  });
});

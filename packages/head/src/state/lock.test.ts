/**
 * The data-dir lock on its own: flock(2) through flock(1), so any other
 * process taking the same lock (another head, another host's head on a
 * shared volume, a shell's flock) is excluded, and a lock whose holder
 * goes away is reported lost.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lockDataDir } from './lock.js';

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'muster-lock-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('lockDataDir', () => {
  it('is refused while another process holds the flock lock, and taken once it lets go', async () => {
    const dir = await tmp();
    // Another process (as a head on another host would) takes the lock first and holds it until its stdin closes.
    const other = spawn('flock', ['--exclusive', join(dir, 'LOCK'), 'sh', '-c', 'echo held; exec cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise((r) => other.stdout.once('data', r));
    const err = await lockDataDir(dir, 0.2).then(() => undefined, (e: Error & { code?: string }) => e);
    expect(err?.code).toBe('MUSTER_FAILED_PRECONDITION');
    expect(err?.message).toContain(dir);

    const exited = new Promise((r) => other.once('exit', r));
    other.stdin.end();
    await exited;
    const lock = await lockDataDir(dir, 0.2);
    expect(await readFile(join(dir, 'LOCK'), 'utf8')).toContain(`pid ${process.pid} `);
    expect(spawnSync('flock', ['--nonblock', join(dir, 'LOCK'), 'true']).status).toBe(1);
    await lock.release();
    expect(spawnSync('flock', ['--nonblock', join(dir, 'LOCK'), 'true']).status).toBe(0);
  });

  it('reports the lock lost when its holder process dies, and not when it is released', async () => {
    const dir = await tmp();
    const lock = await lockDataDir(dir);
    let lost = false;
    void lock.lost.then(() => (lost = true));
    process.kill(lock.holderPid, 'SIGKILL');
    await lock.lost;
    expect(lost).toBe(true);
    await lock.release();

    const again = await lockDataDir(dir); // nothing left behind
    let lostAgain = false;
    void again.lost.then(() => (lostAgain = true));
    await again.release(); // has seen the holder exit; `lost` would settle within microtasks of that
    await Promise.race([again.lost, new Promise((r) => setImmediate(r))]);
    expect(lostAgain).toBe(false);
  });
});

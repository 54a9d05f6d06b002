import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { procStat, waitFor } from '@muster/common';
import { registryPath } from './registry.js';
import { alive, Harness, node } from './test-support.js';
import type { ShardStatus } from './types.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.cleanup();
});

const registry = (): { shards: { spec: { key: string }; pid: number; phase: string }[] } => JSON.parse(readFileSync(registryPath(h.dataDir), 'utf8'));

describe('adoption after an agent restart', () => {
  it('keeps the rank\'s NATS credential out of shards.json (the rank has it; an adopted rank keeps running with it)', async () => {
    const a = await h.open();
    const s = { ...h.spec(node('setInterval(() => {}, 1000)')), env: { MUSTER_NATS_URL: 'nats://x:4222', MUSTER_NATS_JWT: 'eyJ.jwt.sig', MUSTER_NATS_SEED: 'SUSEED', KEEP: '1' } };
    a.launch(s);
    const ready = await h.status(s.key, 'ready');
    const text = readFileSync(registryPath(h.dataDir), 'utf8');
    expect(text).not.toContain('SUSEED');
    expect(text).not.toContain('eyJ.jwt.sig');
    expect(text).toContain('MUSTER_NATS_URL');
    expect(readFileSync(`/proc/${ready.pid}/environ`, 'utf8')).toContain('MUSTER_NATS_SEED=SUSEED');
    await a.stop(s.key);
    await a.close();
  });

  it('a new supervisor adopts a running shard (same pid, reported on open) and can stop it', async () => {
    const a = await h.open();
    const s = h.spec(node('console.log("up"); setInterval(() => {}, 1000)'));
    a.launch(s);
    const ready = await h.status(s.key, 'ready');
    await waitFor('shard output', () => h.log(ready).includes('up'), { timeoutMs: 5000, intervalMs: 20 });
    expect(registry().shards).toMatchObject([{ spec: { key: s.key }, pid: ready.pid, phase: 'ready' }]);
    expect(statSync(registryPath(h.dataDir)).mode & 0o777).toBe(0o600);
    await a.close();
    expect(alive(ready.pid!)).toBe(true);

    const seen: ShardStatus[] = [];
    const b = await h.open({ onStatus: (st) => seen.push(st) });
    expect(seen).toEqual([expect.objectContaining({ key: s.key, phase: 'ready', pid: ready.pid, logFile: ready.logFile })]);
    expect(b.list()).toHaveLength(1);
    expect(() => b.launch(s)).toThrow(expect.objectContaining({ code: 'MUSTER_ALREADY_EXISTS' }));

    await b.stop(s.key);
    expect(alive(ready.pid!)).toBe(false);
    expect(seen.at(-1)).toMatchObject({ phase: 'exited', reason: 'stopped', stopped: true });
    expect(seen.at(-1)!.logTail).toContain('up');
    expect(registry().shards).toEqual([]);
  });

  it('resumes liveness probes on an adopted shard', async () => {
    const okFile = join(h.dataDir, 'ok');
    writeFileSync(okFile, '');
    const a = await h.open();
    const s = h.spec({
      ...node('setInterval(() => {}, 1000)'),
      env: { OK: okFile },
      liveness: { kind: 'exec', command: '/bin/sh', args: ['-c', 'test -f "$OK"'], periodMs: 50, failureThreshold: 2 },
    });
    a.launch(s);
    const ready = await h.status(s.key, 'ready');
    await a.close();
    const seen: ShardStatus[] = [];
    await h.open({ onStatus: (st) => seen.push(st) });
    rmSync(okFile);
    await waitFor('adopted shard stopped by liveness', () => seen.some((e) => e.phase === 'exited'), { timeoutMs: 8000, intervalMs: 20 });
    expect(seen.at(-1)).toMatchObject({ reason: 'liveness exec /bin/sh failed 2 times', stopped: false });
    expect(alive(ready.pid!)).toBe(false);
  });

  it('sees an adopted shard exit on its own (no longer our child: /proc is polled)', async () => {
    const flag = join(h.dataDir, 'quit');
    const a = await h.open();
    const s = h.spec({ ...node('setInterval(() => { if (require("fs").existsSync(process.env.QUIT)) process.exit(0) }, 30)'), env: { QUIT: flag } });
    a.launch(s);
    await h.status(s.key, 'ready');
    await a.close();
    const seen: ShardStatus[] = [];
    await h.open({ onStatus: (st) => seen.push(st), pollMs: 50 });
    writeFileSync(flag, '');
    await waitFor('exit of adopted shard', () => seen.some((e) => e.phase === 'exited'), { timeoutMs: 8000, intervalMs: 20 });
    expect(seen.at(-1)).toMatchObject({ phase: 'exited', stopped: false, exitCode: undefined });
    expect(seen.at(-1)!.reason).toMatch(/^exited \(status unknown/);
  });

  it('never adopts, nor kills, a process whose pid matches but start time does not', async () => {
    const stranger = spawn('sleep', ['300'], { stdio: 'ignore' });
    const pid = stranger.pid!;
    h.track(pid);
    const gone = spawn('true');
    await new Promise((r) => gone.on('exit', r));
    const spec = h.spec(node('0'));
    const entry = (p: number, startTime: string): object => ({ spec: { ...spec, key: `${spec.gangId}/1/${p}`, rank: p }, pid: p, startTime, logFile: '/tmp/x.log', phase: 'ready', spawnedAt: Date.now() });
    const realStart = procStat(pid)!.startTime;
    writeFileSync(registryPath(h.dataDir), JSON.stringify({ version: 1, shards: [entry(pid, String(Number(realStart) + 1)), entry(gone.pid!, '1')] }));

    const sup = await h.open();
    expect(h.events).toEqual([]);
    expect(sup.list()).toEqual([]);
    expect(registry().shards).toEqual([]);
    await sup.close({ stopShards: true });
    // Nothing must signal it: give a stray kill time to land, then check.
    const exited = await Promise.race([new Promise((r) => stranger.once('exit', () => r(true))), new Promise((r) => setTimeout(() => r(false), 300))]);
    expect(exited).toBe(false);
    expect(alive(pid)).toBe(true);
  });

  it('starts empty from a corrupt registry, with a warning', async () => {
    writeFileSync(registryPath(h.dataDir), '{not json');
    const warnings: string[] = [];
    const sup = await h.open({ log: { info: () => {}, error: () => {}, warn: (_o, msg) => warnings.push(msg ?? '') } });
    expect(sup.list()).toEqual([]);
    expect(warnings.join()).toMatch(/corrupt/);
    expect(registry().shards).toEqual([]);
  });
});

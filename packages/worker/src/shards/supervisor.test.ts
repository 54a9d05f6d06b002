import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, isMusterError, waitFor } from '@muster/common';
import { alive, Harness, node } from './test-support.js';
import type { ShardSpec } from './types.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.cleanup();
});

/** Reads "child <pid>" from a shard's log and tracks that pid. */
async function childPid(key: string): Promise<number> {
  const started = await h.status(key, 'started');
  let pid = 0;
  await waitFor('child pid in log', () => (pid = Number(/child (\d+)/.exec(h.log(started))?.[1] ?? 0)) > 0, { timeoutMs: 5000, intervalMs: 20 });
  h.track(pid);
  return pid;
}

describe('LocalSupervisor: processes', () => {
  it('gives the shard exactly spec.env, plus the agent PATH only when missing', async () => {
    const sup = await h.open();
    const dump = node('process.stdout.write(JSON.stringify(process.env))');
    const a = h.spec({ ...dump, env: { FOO: 'bar', EMPTY: '' } });
    const b = h.spec({ ...dump, env: { PATH: '/nowhere' } });
    sup.launch(a);
    sup.launch(b);
    const ea = await h.status(a.key, 'exited');
    const eb = await h.status(b.key, 'exited');
    expect(JSON.parse(h.log(ea))).toEqual({ FOO: 'bar', EMPTY: '', PATH: process.env.PATH });
    expect(JSON.parse(h.log(eb))).toEqual({ PATH: '/nowhere' });
    expect(ea).toMatchObject({ exitCode: 0, reason: 'exited with code 0', stopped: false });
    expect(h.phases(a.key)).toEqual(['prestart', 'started', 'ready', 'exited']);
  });

  it('reports exit code, reason and the last lines of the log', async () => {
    const sup = await h.open();
    const s = h.spec({ ...node('for (let i = 0; i < 30; i++) console.log("line " + i); process.exitCode = 3') });
    sup.launch(s);
    const ex = await h.status(s.key, 'exited');
    expect(ex).toMatchObject({ phase: 'exited', exitCode: 3, reason: 'exited with code 3', stopped: false });
    expect(ex.logFile).toBe(join(h.dataDir, 'logs', s.gangId, '1', 'rank-0.log'));
    const lines = ex.logTail!.split('\n');
    expect(lines).toHaveLength(20);
    expect(lines[0]).toBe('line 10');
    expect(lines.at(-1)).toBe('line 29');
  });

  it('reports a signal death as "killed by <signal>"', async () => {
    const sup = await h.open();
    const s = h.spec(node('process.kill(process.pid, "SIGKILL")'));
    sup.launch(s);
    expect(await h.status(s.key, 'exited')).toMatchObject({ signal: 'SIGKILL', reason: 'killed by SIGKILL', exitCode: undefined });
  });

  it('stop() reaches the whole process group, grandchildren included', async () => {
    const sup = await h.open();
    const s = h.spec({ command: '/bin/sh', args: ['-c', 'sleep 300 & echo "child $!"; wait'] });
    sup.launch(s);
    const started = await h.status(s.key, 'started');
    const grandchild = await childPid(s.key);
    expect(alive(started.pid!) && alive(grandchild)).toBe(true);
    await sup.stop(s.key);
    expect(alive(started.pid!)).toBe(false);
    expect(alive(grandchild)).toBe(false);
    expect(await h.status(s.key, 'exited')).toMatchObject({ reason: 'stopped', stopped: true });
    expect(h.phases(s.key)).toEqual(['prestart', 'started', 'ready', 'stopping', 'exited']);
  });

  it('SIGKILLs a shard that ignores SIGTERM once the grace period is over', async () => {
    const sup = await h.open();
    const script = 'process.on("SIGTERM", () => console.log("term ignored")); console.log("armed"); setInterval(() => {}, 1000)';
    const s = h.spec({ ...node(script), gracePeriodMs: 500 });
    sup.launch(s);
    const started = await h.status(s.key, 'started');
    await waitFor('handler installed', () => h.log(started).includes('armed'), { timeoutMs: 5000, intervalMs: 20 });
    const t0 = Date.now();
    await sup.stop(s.key, 'drained');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(500);
    expect(alive(started.pid!)).toBe(false);
    const ex = await h.status(s.key, 'exited');
    expect(ex).toMatchObject({ signal: 'SIGKILL', reason: 'drained', stopped: true });
    expect(ex.logTail).toContain('term ignored');
  });

  it('stops the rest of the group when the leader exits on its own', async () => {
    const sup = await h.open();
    const s = h.spec({ command: '/bin/sh', args: ['-c', 'sleep 300 & echo "child $!"; exit 4'] });
    sup.launch(s);
    const grandchild = await childPid(s.key);
    const ex = await h.status(s.key, 'exited');
    expect(ex).toMatchObject({ exitCode: 4, reason: 'exited with code 4', stopped: false });
    expect(alive(grandchild)).toBe(false); // exited is reported only once the group is gone
  });

  it('reports a spawn failure as exited, without a pid', async () => {
    const sup = await h.open();
    const s = h.spec({ command: '/nonexistent/shard', args: [] });
    sup.launch(s);
    const ex = await h.status(s.key, 'exited');
    expect(ex.reason).toMatch(/^spawn failed: .*ENOENT/);
    expect(ex.pid).toBeUndefined();
  });
});

describe('LocalSupervisor: launch rules', () => {
  const bad: [string, (s: ShardSpec) => unknown, string][] = [
    ['empty command', (s) => ({ ...s, command: '' }), 'command'],
    ['readiness port 0', (s) => ({ ...s, readiness: { kind: 'tcp', port: 0 } }), 'readiness.port'],
    ['liveness port 65536', (s) => ({ ...s, liveness: { kind: 'http', port: 65536, path: '/' } }), 'liveness.port'],
    ['http path without /', (s) => ({ ...s, readiness: { kind: 'http', port: 80, path: 'health' } }), 'readiness.path'],
    ['negative period', (s) => ({ ...s, liveness: { kind: 'tcp', port: 80, periodMs: -5 } }), 'liveness.periodMs'],
    ['zero startup deadline', (s) => ({ ...s, startupDeadlineMs: 0 }), 'startupDeadlineMs'],
    ['negative grace', (s) => ({ ...s, gracePeriodMs: -1 }), 'gracePeriodMs'],
    ['tiny logMaxBytes', (s) => ({ ...s, logMaxBytes: 10 }), 'logMaxBytes'],
    ['gangId escaping the log dir', (s) => ({ ...s, gangId: '..', key: '../1/0' }), 'gangId'],
    ['key not gang/attempt/rank', (s) => ({ ...s, key: 'other' }), 'key'],
    ['env value with NUL', (s) => ({ ...s, env: { A: 'x\0y' } }), 'env.A'],
    ['unknown probe kind', (s) => ({ ...s, readiness: { kind: 'grpc', port: 1 } }), 'readiness.kind'],
  ];
  it.each(bad)('rejects %s with MUSTER_INVALID_ARGUMENT naming the field, starting nothing', async (_name, mutate, field) => {
    const sup = await h.open();
    const spec = mutate(h.spec(node('setInterval(() => {}, 1000)'))) as ShardSpec;
    let err: unknown;
    try {
      sup.launch(spec);
    } catch (e) {
      err = e;
    }
    expect(isMusterError(err)).toBe(true);
    expect(err).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, details: { field } });
    expect((err as Error).message).toContain(field);
    expect(h.events).toEqual([]);
    expect(sup.list()).toEqual([]);
    expect(existsSync(join(h.dataDir, 'logs'))).toBe(false);
  });

  it('refuses a duplicate of a running key, and allows it again once exited', async () => {
    const sup = await h.open();
    const s = h.spec(node('setInterval(() => {}, 1000)'));
    sup.launch(s);
    const first = await h.status(s.key, 'ready');
    expect(() => sup.launch(s)).toThrow(expect.objectContaining({ code: ErrorCode.ALREADY_EXISTS }));
    await sup.stop(s.key);
    h.events.length = 0;
    sup.launch(s);
    const second = await h.status(s.key, 'ready');
    expect(second.pid).not.toBe(first.pid);
    expect(sup.list()).toHaveLength(1);
  });

  it('stopGang stops one attempt of a gang in parallel; close({ stopShards }) stops the rest', async () => {
    const sup = await h.open();
    const run = node('setInterval(() => {}, 1000)');
    const specs = [h.spec({ ...run, gangId: 'gx', rank: 0 }), h.spec({ ...run, gangId: 'gx', rank: 1 }), h.spec({ ...run, gangId: 'gx', attempt: 2 })];
    for (const s of specs) sup.launch(s);
    const pids = await Promise.all(specs.map(async (s) => (await h.status(s.key, 'ready')).pid!));
    await sup.stopGang('gx', 1);
    expect(pids.map(alive)).toEqual([false, false, true]);
    expect(sup.list().map((s) => s.phase)).toEqual(['exited', 'exited', 'ready']);
    await sup.stop('no/such/key');
    await sup.close({ stopShards: true });
    expect(alive(pids[2]!)).toBe(false);
    expect(() => sup.launch(h.spec(run))).toThrow(expect.objectContaining({ code: ErrorCode.FAILED_PRECONDITION }));
  });
});

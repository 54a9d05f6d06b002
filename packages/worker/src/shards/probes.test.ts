import { existsSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '@muster/common';
import { alive, freePort, Harness, node } from './test-support.js';

let h: Harness;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.cleanup();
});

/** A node shard that starts an HTTP server on `port` after `delayMs`; /health answers with the code the file CODE holds (200 when absent). */
function httpShard(port: number, delayMs: number): string {
  return `
    const fs = require('fs');
    setTimeout(() => require('http').createServer((q, s) => {
      s.statusCode = q.url === '/health' ? Number(fs.existsSync(process.env.CODE) ? fs.readFileSync(process.env.CODE, 'utf8') : 200) : 404;
      s.end();
    }).listen(${port}, '127.0.0.1', () => console.log('listening')), ${delayMs});`;
}

describe('readiness', () => {
  it('http: ready only once GET /health answers 2xx', async () => {
    const sup = await h.open();
    const port = await freePort();
    const s = h.spec({ ...node(httpShard(port, 300)), env: { CODE: join(h.dataDir, 'code') }, readiness: { kind: 'http', port, path: '/health', periodMs: 50 } });
    sup.launch(s);
    const started = await h.status(s.key, 'started');
    const ready = await h.status(s.key, 'ready');
    expect(ready.pid).toBe(started.pid);
    expect(h.log(ready)).toContain('listening'); // it could not have passed before the server was up
    await sup.stop(s.key);
  });

  it('tcp: ready once the port accepts connections', async () => {
    const sup = await h.open();
    const port = await freePort();
    const script = `setTimeout(() => require('net').createServer(() => {}).listen(${port}, '127.0.0.1', () => console.log('listening')), 300)`;
    const s = h.spec({ ...node(script), readiness: { kind: 'tcp', port, periodMs: 50 } });
    sup.launch(s);
    expect(h.log(await h.status(s.key, 'ready'))).toContain('listening');
  });

  it('exec: ready once the command exits 0, run with the shard environment', async () => {
    const sup = await h.open();
    const flag = join(h.dataDir, 'ready-flag');
    const s = h.spec({
      ...node('setTimeout(() => require("fs").writeFileSync(process.env.FLAG, "x"), 300); setInterval(() => {}, 1000)'),
      env: { FLAG: flag },
      readiness: { kind: 'exec', command: '/bin/sh', args: ['-c', 'test -f "$FLAG"'], periodMs: 50 },
    });
    sup.launch(s);
    await h.status(s.key, 'ready');
    expect(existsSync(flag)).toBe(true);
  });

  it('exec: a probe past its timeout is killed with everything it forked', async () => {
    const sup = await h.open();
    const pidFile = join(h.dataDir, 'probe-child');
    // The probe's shell starts a sleep and waits for it: killing the shell alone would leave the sleep running.
    const s = h.spec({
      ...node('setInterval(() => {}, 1000)'),
      readiness: { kind: 'exec', command: '/bin/sh', args: ['-c', 'sleep 30 & echo $! > "$0"; wait', pidFile], periodMs: 60_000, timeoutMs: 300 },
    });
    sup.launch(s);
    const pid = await waitFor('the probe started its child', () => (existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim()) || undefined, { timeoutMs: 5_000, intervalMs: 20 });
    h.track(Number(pid));
    await waitFor('the probe\'s child killed', () => !alive(Number(pid)), { timeoutMs: 5_000, intervalMs: 20 });
  });

  it('sdk: ready when the shard sends { muster: "ready" } over IPC', async () => {
    const sup = await h.open();
    const s = h.spec({ ...node('setTimeout(() => { console.log("sending"); process.send({ muster: "ready" }) }, 300); setInterval(() => {}, 1000)'), readiness: { kind: 'sdk' } });
    sup.launch(s);
    expect(h.log(await h.status(s.key, 'ready'))).toContain('sending');
  });

  it.each([
    ['tcp', 'tcp'] as const,
    ['sdk', 'sdk'] as const,
  ])('startup deadline: a %s readiness that never passes stops the shard with the reason', async (_n, kind) => {
    const sup = await h.open();
    const port = await freePort();
    const s = h.spec({ ...node('setInterval(() => {}, 1000)'), startupDeadlineMs: 800, gracePeriodMs: 500, readiness: kind === 'tcp' ? { kind, port, periodMs: 50 } : { kind } });
    sup.launch(s);
    const started = await h.status(s.key, 'started');
    const ex = await h.status(s.key, 'exited');
    const probe = kind === 'tcp' ? `tcp :${port}` : 'sdk';
    expect(ex).toMatchObject({ reason: `startup deadline 800 ms passed (readiness ${probe} never passed)`, stopped: false });
    expect(h.phases(s.key)).toEqual(['prestart', 'started', 'stopping', 'exited']);
    expect(alive(started.pid!)).toBe(false);
  });
});

describe('liveness', () => {
  it('exec: keeps a passing shard, stops it after failureThreshold consecutive failures', async () => {
    const sup = await h.open();
    const okFile = join(h.dataDir, 'alive');
    const count = join(h.dataDir, 'probes');
    writeFileSync(okFile, '');
    const s = h.spec({
      ...node('setInterval(() => {}, 1000)'),
      env: { OK: okFile, COUNT: count },
      liveness: { kind: 'exec', command: '/bin/sh', args: ['-c', 'echo >> "$COUNT"; test -f "$OK"'], periodMs: 50, failureThreshold: 3 },
    });
    sup.launch(s);
    const ready = await h.status(s.key, 'ready');
    const probes = (): number => (existsSync(count) ? readFileSync(count, 'utf8').length : 0);
    await waitFor('five passing probes', () => probes() >= 5, { timeoutMs: 5000, intervalMs: 20 });
    expect(sup.list()[0]!.phase).toBe('ready');
    rmSync(okFile);
    const ex = await h.status(s.key, 'exited');
    expect(ex).toMatchObject({ reason: 'liveness exec /bin/sh failed 3 times', stopped: false });
    expect(alive(ready.pid!)).toBe(false);
  });

  it('http: a 5xx health endpoint fails liveness', async () => {
    const sup = await h.open();
    const port = await freePort();
    const code = join(h.dataDir, 'code');
    const s = h.spec({
      ...node(httpShard(port, 0)),
      env: { CODE: code },
      readiness: { kind: 'http', port, path: '/health', periodMs: 50 },
      liveness: { kind: 'http', port, path: '/health', periodMs: 50, failureThreshold: 2 },
    });
    sup.launch(s);
    await h.status(s.key, 'ready');
    writeFileSync(code, '503');
    expect(await h.status(s.key, 'exited')).toMatchObject({ reason: `liveness http :${port}/health failed 2 times` });
  });

  it('sdk: a shard that closes its IPC channel fails liveness', async () => {
    const sup = await h.open();
    const script = 'process.send({ muster: "ready" }); setTimeout(() => process.disconnect(), 300); setInterval(() => {}, 1000)';
    const s = h.spec({ ...node(script), readiness: { kind: 'sdk' }, liveness: { kind: 'sdk', periodMs: 50 } });
    sup.launch(s);
    await h.status(s.key, 'ready');
    expect(await h.status(s.key, 'exited')).toMatchObject({ reason: 'liveness sdk failed 3 times', stopped: false });
  });
});

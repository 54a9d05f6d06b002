/**
 * Warm-up on the worker: the supervisor reports a rank ready only after its
 * warm-up passed, runs the requests in order (call over IPC, http, exec),
 * fails the rank with a reason naming the request, and times the whole
 * warm-up out. Real child processes (node -e), a real HTTP server.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '@muster/common';
import { alive, Harness, node } from './test-support.js';
import type { WarmupSpec } from './types.js';

let h: Harness;
let http: Server | undefined;
beforeEach(() => {
  h = new Harness();
});
afterEach(async () => {
  await h.cleanup();
  await new Promise((r) => (http ? http.close(r) : r(undefined)));
  http = undefined;
});

/** An HTTP server that records each request (method, path, body) and answers `status`. */
async function recorder(status: (path: string) => number): Promise<{ port: number; seen: string[] }> {
  const seen: string[] = [];
  http = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${body}`);
      res.statusCode = status(req.url ?? '');
      res.end('ok');
    });
  });
  await new Promise<void>((r) => http!.listen(0, '127.0.0.1', r));
  return { port: (http.address() as { port: number }).port, seen };
}

/**
 * A rank that answers warm-up calls as serve() does (the IPC protocol of
 * @muster/contracts warmup.ts) and logs each payload; a payload with
 * `fail` makes its handler throw.
 */
const ipcRank = node(`
  process.on('message', (m) => {
    if (m.muster !== 'warmup-call') return;
    const p = JSON.parse(m.json);
    console.log('call ' + JSON.stringify(p));
    console.log('time left ' + (m.timeoutMs > 0 && m.timeoutMs <= 10000 ? 'within the warm-up timeout' : m.timeoutMs));
    setTimeout(() => process.send(p.fail ? { muster: 'warmup-result', id: m.id, ok: false, error: 'model not loaded' } : { muster: 'warmup-result', id: m.id, ok: true }), 20);
  });
  process.on('disconnect', () => console.log('channel closed'));
  process.send({ muster: 'serving' });
  setInterval(() => {}, 1000);
`);

describe('warm-up before ready', () => {
  it('runs call, http and exec requests in order, then reports ready with the time they took', async () => {
    const { port, seen } = await recorder(() => 200);
    const sup = await h.open();
    const warmup: WarmupSpec = {
      timeoutMs: 10_000,
      requests: [
        { kind: 'call', stream: false, json: '{"n":1}' },
        { kind: 'http', port, method: 'POST', path: '/v1/completions', headers: { 'content-type': 'application/json' }, body: '{"prompt":"hi"}', expectStatus: 0 },
        { kind: 'exec', command: 'sh', args: ['-c', 'echo exec-ran'] },
        { kind: 'call', stream: false, json: '{"n":2}' },
      ],
    };
    const s = h.spec({ ...ipcRank, warmup });
    sup.launch(s);
    const ready = await h.status(s.key, 'ready');
    expect(ready.warmupMs).toBeGreaterThan(0);
    expect(h.phases(s.key)).toEqual(['prestart', 'started', 'ready']);
    expect(h.log(ready).match(/call .*/g)).toEqual(['call {"n":1}', 'call {"n":2}']);
    expect(seen).toEqual(['POST /v1/completions {"prompt":"hi"}']);
    // Each call carried the warm-up's time left, the handler's deadline.
    expect(h.log(ready).match(/time left .*/g)).toEqual(['time left within the warm-up timeout', 'time left within the warm-up timeout']);
    // Warm-up and readiness done, liveness not sdk: the agent closed the IPC channel.
    await waitFor('the channel closed', () => h.log(ready).includes('channel closed'), { timeoutMs: 5_000, intervalMs: 20 });
  });

  it('keeps the IPC channel open after the warm-up when liveness is sdk', async () => {
    const sup = await h.open();
    // The rank also says "ready" (sdk liveness passes only once it has).
    const s = h.spec({ command: ipcRank.command, args: ['-e', `${ipcRank.args[1]}; process.send({ muster: 'ready' });`], liveness: { kind: 'sdk', periodMs: 50 }, warmup: { timeoutMs: 10_000, requests: [{ kind: 'call', stream: false, json: '{"n":1}' }] } });
    sup.launch(s);
    const ready = await h.status(s.key, 'ready');
    // Liveness sdk passes only while the channel is connected: ten periods later, the rank is still up and never closed.
    await new Promise((r) => setTimeout(r, 500));
    expect(h.phases(s.key)).toEqual(['prestart', 'started', 'ready']);
    expect(h.log(ready)).not.toContain('channel closed');
  });

  it('fails the rank when a request fails, naming the request and what went wrong; nothing after it runs', async () => {
    const { port, seen } = await recorder((p) => (p === '/bad' ? 503 : 200));
    const sup = await h.open();
    const s = h.spec({
      ...ipcRank,
      warmup: { timeoutMs: 10_000, requests: [
        { kind: 'http', port, method: 'GET', path: '/bad', headers: {}, body: '', expectStatus: 0 },
        { kind: 'http', port, method: 'GET', path: '/never', headers: {}, body: '', expectStatus: 0 },
      ] },
    });
    sup.launch(s);
    const ex = await h.status(s.key, 'exited');
    expect(ex.reason).toBe(`warm-up request 1 of 2 (http GET :${port}/bad) failed: status 503, expected 2xx`);
    expect(ex.stopped).toBe(false);
    expect(h.phases(s.key)).not.toContain('ready');
    expect(seen).toEqual(['GET /bad ']);
  });

  it("names a handler's error for a call, and an exec's exit code", async () => {
    const sup = await h.open();
    const call = h.spec({ ...ipcRank, warmup: { timeoutMs: 10_000, requests: [{ kind: 'call', stream: false, json: '{"fail":true}' }] } });
    // A rank with no IPC channel (no sdk readiness or liveness, no call warm-up): ipcRank's own
    // process.send would throw there, and on a loaded machine it crashed before `exit 7` was seen.
    const exec = h.spec({ ...node('setInterval(() => {}, 1000)'), warmup: { timeoutMs: 10_000, requests: [{ kind: 'exec', command: 'sh', args: ['-c', 'exit 7'] }] } });
    sup.launch(call);
    sup.launch(exec);
    expect((await h.status(call.key, 'exited')).reason).toBe('warm-up request 1 of 1 (call) failed: the handler failed: model not loaded');
    expect((await h.status(exec.key, 'exited')).reason).toBe('warm-up request 1 of 1 (exec sh) failed: exited with code 7');
  });

  it('times the whole warm-up out, past the startup deadline it no longer counts against', async () => {
    const sup = await h.open();
    // Never says "serving": the call waits until the warm-up's timeout, which is longer than the startup deadline.
    const s = h.spec({ ...node('setInterval(() => {}, 1000)'), startupDeadlineMs: 300, warmup: { timeoutMs: 900, requests: [{ kind: 'call', stream: false, json: '1' }] } });
    sup.launch(s);
    const ex = await h.status(s.key, 'exited');
    expect(ex.reason).toBe('warm-up request 1 of 1 (call) did not finish within the warm-up timeout (900 ms): serve() never started in the rank');
  });

  it('kills an exec request past the timeout with everything it forked', async () => {
    const sup = await h.open();
    const pidFile = join(h.dataDir, 'warmup-child');
    const s = h.spec({ ...node('setInterval(() => {}, 1000)'), warmup: { timeoutMs: 800, requests: [{ kind: 'exec', command: '/bin/sh', args: ['-c', 'sleep 30 & echo $! > "$0"; wait', pidFile] }] } });
    sup.launch(s);
    const ex = await h.status(s.key, 'exited');
    expect(ex.reason).toBe('warm-up request 1 of 1 (exec /bin/sh) did not finish within the warm-up timeout (800 ms)');
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    h.track(pid);
    await waitFor('the request\'s child killed', () => !alive(pid), { timeoutMs: 5_000, intervalMs: 20 });
  });
});

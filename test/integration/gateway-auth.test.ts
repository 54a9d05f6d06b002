/**
 * The gateway's trust boundary end to end: a real `muster gateway` (HTTPS
 * with the PKI's gateway certificate, API keys made by `muster gateway key
 * create`) in front of a real cluster, asked with real HTTP requests —
 * 401 (no key, wrong key), 403 (a group the key may not call), 413 (a 20 MB
 * body, declared or streamed), 429 (a key over its rate), and keys rotated
 * without a restart (file change and SIGHUP).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { ensureClusterPki, pairPaths, PKI_FILES } from '@muster/common/pki';
import type { Cluster } from '@muster/sdk';
import { spawnManaged, waitFor, type LocalCluster, type ManagedProcess } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const replica = fileURLToPath(new URL('../fixtures/replica.mjs', import.meta.url));
const cli = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * One HTTPS request trusting only `ca`. `upload` streams `bytes` of body without a Content-Length,
 * 64 KiB at a time, and after `pauseAfter` bytes waits for the answer before writing more: a
 * client still writing when the gateway closes on it could lose the answer to EPIPE.
 */
function call(url: string, ca: Buffer, opts: { headers?: Record<string, string>; body?: string; upload?: { bytes: number; pauseAfter: number } } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(url, { method: 'POST', ca, headers: opts.headers ?? {} }, (res) => {
      answered = true;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', (e) => (answered ? undefined : reject(e))); // the rest of a refused upload may fail to send
    const upload = opts.upload;
    if (!upload) return void req.end(opts.body ?? '{}');
    const response = new Promise((r) => req.once('response', r));
    void (async () => {
      for (let sent = 0; sent < upload.bytes && !answered; sent += 64 * 1024) {
        if (sent >= upload.pauseAfter) await response;
        else if (!req.write(Buffer.alloc(64 * 1024, 0x20))) await new Promise((r) => req.once('drain', r));
      }
      if (!answered) req.end();
    })();
  });
}

describe('gateway: API keys, rights, rate and size limits, HTTPS', () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  useCluster({ workers: 1 }, (fx) => ({ cluster, sdk } = fx));

  it('serves only key holders, each to its groups and rate, over HTTPS the cluster CA verifies', async () => {
    const pki = await ensureClusterPki(join(cluster.dataDir, 'pki'));
    const ca = readFileSync(pairPaths(pki, PKI_FILES.ca).cert);
    const tls = pairPaths(pki, PKI_FILES.gateway);
    const keysFile = join(cluster.dataDir, 'gateway-keys.yaml');
    const env = { ...cluster.clientEnv(), MUSTER_GATEWAY_KEYS_FILE: keysFile };
    const newKey = async (...args: string[]) => (await execa(process.execPath, [cli, 'gateway', 'key', 'create', ...args], { env })).stdout.trim();
    const web = await newKey('--name', 'web', '--groups', 'echo');
    const slow = await newKey('--name', 'slow', '--groups', '*', '--rate', '0.01', '--burst', '1');
    expect(readFileSync(keysFile, 'utf8')).not.toContain(web);

    // Without a keys file the gateway does not start, unless told --no-auth.
    const refused = await execa(process.execPath, [cli, 'gateway', '--listen', '127.0.0.1:0'], { env: { ...env, MUSTER_GATEWAY_KEYS_FILE: '' }, reject: false });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/needs API keys: --keys-file FILE .* or --no-auth/);

    const g = await sdk.replicaGroups.apply({ name: 'echo', resources: { gpus: 1 }, template: { command: process.execPath, args: [replica], readiness: { kind: 'sdk' } }, replicas: { initial: 1, max: 1 } });
    await waitFor('a ready echo replica', async () => ((await g.refresh()).replicas.some((r) => r.state === 'ready') ? true : undefined), { timeoutMs: 30_000 });

    const gw: ManagedProcess = spawnManaged('gateway', process.execPath, [cli, 'gateway', '--listen', '127.0.0.1:0', '--tls-cert', tls.cert, '--tls-key', tls.key, '--max-body-bytes', String(1024 * 1024)], { env });
    try {
      const ready = JSON.parse(await gw.waitForLine((l) => l.includes('gateway ready'))) as { url: string };
      expect(ready.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const echo = `${ready.url}/v1/groups/echo/call`;

      // HTTPS: the CA verifies the gateway's certificate; a client that does not trust the CA refuses it.
      const ok = await call(echo, ca, { headers: { authorization: `Bearer ${web}` }, body: '{"hello":1}' });
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.body)).toMatchObject({ echo: { hello: 1 } });
      expect((await call(echo, ca, { headers: { 'x-api-key': web }, body: '{"n":2}' })).status).toBe(200);
      const untrusted = await execa('curl', ['-sS', '-X', 'POST', '-d', '{}', '-H', `authorization: Bearer ${web}`, echo], { reject: false });
      expect(untrusted.exitCode).toBe(60); // curl: peer certificate cannot be authenticated with known CA certificates
      const curlOk = await execa('curl', ['-sS', '--cacert', pairPaths(pki, PKI_FILES.ca).cert, '-X', 'POST', '-d', '{"c":1}', '-H', `x-api-key: ${web}`, echo]);
      expect(JSON.parse(curlOk.stdout)).toMatchObject({ echo: { c: 1 } });

      // 401: no key, a wrong key; with WWW-Authenticate and a JSON error.
      const none = await call(echo, ca);
      expect(none.status).toBe(401);
      expect(none.headers['www-authenticate']).toBe('Bearer realm="muster-gateway"');
      expect(JSON.parse(none.body)).toMatchObject({ error: { code: 'MUSTER_UNAUTHENTICATED', message: expect.stringMatching(/missing API key/) } });
      const wrong = await call(echo, ca, { headers: { authorization: `Bearer mgw_${randomBytes(32).toString('base64url')}` } });
      expect(wrong.status).toBe(401);
      expect(JSON.parse(wrong.body)).toMatchObject({ error: { message: 'unknown API key' } });

      // 403: web may call echo only (whether the other group exists or not).
      const denied = await call(`${ready.url}/v1/groups/other/call`, ca, { headers: { authorization: `Bearer ${web}` } });
      expect(denied.status).toBe(403);
      expect(JSON.parse(denied.body)).toMatchObject({ error: { code: 'MUSTER_PERMISSION_DENIED', message: expect.stringMatching(/"web" may not call group "other"/) } });

      // 429: slow has one request, then one per 100 s.
      expect((await call(echo, ca, { headers: { authorization: `Bearer ${slow}` } })).status).toBe(200);
      const limited = await call(echo, ca, { headers: { authorization: `Bearer ${slow}` } });
      expect(limited.status).toBe(429);
      expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(90);
      expect(JSON.parse(limited.body)).toMatchObject({ error: { message: expect.stringMatching(/"slow" is over its rate of 0.01\/s/) } });

      // 413: a 20 MB body, declared (curl waits for 100-continue and never uploads it) and streamed without a length.
      const bigFile = join(cluster.dataDir, 'big.json');
      await writeFile(bigFile, `"${'x'.repeat(20 * 1024 * 1024)}"`);
      const big = await execa('curl', ['-sS', '--expect100-timeout', '30', '--cacert', pairPaths(pki, PKI_FILES.ca).cert, '-w', '\n%{http_code} %{size_upload}', '-H', `authorization: Bearer ${web}`, '--data-binary', `@${bigFile}`, echo]);
      const lines = big.stdout.split('\n');
      const [bigBody, bigStatus] = [lines[0], lines.at(-1)];
      expect(bigStatus!.split(' ')[0]).toBe('413');
      expect(Number(bigStatus!.split(' ')[1])).toBeLessThan(1024 * 1024); // refused before the upload
      expect(JSON.parse(bigBody!)).toMatchObject({ error: { code: 'MUSTER_RESOURCE_EXHAUSTED', message: expect.stringMatching(/Content-Length 20971522 is over the gateway's limit of 1048576 bytes/) } });
      // Streamed without a length, the gateway stops reading past the limit, answers 413 and closes:
      // a client still writing at that moment may see the reset before it reads the answer (as with
      // any HTTP server that will not read an oversized upload to its end). Either way, nothing passes.
      const streamed = await call(echo, ca, { headers: { authorization: `Bearer ${web}`, 'transfer-encoding': 'chunked' }, upload: { bytes: 20 * 1024 * 1024, pauseAfter: 2 * 1024 * 1024 } })
        .catch((e: NodeJS.ErrnoException) => (e.code === 'EPIPE' || e.code === 'ECONNRESET' ? undefined : Promise.reject(e)));
      if (streamed) {
        expect(streamed.status).toBe(413);
        expect(streamed.body).toMatch(/the body \(\d+ bytes so far\) is over the gateway's limit/);
      }
      expect((await call(echo, ca, { headers: { authorization: `Bearer ${web}` } })).status).toBe(200); // still serving

      // Rotation without a restart: a removed key is refused once the gateway sees the file change ...
      await execa(process.execPath, [cli, 'gateway', 'key', 'rm', '--name', 'web'], { env });
      await waitFor('web refused', async () => ((await call(echo, ca, { headers: { authorization: `Bearer ${web}` } })).status === 401 ? true : undefined), { timeoutMs: 10_000, intervalMs: 200 });
      // ... and a new one is served at once after SIGHUP.
      const web2 = await newKey('--name', 'web', '--groups', 'echo');
      const reloaded = gw.waitForLine((l) => l.includes('gateway reloaded'));
      gw.signal('SIGHUP');
      await reloaded;
      expect((await call(echo, ca, { headers: { authorization: `Bearer ${web2}` } })).status).toBe(200);
      // A broken keys file changes nothing: the keys it had still work.
      await writeFile(keysFile, 'keys: [ {name: x} ]\n');
      const failed = gw.waitForLine((l) => l.includes('gateway reload failed'));
      gw.signal('SIGHUP');
      expect(await failed).toMatch(/keys\[0\]\.sha256/);
      expect((await call(echo, ca, { headers: { authorization: `Bearer ${web2}` } })).status).toBe(200);
    } finally {
      await gw.stop();
    }
  });
});

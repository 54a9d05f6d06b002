/**
 * The gateway's door in front of a stand-in cluster (the real one is in
 * test/integration/gateway-auth.test.ts): what reaches a replica group, and
 * what is refused before anything does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Cluster } from '@muster/sdk';
import { startGateway, type Gateway } from './gateway.js';
import { createKey } from './gateway-keys.js';

/**
 * A cluster whose every group answers with what it was sent: a unary call
 * as the HTTP bridge would, a stream as the bridge's `head: true` stream
 * (status and headers, then the body's bytes). It lists groups `echo` and `llm`.
 */
function standIn(calls: unknown[]): Cluster {
  const group = {
    call: (payload: unknown) => {
      calls.push(payload);
      return Promise.resolve({ status: 200, headers: { 'content-type': 'application/json' }, body: { got: payload } });
    },
    stream: async function* (payload: unknown) {
      calls.push(payload);
      yield await Promise.resolve({ status: 200, headers: { 'content-type': 'application/json' } });
      yield new TextEncoder().encode(JSON.stringify({ got: payload }));
    },
    close: () => undefined,
  };
  const listed = (name: string) => ({ toJSON: () => ({ name, deleting: false, replicas: [{ state: 'ready' }], replicasByState: { ready: 1 }, spec: { httpPort: 'http', models: [] } }) });
  return { replicaGroups: { get: () => Promise.resolve(group), list: () => Promise.resolve([listed('echo'), listed('llm')]) } } as unknown as Cluster;
}

/** POSTs with a declared `size` and no `Expect`, sends the headers and one 64 KiB chunk, and waits for the answer. */
function upload(url: string, size: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(url, { method: 'POST', headers: { 'content-length': String(size) } }, (res) => {
      answered = true;
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', (e) => (answered ? undefined : reject(e)));
    req.write(Buffer.alloc(64 * 1024, 0x20)); // and not another byte until the gateway answers
  });
}

describe('the gateway', () => {
  let dir: string;
  let gw: Gateway | undefined;
  beforeEach(async () => (dir = await mkdtemp(join(tmpdir(), 'gateway-'))));
  afterEach(async () => {
    await gw?.close();
    gw = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it('does not start without a keys file unless told to serve everyone', async () => {
    await expect(startGateway(standIn([]), { listen: { host: '127.0.0.1', port: 0 } })).rejects.toThrow(/needs --keys-file .* or --no-auth/);
    await expect(startGateway(standIn([]), { listen: { host: '127.0.0.1', port: 0 }, keysFile: join(dir, 'none.yaml') })).rejects.toThrow(/cannot read keys file/);
  });

  it('answers /healthz without a key; passes on no gateway key to an HTTP shard, but the shard\'s own authorization header', async () => {
    const keysFile = join(dir, 'keys.yaml');
    const key = await createKey(keysFile, { name: 'web', groups: ['llm'] });
    const calls: unknown[] = [];
    gw = await startGateway(standIn(calls), { listen: { host: '127.0.0.1', port: 0 }, keysFile });
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
    const viaBearer = await fetch(`${gw.url}/v1/groups/llm/http/v1/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{}' });
    expect(viaBearer.status).toBe(200);
    const viaApiKey = await fetch(`${gw.url}/v1/groups/llm/http/v1/completions`, { method: 'POST', headers: { 'x-api-key': key, authorization: 'Bearer shard-own-key' }, body: '{}' });
    expect(viaApiKey.status).toBe(200);
    expect(viaApiKey.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(calls).toMatchObject([
      { method: 'POST', path: '/v1/completions', headers: { accept: '*/*', 'content-type': 'application/json' }, body: Buffer.from('{}'), head: true },
      { method: 'POST', path: '/v1/completions', headers: { accept: '*/*', 'content-type': 'text/plain;charset=UTF-8', authorization: 'Bearer shard-own-key' }, body: Buffer.from('{}'), head: true },
    ]);
    expect((calls[0] as { headers: Record<string, string> }).headers.authorization).toBeUndefined();
    expect(JSON.stringify(calls)).not.toContain(key);
  });

  it('answers 413 to a declared 20 MB body before it is uploaded', async () => {
    const calls: unknown[] = [];
    gw = await startGateway(standIn(calls), { listen: { host: '127.0.0.1', port: 0 }, noAuth: true, maxBodyBytes: 1024 * 1024 });
    const r = await upload(`${gw.url}/v1/groups/echo/call`, 20 * 1024 * 1024);
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'MUSTER_RESOURCE_EXHAUSTED', message: expect.stringMatching(/Content-Length 20971520 is over the gateway's limit of 1048576 bytes/) } });
    expect(calls).toEqual([]);
  });
});

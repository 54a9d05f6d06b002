import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Server, makeGenericClientConstructor, type ServiceDefinition, type ServerUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { ensureClusterPki, ensureNodeCert, pairPaths, PKI_FILES, issueCert, readPair } from './pki.js';
import { grpcChannelCredentials, grpcServerCredentials, identityOf } from './tls.js';

const passthrough = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
const service = { whoami: { path: '/test.T/WhoAmI', requestStream: false, responseStream: false, ...passthrough } } as unknown as ServiceDefinition;
const Client = makeGenericClientConstructor(service, 'T');

describe('cluster PKI and mutual TLS', () => {
  let dir: string;
  let server: Server;
  let port: number;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'muster-pki-'));
    await ensureClusterPki(dir, { nodes: ['n1'] });
    server = new Server();
    server.addService(service, {
      whoami: (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => {
        cb(null, Buffer.from(JSON.stringify(identityOf(call.getAuthContext()?.sslPeerCertificate) ?? null)));
      },
    });
    const head = pairPaths(dir, PKI_FILES.head);
    const creds = grpcServerCredentials({ ca: pairPaths(dir, PKI_FILES.ca).cert, cert: head.cert, key: head.key });
    port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? reject(e) : resolve(p))));
  });
  afterAll(async () => {
    server?.forceShutdown();
    await rm(dir, { recursive: true, force: true });
  });

  function whoami(files: { cert?: string; key?: string }, host = '127.0.0.1'): Promise<unknown> {
    const c = new Client(`${host}:${port}`, grpcChannelCredentials({ ca: pairPaths(dir, PKI_FILES.ca).cert, ...files }));
    return new Promise((resolve, reject) => {
      c.makeUnaryRequest('/test.T/WhoAmI', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), { deadline: Date.now() + 5_000 }, (e, res) => {
        c.close();
        if (e) reject(e);
        else resolve(JSON.parse(res!.toString()));
      });
    });
  }

  it('keeps keys private and the directory closed', async () => {
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(pairPaths(dir, PKI_FILES.ca).key)).mode & 0o777).toBe(0o600);
    expect((await stat(pairPaths(dir, 'nodes/n1').key)).mode & 0o777).toBe(0o600);
  });

  it('tells the server who the client is: admin, node, or nobody', async () => {
    expect(await whoami(pairPaths(dir, PKI_FILES.admin))).toEqual({ role: 'admin', name: 'admin', callGroups: 'all' });
    const node = await ensureNodeCert(dir, 'n2');
    expect(await whoami(node)).toEqual({ role: 'node', name: 'n2', callGroups: [] });
    expect(await whoami({})).toBeNull();
  });

  it('carries call rights as URI SANs', async () => {
    const ca = await readPair(dir, PKI_FILES.ca);
    const pair = await issueCert(ca, { role: 'caller', name: 'app, the "front"', callGroups: ['llm', 'embed'] });
    const { writePair } = await import('./pki.js');
    await writePair(dir, 'app', pair);
    expect(await whoami(pairPaths(dir, 'app'))).toEqual({ role: 'caller', name: 'app, the "front"', callGroups: ['llm', 'embed'] });
  });

  it('refuses a server certificate that does not name the dialled address', async () => {
    await expect(whoami(pairPaths(dir, PKI_FILES.admin), 'localhost.localdomain')).rejects.toThrow();
  });

  it('refuses a server of the same CA whose role is not head', async () => {
    const node = await ensureNodeCert(dir, 'evil');
    const ca = await readPair(dir, PKI_FILES.ca);
    const fake = await issueCert(ca, { role: 'node', name: 'evil', hosts: ['127.0.0.1'] });
    const { writePair } = await import('./pki.js');
    await writePair(dir, 'evil-server', fake);
    const s = new Server();
    const creds = grpcServerCredentials({ ca: pairPaths(dir, PKI_FILES.ca).cert, ...pairPaths(dir, 'evil-server') });
    const p = await new Promise<number>((resolve, reject) => s.bindAsync('127.0.0.1:0', creds, (e, q) => (e ? reject(e) : resolve(q))));
    s.addService(service, { whoami: (_c: unknown, cb: sendUnaryData<Buffer>) => cb(null, Buffer.from('null')) });
    try {
      const c = new Client(`127.0.0.1:${p}`, grpcChannelCredentials({ ca: pairPaths(dir, PKI_FILES.ca).cert, ...node }));
      const err = await new Promise<Error | null>((resolve) =>
        c.makeUnaryRequest('/test.T/WhoAmI', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), { deadline: Date.now() + 5_000 }, (e) => {
          c.close();
          resolve(e);
        }),
      );
      expect(err?.message).toMatch(/UNAVAILABLE|role node, not head/);
    } finally {
      s.forceShutdown();
    }
  });
});

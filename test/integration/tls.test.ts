/**
 * TLS on the control plane, as an attacker meets it (docs/security.md, "TLS
 * on every link"):
 *  - a real head (LocalCluster, TLS by default) refuses a plaintext client,
 *    and a client whose certificate is of another CA or expired gets no
 *    identity (without the token it is refused);
 *  - a head without certificates refuses to start unless told --insecure;
 *  - a leader hint is followed only to a server whose certificate has role
 *    head and names the hinted address (fake heads: real grpc-js servers
 *    on loopback, so who answers is under the test's control); a plaintext
 *    agent follows no hint outside its --head list.
 */
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeGenericClientConstructor, Server, ServerCredentials as Creds, type ServerCredentials, type ServerUnaryCall, type sendUnaryData, type ServiceDefinition } from '@grpc/grpc-js';
import { ErrorCode, grpcChannelCredentials, grpcServerCredentials, identityOf, MusterError, setClientContext, toGrpcError } from '@muster/common';
import { createCa, ensureClusterPki, issueCert, pairPaths, PKI_FILES, readPair, writePair, type CertRequest } from '@muster/common/pki';
import { AgentServiceService, ClusterServiceService, type AgentServiceServer, type ClusterInfo, type ClusterServiceServer } from '@muster/proto';
import { connect, type Cluster } from '@muster/sdk';
import { spawnManaged, tempDir, waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const require = createRequire(import.meta.url);
const headBin = join(dirname(require.resolve('@muster/head/package.json')), 'dist/main.js');
const workerBin = join(dirname(require.resolve('@muster/worker/package.json')), 'dist/main.js');

describe('a TLS head', () => {
  let cluster: LocalCluster;
  let dir: { path: string; remove(): Promise<void> };
  useCluster({ workers: 1 }, (fx) => ({ cluster } = fx));
  beforeAll(async () => {
    dir = await tempDir('muster-tls-');
  });
  afterAll(async () => {
    await dir?.remove();
  });

  /** A pair of `ca` written to the temp dir; its paths. */
  async function pairOf(ca: { cert: string; key: string }, name: string, req: CertRequest) {
    await writePair(dir.path, name, await issueCert(ca, req));
    return pairPaths(dir.path, name);
  }

  it('refuses a plaintext client, and says it may be talking plaintext to TLS', async () => {
    const err = await connect({ address: cluster.address, insecure: true, tokenFile: cluster.tokenFile, callTimeoutMs: 1_500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MusterError);
    expect((err as MusterError).code).toBe(ErrorCode.UNAVAILABLE);
    expect((err as MusterError).message).toMatch(/plaintext \(insecure\) connection: if the head serves TLS, connect with tls/);
  });

  it('the admin certificate alone is an identity the head takes (with the token as today)', async () => {
    const sdk = await connect(cluster.clientOptions());
    expect((await sdk.nodes()).length).toBe(1);
    sdk.close();
  });

  it('connects from a context of the client config file; explicit options win over it', async () => {
    const configFile = join(dir.path, 'config.yaml');
    await setClientContext('here', { address: cluster.address, ...cluster.tls!, tokenFile: cluster.tokenFile }, { file: configFile });
    const sdk = await connect({ context: true, configFile });
    expect(sdk.address).toBe(cluster.address);
    sdk.close();
    // The context's TLS, but a wrong token given explicitly: the explicit one is what is sent.
    await expect(connect({ context: 'here', configFile, token: 'wrong' })).rejects.toMatchObject({ code: ErrorCode.UNAUTHENTICATED });
    await expect(connect({ context: 'nope', configFile })).rejects.toThrow(/no context "nope" \(known: here\)/);
  });

  it('a certificate of another CA, or an expired one, is no identity: without the token, refused', async () => {
    const tls = cluster.tls!;
    const otherCa = await createCa('not-the-cluster-ca');
    const foreign = await pairOf(otherCa, 'foreign-admin', { role: 'admin', name: 'mallory', callGroups: 'all' });
    const expired = await pairOf(await readPair(cluster.pkiDir!, PKI_FILES.ca), 'expired-admin', { role: 'admin', name: 'old', callGroups: 'all', days: -1 });
    for (const cert of [foreign, expired]) {
      const err = await connect({ address: cluster.address, tls: { ca: tls.ca, ...cert }, callTimeoutMs: 3_000 }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: ErrorCode.UNAUTHENTICATED });
      expect((err as Error).message).toMatch(/missing cluster token/);
    }
  });

  it('a client that trusts another CA refuses the head (it cannot prove itself)', async () => {
    const otherCa = await createCa('not-the-cluster-ca');
    await writePair(dir.path, 'other-ca', otherCa);
    const err = await connect({ address: cluster.address, tls: { ca: pairPaths(dir.path, 'other-ca').cert }, tokenFile: cluster.tokenFile, callTimeoutMs: 1_500 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.UNAVAILABLE });
    expect((err as Error).message).toMatch(/self[- ]signed|unable to verify|certificate/i);
  });
});

describe('a LocalCluster started insecure', () => {
  let cluster: LocalCluster;
  useCluster({ workers: 1, insecure: true }, (fx) => ({ cluster } = fx));

  it('runs plaintext end to end, says so, and hands clients plaintext options', async () => {
    expect(cluster.tls).toBeUndefined();
    expect(cluster.clientOptions()).toMatchObject({ insecure: true });
    expect(cluster.head.process.output()).toContain('--insecure: gRPC is plaintext');
    const sdk = await connect(cluster.clientOptions());
    expect((await sdk.nodes({ state: 'alive' })).map((n) => n.id)).toEqual(['node-1']);
    sdk.close();
    // A TLS client finds no TLS there, and sends nothing.
    await writePair(cluster.dataDir, 'some-ca', await createCa('some-ca'));
    const err = await connect({ address: cluster.address, tls: { ca: pairPaths(cluster.dataDir, 'some-ca').cert }, tokenFile: cluster.tokenFile, callTimeoutMs: 1_500 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.UNAVAILABLE });
  });
});

describe('a head without certificates', () => {
  it('refuses to start, saying how to make them; starts plaintext with --insecure, with a warning', async () => {
    const dir = await tempDir('muster-no-tls-');
    try {
      const run = (...extra: string[]) =>
        new Promise<{ code: number | null; out: string }>((resolve) => {
          const child = execFile(process.execPath, [headBin, '--listen', '127.0.0.1:0', '--data-dir', join(dir.path, 'data'), '--metrics-listen', '', ...extra], { timeout: 20_000 }, (_e, stdout, stderr) =>
            resolve({ code: child.exitCode, out: stdout + stderr }),
          );
          // A head that starts is stopped once it says so.
          child.stdout?.on('data', (b: Buffer) => b.toString().includes('head ready') && child.kill('SIGTERM'));
        });
      const refused = await run();
      expect(refused.code).toBe(1);
      expect(refused.out).toContain(`no TLS ca ${join(dir.path, 'data', 'pki', 'ca.crt')}`);
      expect(refused.out).toContain(`muster cert init --dir ${join(dir.path, 'data', 'pki')}`);
      expect(refused.out).toContain('--insecure');
      expect(refused.out).not.toContain('head ready');
      const plain = await run('--insecure');
      expect(plain.out).toContain('--insecure: gRPC is plaintext');
      expect(plain.out).toContain('head ready');
    } finally {
      await dir.remove();
    }
  });
});

describe('leader hints over TLS', () => {
  let dir: { path: string; remove(): Promise<void> };
  const servers: Server[] = [];
  const clients: Cluster[] = [];
  let ca: string;
  beforeAll(async () => {
    dir = await tempDir('muster-hints-');
    await ensureClusterPki(dir.path);
    ca = pairPaths(dir.path, PKI_FILES.ca).cert;
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const s of servers) s.forceShutdown();
    await dir?.remove();
  });

  /** A fake head on 127.0.0.1 with `creds`: a standby naming `leader`, or a leader that counts its calls. */
  async function fakeHead(creds: ServerCredentials, leader?: () => string): Promise<{ address: string; calls: number; peers: string[] }> {
    const head = { address: '', calls: 0, peers: [] as string[] };
    const info: ClusterInfo = { headId: 'fake', version: 'test', store: 'etcd', nodesAlive: 0, nodesDead: 0, nats: undefined, heartbeatIntervalMs: 1_000, deadAfterMs: 5_000, summary: undefined };
    const impl: Partial<ClusterServiceServer> = {
      getClusterInfo: (call, cb) => {
        head.calls++;
        head.peers.push(call.getPeer());
        if (leader) cb(toGrpcError(new MusterError(ErrorCode.NOT_LEADER, 'this head is a standby', { details: { leader: leader() } })));
        else cb(null, info);
      },
    };
    const server = new Server();
    server.addService(ClusterServiceService, impl as ClusterServiceServer);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? reject(e) : resolve(p))));
    servers.push(server);
    head.address = `127.0.0.1:${port}`;
    return head;
  }

  /** Server credentials from a pair issued by the cluster CA for `req`. */
  async function serving(name: string, req: CertRequest): Promise<ServerCredentials> {
    await writePair(dir.path, name, await issueCert(await readPair(dir.path, PKI_FILES.ca), req));
    return grpcServerCredentials({ ca, ...pairPaths(dir.path, name) });
  }

  const headCreds = () => grpcServerCredentials({ ca, ...pairPaths(dir.path, PKI_FILES.head) });

  it('a head sees the identity of a valid client certificate, and none for one of another CA or an expired one', async () => {
    const bytes = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
    const service = { whoami: { path: '/t.T/WhoAmI', requestStream: false, responseStream: false, ...bytes } } as unknown as ServiceDefinition;
    const server = new Server();
    server.addService(service, {
      whoami: (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => cb(null, Buffer.from(JSON.stringify(identityOf(call.getAuthContext()?.sslPeerCertificate) ?? null))),
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', headCreds(), (e, p) => (e ? reject(e) : resolve(p))));
    servers.push(server);
    const Client = makeGenericClientConstructor(service, 'T');
    const whoami = (files: { cert: string; key: string }) =>
      new Promise<unknown>((resolve, reject) => {
        const c = new Client(`127.0.0.1:${port}`, grpcChannelCredentials({ ca, ...files }));
        c.makeUnaryRequest('/t.T/WhoAmI', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), { deadline: Date.now() + 5_000 }, (e, res) => {
          c.close();
          if (e) reject(e);
          else resolve(JSON.parse(res!.toString()));
        });
      });
    const clusterCa = await readPair(dir.path, PKI_FILES.ca);
    await writePair(dir.path, 'foreign', await issueCert(await createCa('other'), { role: 'admin', name: 'mallory', callGroups: 'all' }));
    await writePair(dir.path, 'expired', await issueCert(clusterCa, { role: 'admin', name: 'old', callGroups: 'all', days: -1 }));
    expect(await whoami(pairPaths(dir.path, PKI_FILES.admin))).toEqual({ role: 'admin', name: 'admin', callGroups: 'all' });
    expect(await whoami(pairPaths(dir.path, 'foreign'))).toBeNull();
    expect(await whoami(pairPaths(dir.path, 'expired'))).toBeNull();
  });

  it('follows a hint outside the list to a head whose certificate names it', async () => {
    const leader = await fakeHead(headCreds());
    const standby = await fakeHead(headCreds(), () => leader.address);
    const c = await connect({ address: standby.address, tls: { ca, ...pairPaths(dir.path, PKI_FILES.admin) } });
    clients.push(c);
    expect(c.address).toBe(leader.address);
    expect(leader.calls).toBe(1);
  });

  it('connect()s of one process with the same files share one TLS connection, as plaintext ones do', async () => {
    const head = await fakeHead(headCreds());
    const tls = { ca, ...pairPaths(dir.path, PKI_FILES.admin) };
    const [a, b] = [await connect({ address: head.address, tls }), await connect({ address: head.address, tls })];
    clients.push(a, b);
    expect(head.peers).toHaveLength(2);
    expect(head.peers[1]).toBe(head.peers[0]);
  });

  it.each([
    ['a certificate of the cluster CA without role head (a node posing as the leader)', { role: 'node', name: 'evil', hosts: ['127.0.0.1'] } satisfies CertRequest],
    ['a head certificate that does not name the hinted address', { role: 'head', name: 'elsewhere', hosts: ['head.elsewhere.example'] } satisfies CertRequest],
  ])('does not follow a hint to %s: no call reaches it', async (what, req) => {
    const impostor = await fakeHead(await serving(what.slice(0, 12).replace(/\W/g, '-'), req));
    const standby = await fakeHead(headCreds(), () => impostor.address);
    const err = await connect({ address: standby.address, tls: { ca, ...pairPaths(dir.path, PKI_FILES.admin) }, callTimeoutMs: 1_500 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MusterError);
    expect(impostor.calls).toBe(0);
    expect((err as MusterError).message).toMatch(/role node, not head|does not match certificate|Hostname\/IP does not match|NOT_LEADER|standby/);
  });
});

describe('a plaintext agent and a leader hint outside its --head list', () => {
  it('does not follow it: nothing connects there, and the agent says why', async () => {
    // Where the hint points: counts every TCP connection made to it.
    let reached = 0;
    const elsewhere = createServer((sock) => {
      reached++;
      sock.destroy();
    });
    await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
    const hint = `127.0.0.1:${(elsewhere.address() as { port: number }).port}`;
    // A plaintext standby that refuses every agent, naming that address as the leader.
    const standby = new Server();
    const refuse: Partial<AgentServiceServer> = {
      connect: (call) => call.emit('error', toGrpcError(new MusterError(ErrorCode.NOT_LEADER, 'this head is a standby', { details: { leader: hint } }))),
    };
    standby.addService(AgentServiceService, refuse as AgentServiceServer);
    const port = await new Promise<number>((resolve, reject) => standby.bindAsync('127.0.0.1:0', Creds.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    const dir = await tempDir('muster-agent-hint-');
    const worker = spawnManaged('worker', process.execPath, [
      workerBin, 'run', '--head', `127.0.0.1:${port}`, '--insecure', '--node-id', 'n1', '--shard-user', '0:0',
      '--profile', 'cpu-only', '--metrics-listen', '', '--data-dir', dir.path, '--reconnect-max-ms', '200',
    ], { env: { MUSTER_TOKEN: 'x'.repeat(40) } });
    try {
      const line = await worker.waitForLine((l) => l.includes('names a leader outside --head'), 20_000);
      expect(JSON.parse(line)).toMatchObject({ leader: hint });
      // Proof the window was observed: the agent came back to the standby after refusing the hint.
      await waitFor('a second refusal logged', () => worker.output().split('names a leader outside --head').length > 2 || undefined, { timeoutMs: 20_000 });
      expect(worker.output()).toContain('--insecure: the head link is plaintext');
      expect(reached).toBe(0);
    } finally {
      await worker.stop(2_000);
      standby.forceShutdown();
      elsewhere.close();
      await dir.remove();
    }
  });
});

/**
 * The attack suite (issue 21, acceptance): a real head and real agents with
 * TLS on, and each attack refused with the error it gets.
 *
 * Here: the control plane (docs/security.md, "Roles and node identity").
 *   - a plaintext client                          → UNAVAILABLE (no TLS handshake, no answer)
 *   - a certificate of another CA                 → MUSTER_UNAUTHENTICATED
 *   - an expired certificate                      → MUSTER_UNAUTHENTICATED
 *   - an agent registering as another node        → MUSTER_PERMISSION_DENIED
 *   - an agent replaying another node's incarnation → MUSTER_PERMISSION_DENIED, the node untouched
 *   - a viewer creating a group                   → MUSTER_PERMISSION_DENIED
 *   - a node certificate calling the client API   → MUSTER_PERMISSION_DENIED
 *   - a caller/deployer reading a group it may not call → MUSTER_PERMISSION_DENIED
 *     (its data-plane side: NATS permissions, engineer U)
 *   - a head started with an empty token          → exits non-zero naming the file
 *   - a leader hint to an address outside the set, served by no head → not followed, nothing sent there
 *
 * Elsewhere, by the engineers who built the defence:
 *   - TLS in more detail (a client trusting another CA, a head without certificates, a hint to a
 *     head certificate that does not name the hinted address): engineer W's test/integration/tls.test.ts
 *   - a rank reading the worker's token, keys, /proc/<worker>/environ (EACCES): engineer R's
 *     shard-uid tests (test/integration, "ranks under their own uid")
 *   - a rank subscribing to another group's subject, a forged or negative load report
 *     (NATS permission error, dropped report): engineer U's NATS tests
 *   - a 20 MB gateway body (413), a missing or wrong API key (401/403): engineer S's gateway tests
 *   - oversized specs and messages: engineer V's limit tests
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { Client, credentials, Metadata, Server, type sendUnaryData, type ServiceError } from '@grpc/grpc-js';
import { ErrorCode, MusterError, fromGrpcError, grpcChannelCredentials, grpcServerCredentials, toGrpcError } from '@muster/common';
import { createCa, ensureNodeCert, issueCert, pairPaths, PKI_FILES, readPair, writePair, type CertPair, type CertRequest } from '@muster/common/pki';
import { AgentMessage, ClusterServiceService, HeadMessage, type Register } from '@muster/proto';
import { connect, type Cluster } from '@muster/sdk';
import { tempDir, waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const replica = fileURLToPath(new URL('../fixtures/replica.mjs', import.meta.url));
const headBin = join(dirname(createRequire(import.meta.url).resolve('@muster/head/package.json')), 'dist/main.js');

describe('attacks on the control plane, TLS on', () => {
  let cluster: LocalCluster;
  let pki: string;
  let ca: string;

  useCluster({ workers: 2 }, (fx) => ({ cluster } = fx));
  beforeAll(() => {
    pki = cluster.pkiDir!;
    ca = pairPaths(pki, PKI_FILES.ca).cert;
  });

  /** Writes a certificate of the cluster CA (or of `otherCa`) into the PKI directory; its paths. */
  async function certificate(file: string, req: CertRequest, otherCa?: CertPair): Promise<{ cert: string; key: string }> {
    await writePair(pki, file, await issueCert(otherCa ?? (await readPair(pki, PKI_FILES.ca)), req));
    return pairPaths(pki, file);
  }

  /** An SDK client holding `files` as its identity, and no token. */
  function client(files: { cert: string; key: string }): Promise<Cluster> {
    return connect({ address: cluster.address, tls: { ca, ...files } });
  }

  /** A ClusterService on loopback with `files` as its TLS identity, refusing every GetClusterInfo with `refusal()`. */
  async function grpcServer(files: { cert: string; key: string }, refusal: () => MusterError) {
    const server = new Server();
    const fake = { server, address: '', calls: 0 };
    server.addService(ClusterServiceService, {
      getClusterInfo: (_call: unknown, cb: sendUnaryData<never>) => {
        fake.calls++;
        cb(toGrpcError(refusal()));
      },
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpcServerCredentials({ ca, ...files }), (e, p) => (e ? reject(e) : resolve(p))));
    fake.address = `127.0.0.1:${port}`;
    return fake;
  }

  /** Opens an agent stream with `files` as identity, sends `register`, resolves with how it ended. */
  function agentExchange(files: { cert: string; key: string }, register: Register): Promise<{ error?: ServiceError; received: HeadMessage[] }> {
    const raw = new Client(cluster.address, grpcChannelCredentials({ ca, ...files }));
    const received: HeadMessage[] = [];
    return new Promise((resolve) => {
      const call = raw.makeBidiStreamRequest('/muster.v1.AgentService/Connect', (m: AgentMessage) => Buffer.from(AgentMessage.encode(m).finish()), (b: Buffer) => HeadMessage.decode(b), new Metadata());
      const timer = setTimeout(() => call.cancel(), 5_000);
      const done = (error?: ServiceError) => {
        clearTimeout(timer);
        raw.close();
        resolve({ error, received });
      };
      call.on('data', (m: HeadMessage) => received.push(m));
      call.on('error', (e: ServiceError) => done(e));
      call.on('end', () => done());
      call.write({ msg: { $case: 'register', value: register } });
    });
  }

  const registration = (nodeId: string, incarnation: string): Register => ({
    nodeId,
    incarnation,
    agentVersion: 'attacker',
    address: '127.0.0.1',
    labels: {},
    taints: [],
    inventory: {
      hostname: 'h',
      cpuCores: 8,
      memoryBytes: 16 * 2 ** 30,
      gpus: [{ index: 0, uuid: 'GPU-evil', name: 'Test GPU', memoryMib: 81_559, numaNode: 0, mig: [], pciBusId: '', migEnabled: false }],
      topology: { links: ['X'], nvlinkIslands: [{ gpuIndices: [0] }], nics: [] },
      nvlinkDomain: '',
      source: 'test',
      customResources: {},
    },
  });

  it('a plaintext client gets no answer: UNAVAILABLE, the head speaks only TLS', async () => {
    const plain = connect({ address: cluster.address, tokenFile: cluster.tokenFile, insecure: true, callTimeoutMs: 3_000 });
    await expect(plain).rejects.toMatchObject({ code: ErrorCode.UNAVAILABLE });
  });

  it('a client certificate of another CA authenticates nothing: UNAUTHENTICATED', async () => {
    const mallory = await certificate('mallory', { role: 'admin', name: 'mallory' }, await createCa('not the cluster CA'));
    await expect(client(mallory)).rejects.toMatchObject({ code: ErrorCode.UNAUTHENTICATED, message: expect.stringMatching(/no client certificate and missing cluster token/) });
  });

  it('an expired certificate authenticates nothing: UNAUTHENTICATED', async () => {
    // Valid from a minute ago (issueCert back-dates) for ~43 s: expired by now.
    const old = await certificate('expired-admin', { role: 'admin', name: 'old-admin', days: 0.0005 });
    await expect(client(old)).rejects.toMatchObject({ code: ErrorCode.UNAUTHENTICATED });
  });

  it('a node certificate calling the client API: PERMISSION_DENIED', async () => {
    const node1 = await ensureNodeCert(pki, 'node-1');
    await expect(client(node1)).rejects.toMatchObject({
      code: ErrorCode.PERMISSION_DENIED,
      message: expect.stringMatching(/^node "node-1" may not call ClusterService\/GetClusterInfo: it needs role caller or above \(a node certificate opens the agent stream only\)/),
    });
  });

  it('a viewer creating a group: PERMISSION_DENIED, and no group exists', async () => {
    const viewer = await client(await certificate('vera', { role: 'viewer', name: 'vera' }));
    try {
      expect((await viewer.nodes()).map((n) => n.id).sort()).toEqual(['node-1', 'node-2']); // a viewer reads
      await expect(viewer.placementGroups.create({ name: 'by-a-viewer', bundles: [{ gpus: 1 }] })).rejects.toMatchObject({
        code: ErrorCode.PERMISSION_DENIED,
        message: 'viewer "vera" may not call PlacementGroupService/CreatePlacementGroup: it needs role deployer or above',
      });
      await expect(viewer.replicaGroups.delete('anything')).rejects.toMatchObject({ code: ErrorCode.PERMISSION_DENIED });
      await expect(viewer.drainNode('node-1', { reason: 'by a viewer' })).rejects.toMatchObject({ code: ErrorCode.PERMISSION_DENIED });
    } finally {
      viewer.close();
    }
    const admin = await cluster.connect();
    try {
      expect((await admin.placementGroups.list()).map((g) => g.name)).not.toContain('by-a-viewer');
    } finally {
      admin.close();
    }
  });

  it('a caller or deployer reading a group it may not call: PERMISSION_DENIED', async () => {
    const caller = await client(await certificate('app', { role: 'caller', name: 'app', callGroups: ['llm'] }));
    try {
      // Authorized for "llm" (absent here, so NOT_FOUND); refused for "payroll" before the head looks.
      await expect(caller.replicaGroups.get('llm')).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
      await expect(caller.replicaGroups.get('payroll')).rejects.toMatchObject({
        code: ErrorCode.PERMISSION_DENIED,
        message: 'caller "app" may not call ReplicaGroupService/GetReplicaGroup for group "payroll": its certificate grants calls to "llm" only',
      });
      await expect(caller.nodes()).rejects.toMatchObject({ code: ErrorCode.PERMISSION_DENIED });
    } finally {
      caller.close();
    }
  });

  // The SDK refuses before publishing; NATS refuses the publish itself too (the caller's user has no
  // permission on payroll's subjects): test/integration/dataplane/nats-users.test.ts.
  it('a deployer calling a group it has no right to on the data plane: refused', async () => {
    const admin = await cluster.connect();
    const dora = await client(await certificate('dora', { role: 'deployer', name: 'dora', callGroups: ['llm'] }));
    try {
      const spec = { name: 'payroll', resources: { gpus: 1 }, template: { command: process.execPath, args: [replica], readiness: { kind: 'sdk' as const } }, replicas: { min: 1, max: 1, initial: 1 } };
      const payroll = await admin.replicaGroups.apply(spec);
      await waitFor('a ready replica of payroll', async () => ((await payroll.refresh()).replicas.some((r) => r.state === 'ready') ? true : undefined), { timeoutMs: 30_000, intervalMs: 100 });
      await expect(payroll.call({ from: 'admin' }, { timeoutMs: 5_000 })).resolves.toMatchObject({ echo: { from: 'admin' } });
      // A deployer reads every group (membership included), but calls only those its certificate names.
      const seen = await dora.replicaGroups.get('payroll');
      await expect(seen.call({ from: 'dora' }, { timeoutMs: 5_000 })).rejects.toMatchObject({ code: ErrorCode.PERMISSION_DENIED, message: expect.stringContaining('may not call replica group "payroll"') });
    } finally {
      dora.close();
      admin.close();
    }
  });

  it('an agent registering as another node: PERMISSION_DENIED, nothing registered', async () => {
    const node2 = await ensureNodeCert(pki, 'node-2');
    const { error, received } = await agentExchange(node2, registration('intruder', 'inc-intruder'));
    expect(fromGrpcError(error)).toMatchObject({
      code: ErrorCode.PERMISSION_DENIED,
      message: 'node "node-2" may not register as node "intruder": a node certificate registers only the node id it names (CN)',
    });
    expect(received).toEqual([]);
    const admin = await cluster.connect();
    try {
      await expect(admin.node('intruder')).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
    } finally {
      admin.close();
    }
  });

  it('a real worker started with another node\'s certificate says so and does not register', async () => {
    const node2 = await ensureNodeCert(pki, 'node-2');
    await expect(cluster.addWorker({ nodeId: 'node-3', args: ['--tls-cert', node2.cert, '--tls-key', node2.key] }, { readyTimeoutMs: 3_000 })).rejects.toThrow(
      /MUSTER_PERMISSION_DENIED.*may not register as node/,
    );
  });

  it('an agent replaying another node\'s incarnation: PERMISSION_DENIED, the node keeps its own agent', async () => {
    const admin = await cluster.connect();
    try {
      const victim = await admin.node('node-1'); // incarnations are published: no secret
      const node2 = await ensureNodeCert(pki, 'node-2');
      const { error, received } = await agentExchange(node2, registration('node-1', victim.incarnation));
      expect(fromGrpcError(error)).toMatchObject({ code: ErrorCode.PERMISSION_DENIED, message: expect.stringMatching(/^node "node-2" may not register as node "node-1"/) });
      expect(received).toEqual([]); // no `registered`, no reservations, no orders
      const after = await admin.node('node-1');
      expect(after).toMatchObject({ state: 'alive', incarnation: victim.incarnation, gpus: victim.gpus });
    } finally {
      admin.close();
    }
  });

  it('a head started with an empty token file exits non-zero naming it, and serves nothing', async () => {
    const dir = await tempDir('muster-attack-token-');
    try {
      const tokenFile = join(dir.path, 'token');
      await writeFile(tokenFile, '', { mode: 0o600 });
      const head = await new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = execFile(
          process.execPath,
          [headBin, '--listen', '127.0.0.1:0', '--data-dir', join(dir.path, 'data'), '--token-file', tokenFile, '--metrics-listen', '', '--tls-ca', ca, '--tls-cert', pairPaths(pki, PKI_FILES.head).cert, '--tls-key', pairPaths(pki, PKI_FILES.head).key],
          { timeout: 20_000 },
          (_err, stdout, stderr) => resolve({ code: child.exitCode, out: stdout + stderr }),
        );
      });
      expect(head.code).toBe(1);
      expect(head.out).toContain(tokenFile);
      expect(head.out).toMatch(/holds no token; at least 32 bytes are required/);
      expect(head.out).not.toContain('head ready');
    } finally {
      await dir.remove();
    }
  });

  it('a leader hint to an address outside the set, where no head answers: not followed, nothing sent there', async () => {
    // A standby of the set names an impostor as the leader: a server of the same CA, but with a
    // node's certificate (a compromised node, say) naming the hinted address.
    const impostor = await grpcServer(await certificate('impostor', { role: 'node', name: 'node-1', hosts: ['127.0.0.1'] }), () => new MusterError(ErrorCode.INTERNAL, 'should never be asked'));
    const standby = await grpcServer(pairPaths(pki, PKI_FILES.head), () => new MusterError(ErrorCode.NOT_LEADER, 'this head is a standby', { details: { leader: impostor.address } }));
    try {
      const err = await connect({ address: standby.address, tls: { ca, ...pairPaths(pki, PKI_FILES.admin) }, tokenFile: cluster.tokenFile, callTimeoutMs: 2_000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      // The SDK gives up at its deadline; its last error is the impostor's refused handshake or the standby's refusal.
      expect(err).toMatchObject({ code: expect.stringMatching(/^MUSTER_(UNAVAILABLE|NOT_LEADER)$/), message: expect.stringMatching(/role node, not head|standby/) });
      expect(standby.calls).toBeGreaterThanOrEqual(1); // the hint was given…
      expect(impostor.calls).toBe(0); // …and no call (no token, no certificate of ours) reached the impostor
    } finally {
      standby.server.forceShutdown();
      impostor.server.forceShutdown();
    }
  });

  it('the plaintext refusal is the transport\'s: a raw plaintext call never reaches a handler', async () => {
    const raw = new Client(cluster.address, credentials.createInsecure());
    const err = await new Promise<ServiceError>((resolve) =>
      raw.makeUnaryRequest('/muster.v1.ClusterService/ListNodes', (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), new Metadata(), { deadline: Date.now() + 3_000 }, (e) => resolve(e!)),
    );
    raw.close();
    expect(err.code).toBe(14); // UNAVAILABLE
  });
});

/**
 * Authentication and authorization on a real gRPC server with the cluster's
 * mutual-TLS credentials: the head's own rpc wrappers (rpc.ts) and leader
 * gate (ha/gate.ts) in front of a stub ClusterService, called by clients
 * holding certificates of every kind, the token, or nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metadata, Server, type ServiceError } from '@grpc/grpc-js';
import { ClusterInfo, ClusterServiceClient, ClusterServiceService, DrainNodeRequest, GetClusterInfoRequest, ListNodesRequest, Node, type ClusterServiceServer } from '@muster/proto';
import { ErrorCode, MusterError, fromGrpcError, grpcChannelCredentials, grpcServerCredentials, tokenMetadata } from '@muster/common';
import { createCa, ensureClusterPki, ensureNodeCert, issueCert, pairPaths, PKI_FILES, readPair, writePair, type CertRequest } from '@muster/common/pki';
import type { Identity } from '@muster/contracts';
import { LeaderGate } from '../ha/gate.js';
import { unary, type RpcContext } from './rpc.js';

const TOKEN = 'a-cluster-token-of-at-least-32-bytes!!';

describe('authenticate and authorize every call', () => {
  let dir: string;
  let server: Server;
  let address: string;
  const counted: Array<Record<string, unknown>> = [];
  const seen: Identity[] = [];
  let gate: LeaderGate;
  let impls: Map<typeof ClusterServiceService, ClusterServiceServer>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'muster-authn-'));
    await ensureClusterPki(dir, { nodes: ['n1'] });
    const ctx = {
      token: TOKEN,
      pageKey: Buffer.alloc(32),
      rpcCount: { add: (_n: number, attrs: Record<string, unknown>) => counted.push(attrs) },
      rpcLatency: { record: () => {} },
    } as unknown as RpcContext;
    const answer = async (_req: unknown, _md: Metadata, who: Identity) => {
      seen.push(who);
      return ClusterInfo.fromJSON({ headId: who.name });
    };
    const impl = {
      getClusterInfo: unary(ctx, 'GetClusterInfo', answer),
      listNodes: unary(ctx, 'ListNodes', async (req, md, who) => ({ nodes: [], nextPageToken: (await answer(req, md, who)).headId })),
      drainNode: unary(ctx, 'DrainNode', async () => Node.fromJSON({ nodeId: 'n1' })),
    } as Partial<ClusterServiceServer> as ClusterServiceServer;
    gate = new LeaderGate(TOKEN, () => new MusterError(ErrorCode.NOT_LEADER, 'not the leader', { details: { leader: '10.0.0.9:7400' } }));
    impls = new Map([[ClusterServiceService, impl]]);
    gate.open(impls);
    server = new Server();
    server.addService(ClusterServiceService, gate.serve(ClusterServiceService));
    const head = pairPaths(dir, PKI_FILES.head);
    const creds = grpcServerCredentials({ ca: pairPaths(dir, PKI_FILES.ca).cert, ...head });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (e, p) => (e ? reject(e) : resolve(p))));
    address = `127.0.0.1:${port}`;
  });
  afterAll(async () => {
    server?.forceShutdown();
    await rm(dir, { recursive: true, force: true });
  });

  /** A client certificate of the cluster CA (or `ca`), written beside the others. */
  async function cert(name: string, req: CertRequest, ca?: Awaited<ReturnType<typeof createCa>>) {
    await writePair(dir, name, await issueCert(ca ?? (await readPair(dir, PKI_FILES.ca)), req));
    return pairPaths(dir, name);
  }

  /** Calls `method` with the client certificate `files` and/or the token; the error as a MusterError. */
  function call(method: 'getClusterInfo' | 'listNodes' | 'drainNode', files: { cert?: string; key?: string }, md = new Metadata()) {
    const client = new ClusterServiceClient(address, grpcChannelCredentials({ ca: pairPaths(dir, PKI_FILES.ca).cert, ...files }));
    return new Promise<unknown>((resolve, reject) => {
      const done = (e: ServiceError | null, res?: unknown) => {
        client.close();
        if (e) reject(fromGrpcError(e));
        else resolve(res);
      };
      const fn = client[method].bind(client) as (r: object, m: Metadata, o: object, cb: typeof done) => void;
      const requests = { getClusterInfo: GetClusterInfoRequest, listNodes: ListNodesRequest, drainNode: DrainNodeRequest };
      fn(requests[method].fromJSON({ nodeId: 'n1' }), md, { deadline: Date.now() + 5_000 }, done);
    });
  }

  it('takes the identity of a verified client certificate and hands it to the handler', async () => {
    const viewer = await cert('vera', { role: 'viewer', name: 'vera' });
    await expect(call('listNodes', viewer)).resolves.toMatchObject({ nextPageToken: 'vera' });
    expect(seen.at(-1)).toEqual({ role: 'viewer', name: 'vera', callGroups: [] });
  });

  it('takes the cluster token as an admin, the certificate over a right token sent beside it, and refuses a wrong one', async () => {
    await expect(call('drainNode', {}, tokenMetadata(TOKEN))).resolves.toMatchObject({ nodeId: 'n1' });
    await expect(call('getClusterInfo', {}, tokenMetadata(TOKEN))).resolves.toMatchObject({ headId: 'cluster-token' });
    const node = await ensureNodeCert(dir, 'n1');
    await expect(call('listNodes', node, tokenMetadata(TOKEN))).rejects.toMatchObject({ code: 'MUSTER_PERMISSION_DENIED' });
    // A wrong token is refused even beside a good certificate.
    await expect(call('getClusterInfo', pairPaths(dir, PKI_FILES.admin), tokenMetadata('y'.repeat(40)))).rejects.toMatchObject({ code: 'MUSTER_UNAUTHENTICATED', message: 'wrong cluster token' });
  });

  it('refuses a call with no credential, or a wrong token, as UNAUTHENTICATED saying what to send', async () => {
    await expect(call('getClusterInfo', {})).rejects.toMatchObject({ code: 'MUSTER_UNAUTHENTICATED', message: expect.stringMatching(/^no client certificate and missing cluster token: present a client certificate of the cluster CA/) });
    await expect(call('getClusterInfo', {}, tokenMetadata('x'.repeat(40)))).rejects.toMatchObject({ code: 'MUSTER_UNAUTHENTICATED', message: 'wrong cluster token' });
  });

  it('gives no identity to a certificate of another CA, nor to an expired one', async () => {
    const other = await cert('stranger', { role: 'admin', name: 'mallory' }, await createCa('another CA'));
    await expect(call('getClusterInfo', other)).rejects.toMatchObject({ code: 'MUSTER_UNAUTHENTICATED' });
    // Valid from a minute ago (issueCert back-dates) for ~43 s: expired now.
    const expired = await cert('expired', { role: 'admin', name: 'old-admin', days: 0.0005 });
    await expect(call('getClusterInfo', expired)).rejects.toMatchObject({ code: 'MUSTER_UNAUTHENTICATED' });
  });

  it('refuses by role with PERMISSION_DENIED, counted in the rpc metric by code', async () => {
    const deployer = await cert('dora', { role: 'deployer', name: 'dora' });
    const before = counted.length;
    await expect(call('drainNode', deployer)).rejects.toMatchObject({
      code: 'MUSTER_PERMISSION_DENIED',
      message: 'deployer "dora" may not call ClusterService/DrainNode: it needs role admin or above',
    });
    expect(counted.slice(before)).toEqual([{ method: 'DrainNode', code: 'MUSTER_PERMISSION_DENIED' }]);
    const node = await ensureNodeCert(dir, 'n1');
    await expect(call('getClusterInfo', node)).rejects.toMatchObject({ code: 'MUSTER_PERMISSION_DENIED', message: expect.stringMatching(/^node "n1" may not call ClusterService\/GetClusterInfo/) });
    const caller = await cert('app', { role: 'caller', name: 'app', callGroups: ['llm'] });
    await expect(call('getClusterInfo', caller)).resolves.toMatchObject({ headId: 'app' });
  });

  it('on a standby: a stranger gets UNAUTHENTICATED and a lesser role PERMISSION_DENIED (not the leader address); an allowed caller NOT_LEADER', async () => {
    gate.close();
    try {
      await expect(call('getClusterInfo', {})).rejects.toMatchObject({ code: 'MUSTER_UNAUTHENTICATED', details: {} });
      const viewer = pairPaths(dir, 'vera');
      await expect(call('getClusterInfo', viewer)).rejects.toMatchObject({ code: 'MUSTER_NOT_LEADER', details: { leader: '10.0.0.9:7400' } });
      await expect(call('listNodes', await ensureNodeCert(dir, 'n1'))).rejects.toMatchObject({ code: 'MUSTER_PERMISSION_DENIED', details: {} });
    } finally {
      gate.open(impls);
    }
  });
});

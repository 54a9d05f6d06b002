/**
 * Paged lists and the cluster summary against a real head with a few hundred
 * nodes: the nodes are registered by a small in-test agent client speaking
 * the real agent protocol (register, heartbeats, reservation confirms), so
 * no worker process is needed per node.
 *
 * Shows: pages cover every node exactly once in id order; filters (labels,
 * id prefix, draining) are applied by the head; a token from another list,
 * for other filters, or forged is refused naming page_token; the SDK and the
 * CLI follow pages; the summary counts nodes and GPUs without the node list.
 */
import { fileURLToPath } from 'node:url';
import { type ClientDuplexStream, type Metadata, type ServiceError } from '@grpc/grpc-js';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grpcChannelCredentials, readToken, tokenMetadata } from '@muster/common';
import { clientChannelOptions } from '@muster/contracts';
import {
  AgentServiceClient,
  ClusterServiceClient,
  GangServiceClient,
  NodeState,
  PlacementGroupServiceClient,
  PlacementGroupState,
  ReplicaGroupServiceClient,
  type AgentMessage,
  type HeadMessage,
  type ListNodesRequest,
  type ListNodesResponse,
} from '@muster/proto';
import type { Cluster } from '@muster/sdk';
import { waitFor, type LocalCluster } from '@muster/testing';
import { useCluster } from '@muster/testing/vitest';

const cli = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));
const NODES = 300;
const ids = Array.from({ length: NODES }, (_, i) => `sim-${String(i).padStart(3, '0')}`);
/** Even nodes have two GPUs, odd ones none; racks r0, r1, r2 in turn. */
const gpusOf = (i: number) => (i % 2 === 0 ? 2 : 0);

/** Many agents over one channel: each registers, heartbeats and confirms reservations. */
class InTestAgents {
  private readonly streams: ClientDuplexStream<AgentMessage, HeadMessage>[] = [];
  private readonly timer: NodeJS.Timeout;
  private seq = 0;

  constructor(private readonly client: AgentServiceClient, private readonly md: Metadata, heartbeatMs: number) {
    this.timer = setInterval(() => {
      this.seq++;
      for (const s of this.streams) s.write({ msg: { $case: 'heartbeat', value: { seq: this.seq, sentAtMs: Date.now() } } });
    }, heartbeatMs);
  }

  register(nodeId: string, i: number): Promise<void> {
    const stream = this.client.connect(this.md);
    this.streams.push(stream);
    stream.on('error', () => undefined); // CANCELLED when the test ends
    return new Promise<void>((resolve, reject) => {
      stream.on('data', (m: HeadMessage) => {
        if (m.msg?.$case === 'registered') resolve();
        if (m.msg?.$case === 'reserveBundles') stream.write({ msg: { $case: 'bundlesReserved', value: { groupId: m.msg.value.groupId } } });
      });
      stream.once('error', reject);
      const gpus = Array.from({ length: gpusOf(i) }, (_, g) => ({ index: g, uuid: `GPU-${nodeId}-${g}`, name: 'Sim GPU', memoryMib: 16_384, mig: [], pciBusId: '', migEnabled: false }));
      stream.write({
        msg: {
          $case: 'register',
          value: {
          nodeId,
          incarnation: `inc-${nodeId}`,
          agentVersion: 'test',
          address: '127.0.0.1',
          labels: { rack: `r${i % 3}` },
          taints: [],
          inventory: { hostname: nodeId, cpuCores: 8, memoryBytes: 32 * 2 ** 30, gpus, topology: undefined, nvlinkDomain: '', source: 'in-test', customResources: {} },
          },
        },
      });
    });
  }

  close(): void {
    clearInterval(this.timer);
    for (const s of this.streams) s.cancel();
  }
}

/** A unary call as a promise; rejects with the ServiceError. */
function call<Req, Res>(fn: (req: Req, md: Metadata, cb: (err: ServiceError | null, res?: Res) => void) => unknown, req: Req, md: Metadata): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, md, (err, res) => (err ? reject(err) : resolve(res!))));
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    const err = e as ServiceError;
    return `${String(err.metadata.get('muster-error-code')[0])}: ${err.details}`;
  }
  throw new Error('expected a refusal');
}

describe(`paged lists at ${NODES} nodes`, () => {
  let cluster: LocalCluster;
  let sdk: Cluster;
  let md: Metadata;
  let agents: InTestAgents;
  let nodesClient: ClusterServiceClient;
  let pgClient: PlacementGroupServiceClient;
  const listNodes = (req: Partial<ListNodesRequest>) =>
    call<ListNodesRequest, ListNodesResponse>(nodesClient.listNodes.bind(nodesClient), { state: NodeState.NODE_STATE_UNSPECIFIED, pageSize: 0, pageToken: '', nodeIdPrefix: '', labels: {}, ...req }, md);

  useCluster({ workers: 0, heartbeatIntervalMs: 1_000, deadAfterMs: 15_000 }, (fx) => ({ cluster, sdk } = fx));

  beforeAll(async () => {
    md = tokenMetadata(await readToken(cluster.tokenFile));
    const opts = clientChannelOptions();
    agents = new InTestAgents(new AgentServiceClient(cluster.address, grpcChannelCredentials(cluster.tls!), opts), md, 500);
    nodesClient = new ClusterServiceClient(cluster.address, grpcChannelCredentials(cluster.tls!), opts);
    pgClient = new PlacementGroupServiceClient(cluster.address, grpcChannelCredentials(cluster.tls!), opts);
    for (let i = 0; i < NODES; i += 50) await Promise.all(ids.slice(i, i + 50).map((id, j) => agents.register(id, i + j)));
    await sdk.drainNode('sim-007', { reason: 'test' });
    await sdk.drainNode('sim-123', { reason: 'test' });
  }, 120_000);

  afterAll(() => {
    agents?.close();
    nodesClient?.close();
    pgClient?.close();
  });

  it('pages cover every node exactly once, in id order; the default page and a too-large ask take all 300 at once', async () => {
    const seen: string[] = [];
    let pageToken = '';
    let pages = 0;
    do {
      const page = await listNodes({ pageSize: 7, pageToken });
      expect(page.nodes.length).toBeLessThanOrEqual(7);
      seen.push(...page.nodes.map((n) => n.nodeId));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken);
    expect(seen).toEqual(ids);
    expect(pages).toBe(Math.ceil(NODES / 7));
    const whole = await listNodes({});
    expect(whole.nodes).toHaveLength(NODES);
    expect(whole.nextPageToken).toBe('');
    expect((await listNodes({ pageSize: 1_000_000 })).nodes).toHaveLength(NODES);
  });

  it('filters on the head: labels, id prefix, draining, state', async () => {
    const byRack = await sdk.nodes({ labels: { rack: 'r1' }, pageSize: 30 });
    expect(byRack.map((n) => n.id)).toEqual(ids.filter((_, i) => i % 3 === 1));
    expect((await sdk.nodes({ idPrefix: 'sim-1' })).map((n) => n.id)).toEqual(ids.filter((id) => id.startsWith('sim-1')));
    expect((await sdk.nodes({ draining: true })).map((n) => n.id)).toEqual(['sim-007', 'sim-123']);
    expect(await sdk.nodes({ draining: false })).toHaveLength(NODES - 2);
    expect(await sdk.nodes({ state: 'dead' })).toEqual([]);
    const pageSizes: number[] = [];
    for await (const page of sdk.nodePages({ state: 'alive', pageSize: 64 })) pageSizes.push(page.length);
    expect(pageSizes).toEqual([64, 64, 64, 64, 44]);
  });

  it('refuses, naming page_token, a token from another list, for other filters, or forged', async () => {
    const first = await listNodes({ pageSize: 10, labels: { rack: 'r0' } });
    const token = first.nextPageToken;
    expect(token).not.toBe('');
    const emptyPg = { state: PlacementGroupState.PLACEMENT_GROUP_STATE_UNSPECIFIED, pageSize: 0, namePrefix: '' };
    expect(await refusal(call(pgClient.listPlacementGroups.bind(pgClient), { ...emptyPg, pageToken: token }, md))).toMatch(
      /^MUSTER_INVALID_ARGUMENT: page_token belongs to the nodes list, not the placement-groups list/,
    );
    const gangs = new GangServiceClient(cluster.address, grpcChannelCredentials(cluster.tls!), clientChannelOptions());
    const rgs = new ReplicaGroupServiceClient(cluster.address, grpcChannelCredentials(cluster.tls!), clientChannelOptions());
    try {
      expect(await refusal(call(gangs.listGangs.bind(gangs), { pageSize: 0, pageToken: token, state: 0, namePrefix: '' }, md))).toMatch(/^MUSTER_INVALID_ARGUMENT: page_token belongs to the nodes list/);
      expect(await refusal(call(rgs.listReplicaGroups.bind(rgs), { pageSize: 0, pageToken: token, namePrefix: '' }, md))).toMatch(/^MUSTER_INVALID_ARGUMENT: page_token belongs to the nodes list/);
    } finally {
      gangs.close();
      rgs.close();
    }
    expect(await refusal(listNodes({ pageSize: 10, pageToken: token, labels: { rack: 'r1' } }))).toMatch(/^MUSTER_INVALID_ARGUMENT: page_token was issued for other filters/);
    const [body, tag] = token.split('.') as [string, string];
    const edited = Buffer.from(JSON.stringify({ ...(JSON.parse(Buffer.from(body, 'base64url').toString()) as object), k: 'sim-200' })).toString('base64url');
    expect(await refusal(listNodes({ pageSize: 10, pageToken: `${edited}.${tag}`, labels: { rack: 'r0' } }))).toMatch(/^MUSTER_INVALID_ARGUMENT: page_token is not one this cluster issued/);
    expect(await refusal(listNodes({ pageToken: 'not-a-token' }))).toMatch(/^MUSTER_INVALID_ARGUMENT: page_token is malformed/);
    // The right token goes on where the first page stopped.
    const second = await listNodes({ pageSize: 10, pageToken: token, labels: { rack: 'r0' } });
    expect(second.nodes[0]!.nodeId).toBe(ids[30]);
  });

  it('the summary counts nodes and GPUs; placement groups page and filter by name', async () => {
    const groups = await Promise.all(Array.from({ length: 5 }, (_, i) => sdk.placementGroups.create({ name: `paged-${i}`, bundles: [{ gpus: 1 }] })));
    await sdk.placementGroups.create({ name: 'other', bundles: [{ gpus: 1 }] });
    await Promise.all(groups.map((g) => g.ready({ timeout: 20_000 })));
    const gpus = ids.reduce((s, _, i) => s + gpusOf(i), 0);
    const summary = await waitFor('all six groups counted', async () => {
      const s = await sdk.summary();
      return s.gpusUsed === 6 ? s : undefined;
    });
    expect(summary).toMatchObject({ nodesAlive: NODES, nodesDead: 0, nodesDraining: 2, gpusTotal: gpus, gpusUsed: 6, gpusFree: gpus - 6, replicaGroups: 0 });
    expect(summary.placementGroups).toEqual({ CREATED: 6 });
    const pages: string[][] = [];
    for await (const page of sdk.placementGroups.pages({ namePrefix: 'paged-', pageSize: 2 })) pages.push(page.map((g) => g.name));
    expect(pages.flat().sort()).toEqual(['paged-0', 'paged-1', 'paged-2', 'paged-3', 'paged-4']);
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    expect((await sdk.placementGroups.list()).map((g) => g.name).sort()).toEqual(['other', 'paged-0', 'paged-1', 'paged-2', 'paged-3', 'paged-4']);
    expect(await sdk.gangs.list({ pageSize: 3 })).toEqual([]);
    expect(await sdk.replicaGroups.list({ pageSize: 3 })).toEqual([]);
  });

  it('CLI: `muster status` shows the summary and lists nodes only on demand, page by page, with filters', async () => {
    const env = cluster.clientEnv();
    const status = await execa(process.execPath, [cli, 'status'], { env });
    expect(status.stdout).toMatch(new RegExp(`^${NODES} node\\(s\\): ${NODES} alive, 0 dead, 2 draining; \\d+ GPU\\(s\\) on alive nodes: \\d+ used, \\d+ free$`, 'm'));
    expect(status.stdout).toMatch(/placement group\(s\)/);
    expect(status.stdout).toMatch(/pass --nodes to list them/);
    expect(status.stdout).not.toMatch(/^sim-000\s/m);

    const listed = await execa(process.execPath, [cli, 'status', '--nodes', '--label', 'rack=r2'], { env });
    const rows = listed.stdout.split('\n').filter((l) => /^sim-\d{3}\s/.test(l)).map((l) => l.split(/\s+/)[0]);
    expect(rows).toEqual(ids.filter((_, i) => i % 3 === 2));
    expect(listed.stdout.match(/^NODE\s/gm)).toHaveLength(1); // one header over all pages

    const json = JSON.parse((await execa(process.execPath, [cli, 'status', '--json', '--nodes', '--prefix', 'sim-29'], { env })).stdout) as {
      cluster: { summary: { nodesAlive: number } };
      nodes: Array<{ id: string }>;
    };
    expect(json.cluster.summary.nodesAlive).toBe(NODES);
    expect(json.nodes.map((n) => n.id)).toEqual(ids.filter((id) => id.startsWith('sim-29')));
  });
});

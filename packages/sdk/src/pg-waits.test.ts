/**
 * `ready()` waits over one WaitPlacementGroups stream, and falls back to
 * unary waits whenever the stream cannot answer. The head is a real grpc-js
 * server on loopback whose stream answers as the real one does (by tag, in
 * any order, refusals inside the reply).
 */
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, MusterError, toGrpcError, waitFor } from '@muster/common';
import { ClusterServiceService, PlacementGroupServiceService, PlacementGroupState as S, type ClusterServiceServer, type PlacementGroupServiceServer, type WaitPlacementGroupsReply, type WaitPlacementGroupsRequest } from '@muster/proto';
import type * as wire from '@muster/proto';
import { connect, type Cluster } from './cluster.js';

type WaitStream = ServerDuplexStream<WaitPlacementGroupsRequest, WaitPlacementGroupsReply>;

interface Head {
  address: string;
  /** Every WaitPlacementGroups stream opened, and whether the client has ended it. */
  streams: Array<{ call: WaitStream; requests: WaitPlacementGroupsRequest[]; ended: boolean }>;
  /** Ids of the unary WaitPlacementGroup calls received. */
  unaryWaits: string[];
}

const servers: Server[] = [];
const clusters: Cluster[] = [];

afterEach(() => {
  for (const c of clusters.splice(0)) c.close();
  for (const s of servers.splice(0)) s.forceShutdown();
});

const record = (id: string, state = S.PLACEMENT_GROUP_STATE_CREATED): wire.PlacementGroup => ({
  id, spec: undefined, state, placements: [], reason: undefined, createdAtMs: 0, stateChangedAtMs: 0, reschedules: 0, requestId: '',
});

/**
 * `onWait` decides what a streamed wait gets: a record now, a refusal, or
 * nothing (the test answers later through `head.streams`). `streamed: false`
 * makes a head that does not know the method (an older version).
 */
async function fakeHead(opts: { onWait?: (req: WaitPlacementGroupsRequest, call: WaitStream) => void; streamed?: boolean } = {}): Promise<Head> {
  const server = new Server();
  const head: Head = { address: '', streams: [], unaryWaits: [] };
  const cluster: Partial<ClusterServiceServer> = {
    getClusterInfo: (_call, cb) => cb(null, { headId: 'h', version: 'test', store: 'embedded', nodesAlive: 0, nodesDead: 0, nats: undefined, heartbeatIntervalMs: 1_000, deadAfterMs: 5_000, summary: undefined }),
  };
  const pgs: Partial<PlacementGroupServiceServer> = {
    getPlacementGroup: (call, cb) => cb(null, record(call.request.id, S.PLACEMENT_GROUP_STATE_RESERVED)),
    waitPlacementGroup: (call, cb) => {
      head.unaryWaits.push(call.request.id);
      cb(null, record(call.request.id));
    },
  };
  if (opts.streamed !== false) {
    pgs.waitPlacementGroups = (call: WaitStream) => {
      const s = { call, requests: [] as WaitPlacementGroupsRequest[], ended: false };
      head.streams.push(s);
      call.on('data', (req: WaitPlacementGroupsRequest) => {
        s.requests.push(req);
        opts.onWait?.(req, call);
      });
      call.on('end', () => {
        s.ended = true;
        call.end();
      });
    };
  }
  server.addService(ClusterServiceService, cluster as ClusterServiceServer);
  server.addService(PlacementGroupServiceService, pgs as PlacementGroupServiceServer);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  servers.push(server);
  head.address = `127.0.0.1:${port}`;
  return head;
}

async function connected(address: string): Promise<Cluster> {
  const cluster = await connect({ address, insecure: true, token: 'secret' });
  clusters.push(cluster);
  return cluster;
}

const answerNow = (req: WaitPlacementGroupsRequest, call: WaitStream) =>
  call.write({ tag: req.tag, group: record(req.id), errorCode: '', errorMessage: '', more: [] });

describe('placement group waits over one stream', () => {
  it('sends many waits over one stream and matches answers that come back in any order', async () => {
    const head = await fakeHead();
    const cluster = await connected(head.address);
    const groups = await Promise.all(['a', 'b', 'c', 'd'].map((id) => cluster.placementGroups.get(id)));
    const ready = Promise.all(groups.map((g) => g.ready({ timeout: 5_000 })));
    await waitFor('4 waits on the stream', () => head.streams[0]?.requests.length === 4);
    const { call, requests } = head.streams[0]!;
    for (const req of [...requests].reverse()) answerNow(req, call);
    const done = await ready;
    expect(done.map((g) => [g.id, g.state])).toEqual(['a', 'b', 'c', 'd'].map((id) => [id, 'created']));
    expect(head.streams).toHaveLength(1);
    expect(new Set(requests.map((r) => r.tag)).size).toBe(4);
    expect(requests.every((r) => r.timeoutMs > 4_000 && r.timeoutMs <= 5_000)).toBe(true);
    expect(head.unaryWaits).toEqual([]);
  });

  it('asks for batched answers and reads the answers a reply carries in more', async () => {
    const head = await fakeHead();
    const cluster = await connected(head.address);
    const groups = await Promise.all(['a', 'b', 'c'].map((id) => cluster.placementGroups.get(id)));
    const ready = Promise.all(groups.map((g) => g.ready({ timeout: 5_000 })));
    await waitFor('3 waits on the stream', () => head.streams[0]?.requests.length === 3);
    const { call, requests } = head.streams[0]!;
    expect(requests.every((r) => r.batchedAnswers)).toBe(true);
    const [first, ...rest] = requests.map((r) => ({ tag: r.tag, group: record(r.id), errorCode: '', errorMessage: '', more: [] }));
    call.write({ ...first!, more: rest });
    expect((await ready).map((g) => g.state)).toEqual(['created', 'created', 'created']);
    expect(head.unaryWaits).toEqual([]);
  });

  it('rejects with the refusal the head puts in the reply', async () => {
    const head = await fakeHead({
      onWait: (req, call) => call.write({ tag: req.tag, group: undefined, errorCode: ErrorCode.NOT_FOUND, errorMessage: `no placement group "${req.id}"`, more: [] }),
    });
    const cluster = await connected(head.address);
    const g = await cluster.placementGroups.get('gone');
    const err = await g.ready({ timeout: 5_000 }).then(() => expect.unreachable(), (e: unknown) => e as MusterError);
    expect(err.code).toBe(ErrorCode.NOT_FOUND);
    expect(err.message).toContain('no placement group "gone"');
    expect(head.unaryWaits).toEqual([]);
  });

  it('goes on by unary call for the waits of a stream the head ends (it stopped leading)', async () => {
    const head = await fakeHead();
    const cluster = await connected(head.address);
    const groups = await Promise.all(['a', 'b'].map((id) => cluster.placementGroups.get(id)));
    const ready = Promise.all(groups.map((g) => g.ready({ timeout: 5_000 })));
    await waitFor('2 waits on the stream', () => head.streams[0]?.requests.length === 2);
    head.streams[0]!.call.emit('error', toGrpcError(new MusterError(ErrorCode.NOT_LEADER, 'this head is a standby')));
    expect((await ready).map((g) => g.state)).toEqual(['created', 'created']);
    expect(head.unaryWaits.sort()).toEqual(['a', 'b']);
  });

  it('waits by unary call on a head that does not serve the stream', async () => {
    const head = await fakeHead({ streamed: false });
    const cluster = await connected(head.address);
    for (const id of ['a', 'b']) await (await cluster.placementGroups.get(id)).ready({ timeout: 5_000 });
    expect(head.unaryWaits).toEqual(['a', 'b']);
  });

  it('ends an idle stream, so it does not keep the process alive, and opens a new one for the next wait', async () => {
    const head = await fakeHead({ onWait: answerNow });
    const cluster = await connected(head.address);
    await (await cluster.placementGroups.get('a')).ready({ timeout: 5_000 });
    await waitFor('the idle stream to be ended by the client', () => head.streams[0]?.ended, { timeoutMs: 3_000 });
    await (await cluster.placementGroups.get('b')).ready({ timeout: 5_000 });
    expect(head.streams).toHaveLength(2);
    expect(head.streams[1]!.requests.map((r) => r.id)).toEqual(['b']);
    expect(head.unaryWaits).toEqual([]);
  });
});

/**
 * The SDK finds the leader among several heads and follows it across a
 * failover. Fake heads are real grpc-js servers on loopback implementing
 * ClusterService: a standby refuses as a real one does (MUSTER_NOT_LEADER,
 * with or without the leader's address), a leader answers.
 */
import { createServer } from 'node:net';
import { credentials, Server, ServerCredentials, type sendUnaryData, type ServerWritableStream } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, MusterError, toGrpcError, type ErrorCode as Code } from '@muster/common';
import { ClusterServiceService, PlacementGroupServiceService, PlacementGroupState, type ClusterEvent, type ClusterInfo, type ClusterServiceServer, type PlacementGroupServiceServer, type WatchEventsRequest } from '@muster/proto';
import type * as wire from '@muster/proto';
import { connect, type Cluster } from './cluster.js';
import { Endpoints, type RetryNotice } from './endpoints.js';

interface FakeHead {
  address: string;
  /** GetClusterInfo calls received. */
  calls: number;
  /** WatchEvents requests received. */
  watches: WatchEventsRequest[];
  /** Request ids of the CreatePlacementGroup calls received. */
  creates: string[];
  /** Timeouts of the WaitPlacementGroup calls received. */
  waits: number[];
  server: Server;
}

interface HeadBehaviour {
  /** The error a call of `method` gets; none: the head leads and answers. */
  refuse?: (method: string) => MusterError | undefined;
  /** Events a watch sends (those after the request's afterId), then the stream stays open. */
  events?: ClusterEvent[];
  /** How long WaitPlacementGroup takes to answer (or to refuse). */
  waitMs?: number;
  /** Takes GetClusterInfo calls and never answers (a frozen head). */
  silent?: boolean;
}

const servers: Server[] = [];
const clusters: Cluster[] = [];

afterEach(() => {
  for (const c of clusters.splice(0)) c.close();
  for (const s of servers.splice(0)) s.forceShutdown();
});

async function fakeHead(headId: string, behaviour: HeadBehaviour = {}): Promise<FakeHead> {
  const server = new Server();
  const head: FakeHead = { address: '', calls: 0, watches: [], creates: [], waits: [], server };
  const info: ClusterInfo = { headId, version: 'test', store: 'etcd', nodesAlive: 0, nodesDead: 0, nats: undefined, heartbeatIntervalMs: 1_000, deadAfterMs: 5_000, summary: undefined };
  const impl: Partial<ClusterServiceServer> = {
    getClusterInfo: (_call, cb) => {
      head.calls++;
      if (behaviour.silent) return;
      const refusal = behaviour.refuse?.('getClusterInfo');
      if (refusal) cb(toGrpcError(refusal));
      else cb(null, info);
    },
    listNodes: (_call, cb) => cb(null, { nodes: [], nextPageToken: '' }),
    getNode: (call, cb) => cb(toGrpcError(new MusterError(ErrorCode.NOT_FOUND, `no node "${call.request.nodeId}"`))),
    watchEvents: (call: ServerWritableStream<WatchEventsRequest, ClusterEvent>) => {
      head.watches.push(call.request);
      const refusal = behaviour.refuse?.('watchEvents');
      if (refusal) return call.emit('error', toGrpcError(refusal));
      for (const e of behaviour.events ?? []) if (e.id > call.request.afterId) call.write(e);
      if (call.request.markReplayEnd) call.write({ ...event(''), kind: '', nodeId: '', replayEnd: true });
    },
  };
  const pg = (id: string, requestId = ''): wire.PlacementGroup => ({ id, spec: undefined, state: PlacementGroupState.PLACEMENT_GROUP_STATE_CREATED, placements: [], reason: undefined, createdAtMs: 0, stateChangedAtMs: 0, reschedules: 0, requestId });
  const answer = (method: string, cb: sendUnaryData<wire.PlacementGroup>, res: wire.PlacementGroup) => {
    const refusal = behaviour.refuse?.(method);
    if (refusal) cb(toGrpcError(refusal));
    else cb(null, res);
  };
  const pgImpl: Partial<PlacementGroupServiceServer> = {
    createPlacementGroup: (call, cb) => {
      head.creates.push(call.request.requestId);
      answer('createPlacementGroup', cb, pg('pg-1', call.request.requestId));
    },
    getPlacementGroup: (call, cb) => answer('getPlacementGroup', cb, pg(call.request.id)),
    listPlacementGroups: (_call, cb) => cb(null, { groups: [], nextPageToken: '' }),
    removePlacementGroup: (call, cb) => answer('removePlacementGroup', cb, pg(call.request.id)),
    waitPlacementGroup: (call, cb) => {
      head.waits.push(call.request.timeoutMs);
      setTimeout(() => answer('waitPlacementGroup', cb, pg(call.request.id)), behaviour.waitMs ?? 0);
    },
  };
  server.addService(ClusterServiceService, impl as ClusterServiceServer);
  server.addService(PlacementGroupServiceService, pgImpl as PlacementGroupServiceServer);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  servers.push(server);
  head.address = `127.0.0.1:${port}`;
  return head;
}

/** An address where nothing listens: a head that is down. */
async function deadAddress(): Promise<string> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return `127.0.0.1:${port}`;
}

const standby = (leader?: string) => new MusterError(ErrorCode.NOT_LEADER, 'this head is a standby', { details: leader ? { leader } : {} });
const notLeader = (leader?: string) => () => standby(leader);

async function connected(address: string): Promise<Cluster> {
  const cluster = await connect({ address, insecure: true, token: 'secret' });
  clusters.push(cluster);
  return cluster;
}

async function failure(p: Promise<unknown>): Promise<{ err: MusterError; ms: number }> {
  const started = Date.now();
  const err = await p.then(
    () => expect.unreachable('expected a rejection'),
    (e: unknown) => e as MusterError,
  );
  return { err, ms: Date.now() - started };
}

describe('leader discovery', () => {
  it('goes straight to the leader a standby names, skipping the heads between', async () => {
    const b = await fakeHead('b');
    const a = await fakeHead('a', { refuse: notLeader(b.address) });
    const c = await fakeHead('c', { refuse: notLeader() });
    const cluster = await connected(`${a.address},${c.address},${b.address}`);
    expect((await cluster.info()).headId).toBe('b');
    expect(cluster.address).toBe(b.address);
    expect([a.calls, c.calls, b.calls]).toEqual([1, 0, 2]);
  });

  it('plaintext: refuses a leader hint outside the configured list, at once, sending nothing there (TLS follows it: tls-hints.test.ts)', async () => {
    const b = await fakeHead('b');
    const a = await fakeHead('a', { refuse: notLeader(b.address) });
    const { err } = await failure(connect({ address: a.address, insecure: true, token: 'secret' }));
    expect(err.code).toBe(ErrorCode.FAILED_PRECONDITION);
    expect(err.message).toContain(`head ${a.address} names ${b.address} as the leader, which is not among the configured heads`);
    expect(err.message).toContain('connect with TLS');
    expect(b.calls).toBe(0);
  });

  it('rotates through the list when a standby knows no leader and a head is down', async () => {
    const a = await fakeHead('a', { refuse: notLeader() });
    const c = await deadAddress();
    const b = await fakeHead('b');
    const cluster = await connected(` ${a.address}, ${c},${b.address} `);
    expect((await cluster.info()).headId).toBe('b');
    expect(cluster.address).toBe(b.address);
  });

  it('gives up at the deadline, naming every head it tried', async () => {
    const heads = await Promise.all(['a', 'b', 'c'].map((id) => fakeHead(id, { refuse: notLeader() })));
    const list = heads.map((h) => h.address).join(',');
    const { err, ms } = await failure(connect({ address: list, insecure: true, token: 'secret', callTimeoutMs: 600 }));
    expect(err.code).toBe(ErrorCode.NOT_LEADER);
    expect(err.message).toContain(`no leader among ${list} answered within 600 ms`);
    expect(err.message).toContain('this head is a standby');
    expect(ms).toBeLessThan(600 + 200);
    for (const h of heads) expect(h.calls).toBeGreaterThanOrEqual(1);
  });

  it('tells onRetry before each retry (which head, why, how long is left), and names a lone dead head', async () => {
    const b = await fakeHead('b');
    const a = await fakeHead('a', { refuse: notLeader() });
    const notices: RetryNotice[] = [];
    const cluster = await connect({ address: `${a.address},${b.address}`, insecure: true, token: 'secret', onRetry: (n) => notices.push(n) });
    clusters.push(cluster);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({ address: a.address, error: { code: ErrorCode.NOT_LEADER } });
    expect(notices[0]!.deadlineInMs).toBeGreaterThan(9_000);
    expect(notices[0]!.retryInMs).toBeLessThanOrEqual(50);

    const dead = await deadAddress();
    const seen: RetryNotice[] = [];
    const { err } = await failure(connect({ address: dead, insecure: true, token: 'secret', callTimeoutMs: 500, onRetry: (n) => seen.push(n) }));
    expect(seen.length).toBeGreaterThanOrEqual(2);
    expect(seen.every((n) => n.address === dead && n.error.code === ErrorCode.UNAVAILABLE)).toBe(true);
    expect(seen.at(-1)!.deadlineInMs).toBeLessThan(seen[0]!.deadlineInMs);
    expect(err.message).toMatch(new RegExp(`^head ${dead} did not answer within 500 ms; last error \\(from ${dead}\\): cannot connect: connect ECONNREFUSED`));
  });

  it.each<[string, Code]>([
    ['a wrong token', ErrorCode.UNAUTHENTICATED],
    ['an invalid argument', ErrorCode.INVALID_ARGUMENT],
  ])('does not retry %s', async (_, code) => {
    const a = await fakeHead('a', { refuse: () => new MusterError(code, 'refused') });
    const b = await fakeHead('b');
    const { err } = await failure(connect({ address: `${a.address},${b.address}`, insecure: true, token: 'secret' }));
    expect(err).toMatchObject({ code, message: 'refused' });
    expect([a.calls, b.calls]).toEqual([1, 0]);
  });

  it('names the entry that is not host:port', async () => {
    const { err } = await failure(connect({ address: '127.0.0.1:7400,head-2', insecure: true, token: 'secret' }));
    expect(err).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, message: 'connect(): address.1: "head-2" is not host:port' });
    const { err: err2 } = await failure(connect({ addresses: ['h:7400', 'h:99999'], insecure: true, token: 'secret' }));
    expect(err2.message).toBe('connect(): addresses.1: "h:99999" is not host:port');
    const { err: err3 } = await failure(connect({ insecure: true, token: 'secret' }));
    expect(err3.message).toBe('connect(): address: give address or addresses (or a context)');
  });
});

describe('control calls across a failover', () => {
  it('send a create again to the new leader with the same request id', async () => {
    const b = await fakeHead('b');
    // The head that led at connect() goes away during the create (after committing it, maybe).
    const a = await fakeHead('a', { refuse: (m) => (m === 'createPlacementGroup' ? new MusterError(ErrorCode.UNAVAILABLE, 'connection reset') : undefined) });
    const cluster = await connected(`${a.address},${b.address}`);
    const group = await cluster.placementGroups.create({ name: 'g', bundles: [{ gpus: 1 }] });
    expect(group.id).toBe('pg-1');
    expect(a.creates).toHaveLength(1);
    expect(b.creates).toEqual(a.creates);
    expect(cluster.address).toBe(b.address);
  });

  it('send a wait cut by a failover again for the time that is left', async () => {
    let leading = true;
    const b = await fakeHead('b');
    const a = await fakeHead('a', { refuse: () => (leading ? undefined : standby(b.address)), waitMs: 200 });
    const cluster = await connected(`${a.address},${b.address}`);
    const group = await cluster.placementGroups.get('g');
    const ready = group.ready({ timeout: 2_000 });
    setTimeout(() => (leading = false), 100); // A loses the lead while the wait is on
    await ready;
    expect(a.waits).toHaveLength(1);
    expect(a.waits[0]).toBeGreaterThan(2_000 - 50);
    expect(b.waits).toHaveLength(1);
    expect(b.waits[0]).toBeLessThanOrEqual(2_000 - 200);
    expect(b.waits[0]).toBeGreaterThan(2_000 - 500);
  });
});

const event = (id: string): ClusterEvent => ({ id, timeMs: 0, kind: 'node.registered', nodeId: `node-${id}`, message: '', attributes: {}, replayEnd: false });

describe('the end of the event replay', () => {
  it('asks for the marker, never yields it, and with untilReplayed ends right after the retained events', async () => {
    const a = await fakeHead('a', { events: [event('1'), event('2')] });
    const cluster = await connected(a.address);
    let replayed = 0;
    const seen: string[] = [];
    for await (const e of cluster.events({ replay: true, untilReplayed: true, onReplayed: () => replayed++ })) seen.push(e.id);
    expect(seen).toEqual(['1', '2']);
    expect(replayed).toBe(1);
    expect(a.watches.map((w) => w.markReplayEnd)).toEqual([true]);
  });

  it('calls onReplayed once, before the first live event', async () => {
    const a = await fakeHead('a', { events: [event('1')] });
    const cluster = await connected(a.address);
    const stop = new AbortController();
    const order: string[] = [];
    for await (const e of cluster.events({ replay: true, signal: stop.signal, onReplayed: () => (order.push('replayed'), stop.abort()) })) order.push(e.id);
    expect(order).toEqual(['1', 'replayed']);
  });
});

describe('watch streams across a failover', () => {

  it('resume on the next head after the last event delivered', async () => {
    const a = await fakeHead('a', { events: [event('1')] });
    const b = await fakeHead('b', { events: [event('1'), event('2')] });
    const cluster = await connected(`${a.address},${b.address}`);
    const stop = new AbortController();
    const seen: string[] = [];
    for await (const e of cluster.events({ replay: true, signal: stop.signal })) {
      seen.push(e.id);
      if (e.id === '1') a.server.forceShutdown(); // the leader dies mid-stream
      if (e.id === '2') stop.abort();
    }
    expect(seen).toEqual(['1', '2']);
    expect(b.watches.map((w) => w.afterId)).toEqual(['1']);
    expect(cluster.address).toBe(b.address);
  });
});

describe('Endpoints', () => {
  const refusal = (leader?: string) => notLeader(leader)();

  it('moves once when calls that failed together all report it', () => {
    const e = new Endpoints(['a:1', 'b:1', 'c:1'], { channel: credentials.createInsecure(), tls: true });
    e.failover('a:1', refusal());
    e.failover('a:1', refusal());
    expect(e.current).toBe('b:1');
  });

  it('goes to a hint, then rotates on from where the hint stands in the list', () => {
    const e = new Endpoints(['a:1', 'b:1', 'c:1'], { channel: credentials.createInsecure(), tls: true });
    e.failover('a:1', refusal('c:1'));
    expect(e.current).toBe('c:1');
    e.failover('c:1', refusal());
    expect(e.current).toBe('a:1');
    e.failover('a:1', refusal('not an address'));
    expect(e.current).toBe('b:1');
  });
});

describe('a head that takes calls and never answers (frozen)', () => {
  it('costs one attempt of at most 3 s, then the next head answers', async () => {
    const frozen = await fakeHead('frozen', { silent: true });
    const leader = await fakeHead('leader');
    const started = Date.now();
    const cluster = await connected(`${frozen.address},${leader.address}`);
    expect(cluster.address).toBe(leader.address);
    expect(frozen.calls).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_900);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

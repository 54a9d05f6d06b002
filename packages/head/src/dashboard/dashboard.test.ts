/**
 * The dashboard's server side without a browser: API calls go through the
 * gate with the browser's credential (a viewer reads, a caller is refused by
 * the access table, a standby refuses with the leader's address), sessions
 * and tickets are one-use and bounded, and the views say which rank holds
 * which GPU.
 */
import type { PeerCertificate } from 'node:tls';
import type { ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { metrics } from '@opentelemetry/api';
import { ErrorCode, MusterError } from '@muster/common';
import { createLogger } from '@muster/common/log';
import { ClusterServiceService, NodeState, PlacementGroupServiceService, type ClusterEvent, type Gang, type Node, type PlacementGroup } from '@muster/proto';
import { LeaderGate } from '../ha/gate.js';
import { serverStream, unary, type RpcContext } from '../api/rpc.js';
import { GateInvoker } from './invoke.js';
import { answer } from './routes.js';
import { directCredential, startDashboard, type Dashboard } from './server.js';
import type { IncomingMessage } from 'node:http';
import { Sessions, sessionCookie, setCookie } from './sessions.js';
import { domains, gpuUse, gpusUsedByNode } from './views.js';

const TOKEN = 'x'.repeat(43);
const meter = metrics.getMeter('test');
const ctx: RpcContext = { token: TOKEN, pageKey: Buffer.alloc(32), rpcCount: meter.createCounter('c'), rpcLatency: meter.createHistogram('h') };
const cert = (role: string, name: string) => ({ subject: { O: `muster:${role}`, CN: name }, subjectaltname: '' }) as unknown as PeerCertificate;

function node(id: string, labels: Record<string, string> = {}, state = NodeState.NODE_STATE_ALIVE): Node {
  const gpus = [0, 1, 2, 3].map((index) => ({ index, uuid: `GPU-${id}-${index}`, name: 'H100', memoryMib: 81_920, mig: index === 3 ? [{ profile: '1g.10gb', uuid: `MIG-${id}-3-0`, index: 0 }] : [], pciBusId: '', migEnabled: index === 3 }));
  return { nodeId: id, state, labels, taints: [], inventory: { hostname: id, cpuCores: 8, memoryBytes: 0, gpus, topology: undefined, nvlinkDomain: '', source: 'test', customResources: {} }, address: '', incarnation: '', agentVersion: '', registeredAtMs: 0, lastHeartbeatMs: 0, stateChangedAtMs: 0, stateReason: '', draining: false, drainReason: '', drainSinceMs: 0, drainedBy: '' };
}

/** `hold`: the event stream stays open after the events until it is cancelled (a live watch). */
function gateWith(events: ClusterEvent[], hold = false) {
  const walked: number[] = []; // the pageSize of each ListPlacementGroups call
  const gate = new LeaderGate(TOKEN, () => new MusterError(ErrorCode.NOT_LEADER, 'not the leader', { details: { leader: '10.0.0.2:7400' } }));
  const impl = {
    listNodes: unary(ctx, 'ListNodes', async () => ({ nodes: [node('n1')], nextPageToken: '' })),
    watchEvents: serverStream(ctx, 'WatchEvents', async (call: { write(e: ClusterEvent): boolean; once(ev: 'cancelled', f: () => void): void }) => {
      for (const e of events) call.write(e);
      if (hold) await new Promise<void>((resolve) => call.once('cancelled', resolve));
    }),
  };
  const groups = {
    listPlacementGroups: unary(ctx, 'ListPlacementGroups', async (req: { pageSize: number }) => (walked.push(req.pageSize), { groups: [{ id: 'pg1', spec: { name: 'a' }, placements: [{ bundleIndex: 0, nodeId: 'n1', gpuIndices: [0, 1], migUuids: [] }] }], nextPageToken: '' })),
  };
  const P = PlacementGroupServiceService;
  const invoke = new GateInvoker(new Map<ServiceDefinition, UntypedServiceImplementation>([[ClusterServiceService, gate.serve(ClusterServiceService)], [P, gate.serve(P)]]), TOKEN);
  return { gate, invoke, walked, open: () => gate.open(new Map<ServiceDefinition, UntypedServiceImplementation>([[ClusterServiceService, impl as never], [P, groups as never]])) };
}

describe('dashboard API calls through the gate', () => {
  it('answers the token and a viewer; refuses a caller and a stranger by the access table', async () => {
    const { invoke, open } = gateWith([]);
    open();
    const list = (cred: object) => invoke.unary<{ nodes: Node[] }>(ClusterServiceService, 'listNodes', { state: 0, pageSize: 10, pageToken: '', nodeIdPrefix: '', labels: {} }, cred);
    expect((await list({ token: true })).nodes.map((n) => n.nodeId)).toEqual(['n1']);
    expect((await list({ cert: cert('viewer', 'vera') })).nodes).toHaveLength(1);
    await expect(list({ cert: cert('caller', 'app') })).rejects.toMatchObject({ code: ErrorCode.PERMISSION_DENIED, message: expect.stringMatching(/caller "app" may not call ClusterService\/ListNodes: it needs role viewer/) });
    await expect(list({})).rejects.toMatchObject({ code: ErrorCode.UNAUTHENTICATED });
  });

  it('on a standby: refuses with the leader\'s address', async () => {
    const { invoke } = gateWith([]);
    const refused = invoke.unary(ClusterServiceService, 'listNodes', {}, { token: true });
    await expect(refused).rejects.toMatchObject({ code: ErrorCode.NOT_LEADER, details: { leader: '10.0.0.2:7400' } });
  });

  it('streams: every message written, then the end', async () => {
    const e = (id: string): ClusterEvent => ({ id, timeMs: 1, kind: 'node.registered', nodeId: 'n1', message: '', attributes: {}, replayEnd: false });
    const { invoke, open } = gateWith([e('1'), e('2')]);
    open();
    const got: string[] = [];
    const s = invoke.stream<ClusterEvent>(ClusterServiceService, 'watchEvents', {}, { cert: cert('viewer', 'vera') }, (m) => (got.push(m.id), true));
    await s.done;
    expect(got).toEqual(['1', '2']);
    const refused = invoke.stream(ClusterServiceService, 'watchEvents', {}, { cert: cert('caller', 'app') }, () => true);
    await expect(refused.done).rejects.toMatchObject({ code: ErrorCode.PERMISSION_DENIED });
  });
});

describe('the JSON API routes', () => {
  it('answers a list through the gate, and refuses a bad query naming the key', async () => {
    const { invoke, open } = gateWith([]);
    open();
    const res = (await answer(invoke, '/nodes', { pageSize: '10', state: 'alive' }, { token: true })) as { nodes: Array<{ nodeId: string; gpusUsed: number }> };
    expect(res.nodes).toMatchObject([{ nodeId: 'n1', state: 'NODE_STATE_ALIVE', gpusUsed: 2 }]);
    await expect(answer(invoke, '/nodes', { pageSiz: '10' }, { token: true })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, message: expect.stringMatching(/pageSiz: unknown key; did you mean "pageSize"\?/) });
    await expect(answer(invoke, '/nodes', { state: 'sleepy' }, { token: true })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, message: expect.stringMatching(/state: unknown state "sleepy"/) });
    await expect(answer(invoke, '/nodes', { pageSize: '5000' }, { token: true })).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, message: expect.stringMatching(/pageSize/) });
    await expect(answer(invoke, '/secrets', {}, { token: true })).rejects.toMatchObject({ code: ErrorCode.NOT_FOUND });
  });

  it('shares one walk of the placement groups between askers, each authorized on its own', async () => {
    const { invoke, open, walked } = gateWith([]);
    open();
    for (const who of ['vera', 'vic']) await answer(invoke, '/nodes', {}, { cert: cert('viewer', who) });
    await answer(invoke, '/overview', {}, { token: true });
    expect(walked.filter((size) => size === 1_000)).toHaveLength(1);
    expect(walked.filter((size) => size === 1)).toHaveLength(3);
    await expect(answer(invoke, '/nodes', {}, { cert: cert('caller', 'app') })).rejects.toMatchObject({ code: ErrorCode.PERMISSION_DENIED });
  });
});

describe('sessions', () => {
  const who = { role: 'viewer' as const, name: 'vera', callGroups: [] };
  it('a ticket signs in once, within 60 s', () => {
    let now = 0;
    const s = new Sessions({ now: () => now });
    const { ticket } = s.ticket({ token: true }, who);
    expect(s.redeem(ticket)?.who).toEqual(who);
    expect(s.redeem(ticket)).toBeUndefined();
    const late = s.ticket({ token: true }, who).ticket;
    now = 60_001;
    expect(s.redeem(late)).toBeUndefined();
  });

  it('a session ends after its ttl; the oldest go beyond the bound', () => {
    let now = 0;
    const s = new Sessions({ now: () => now, ttlMs: 1_000, maxSessions: 3 });
    const ids = [1, 2, 3, 4].map(() => s.open({ token: true }, who).id);
    expect(s.size).toBe(3);
    expect(s.get(ids[0])).toBeUndefined();
    expect(s.get(ids[3])?.who.name).toBe('vera');
    now = 1_000;
    expect(s.get(ids[3])).toBeUndefined();
  });

  it('a certificate session ends with its certificate', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    const s = new Sessions({ now: () => now, ttlMs: 8 * 3600_000 });
    const short = { ...cert('viewer', 'vera'), valid_to: 'Jan  1 01:00:00 2026 GMT' } as PeerCertificate;
    expect(s.open({ cert: short }, who).maxAgeS).toBe(3_600);
    expect(s.open({ token: true }, who).maxAgeS).toBe(8 * 3_600);
  });

  it('ends a session\'s streams when it is closed or found expired', () => {
    let now = 0;
    const s = new Sessions({ now: () => now, ttlMs: 1_000 });
    const [a, b] = [s.open({ token: true }, who).id, s.open({ token: true }, who).id];
    const ended: string[] = [];
    s.watch(a, () => ended.push('a1'));
    const unwatch = s.watch(a, () => ended.push('a2'));
    s.watch(b, () => ended.push('b'));
    unwatch();
    s.close(a);
    expect(ended).toEqual(['a1']);
    now = 1_000;
    expect(s.get(b)).toBeUndefined();
    expect(ended).toEqual(['a1', 'b']);
  });

  it('bounds sessions and tickets per identity, dropping the expired before the live', () => {
    let now = 0;
    const s = new Sessions({ now: () => now, ttlMs: 1_000, maxSessions: 4, maxSessionsPerWho: 2 });
    const other = { ...who, name: 'otto' };
    const otto = s.open({ token: true }, other).id;
    const mine = [1, 2, 3].map(() => s.open({ token: true }, who).id);
    expect(s.get(otto)?.who.name).toBe('otto'); // vera's third session evicted vera's first, not otto's
    expect(s.get(mine[0])).toBeUndefined();
    expect(s.get(mine[2])?.who.name).toBe('vera');
    now = 500;
    const late = [s.open({ token: true }, { ...who, name: 'a' }).id, s.open({ token: true }, { ...who, name: 'b' }).id];
    expect(s.size).toBe(4); // the bound of all: the oldest (otto's) went
    now = 1_200; // otto and vera expired, a and b live
    s.open({ token: true }, { ...who, name: 'c' });
    expect(late.map((id) => s.get(id)?.who.name)).toEqual(['a', 'b']);
    expect(s.size).toBe(3);

    const tickets = Array.from({ length: 9 }, () => s.ticket({ token: true }, who).ticket);
    const others = s.ticket({ token: true }, other).ticket;
    expect(s.redeem(tickets[0]!)).toBeUndefined();
    expect(s.redeem(tickets[8]!)?.who.name).toBe('vera');
    expect(s.redeem(others)?.who.name).toBe('otto');
  });

  it('reads and writes its cookie', () => {
    expect(sessionCookie('a=b; muster_session=abc_-1; c=d')).toBe('abc_-1');
    expect(sessionCookie(undefined)).toBeUndefined();
    expect(setCookie('abc', 60, true)).toBe('muster_session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure');
  });
});

describe('views', () => {
  const pg = (id: string, nodeId: string, gpuIndices: number[], migUuids: string[] = []): PlacementGroup =>
    ({ id, spec: { name: `${id}-name` }, placements: [{ bundleIndex: 0, nodeId, gpuIndices, migUuids }] }) as unknown as PlacementGroup;
  const gang = { id: 'g1', spec: { name: 'train' }, placementGroupId: 'pg1', ranks: [{ rank: 0, nodeId: 'n1', cudaVisibleDevices: '0' }, { rank: 1, nodeId: 'n1', cudaVisibleDevices: 'GPU-n1-1' }] } as unknown as Gang;

  it('says which group bundle and gang rank hold each GPU and MIG slice', () => {
    const held = gpuUse(node('n1'), [pg('pg1', 'n1', [0, 1]), pg('pg2', 'n1', [], ['MIG-n1-3-0']), pg('pg3', 'n2', [2])], [gang]);
    expect(held).toEqual([
      { gpuIndex: 0, pg: 'pg1', pgName: 'pg1-name', bundleIndex: 0, gang: 'g1', gangName: 'train', rank: 0 },
      { gpuIndex: 1, pg: 'pg1', pgName: 'pg1-name', bundleIndex: 0, gang: 'g1', gangName: 'train', rank: 1 },
      { gpuIndex: 3, migUuid: 'MIG-n1-3-0', pg: 'pg2', pgName: 'pg2-name', bundleIndex: 0 },
    ]);
  });

  it('counts nodes and GPUs per zone and rack', () => {
    const nodes = [node('a', { 'muster.io/zone': 'z1', 'muster.io/rack': 'r1' }), node('b', { 'muster.io/zone': 'z1', 'muster.io/rack': 'r1' }, NodeState.NODE_STATE_DEAD), node('c')];
    const used = gpusUsedByNode([pg('p', 'a', [0, 1], ['MIG-a-3-0'])]);
    expect(domains(nodes, used)).toEqual([
      { zone: '', rack: '', alive: 1, dead: 0, draining: 0, gpusTotal: 4, gpusUsed: 0 },
      { zone: 'z1', rack: 'r1', alive: 1, dead: 1, draining: 0, gpusTotal: 4, gpusUsed: 3 },
    ]);
  });
});

/** A plaintext dashboard over the test gate, and fetch against it. */
async function served(hold = false): Promise<{ d: Dashboard; call(path: string, init?: RequestInit): Promise<Response> }> {
  const { invoke, open } = gateWith([], hold);
  open();
  const d = await startDashboard({ listen: '127.0.0.1:0', tls: undefined, assetsDir: '/nonexistent', token: TOKEN, invoke, log: createLogger('test', { level: 'silent' }) });
  return { d, call: (path, init) => fetch(`${d.url}${path}`, init) };
}

describe('the dashboard server', () => {
  it('answers a malformed %-escape in the path with 400', async () => {
    const { d, call } = await served();
    try {
      const auth = { headers: { authorization: `Bearer ${TOKEN}` } };
      for (const path of ['/api/nodes/%E0%A4%A', '/api/gangs/%zz/logs']) {
        const res = await call(path, auth);
        expect(res.status).toBe(400);
        expect(await res.json()).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, error: expect.stringMatching(/malformed %-escape/) });
      }
    } finally {
      await d.close();
    }
  });

  it('ends a session\'s event stream when it signs out', async () => {
    const { d, call } = await served(true);
    try {
      const signIn = await call('/api/session', { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
      const cookie = signIn.headers.get('set-cookie')!.split(';')[0]!;
      const stream = await call('/api/events', { headers: { cookie } });
      expect(stream.status).toBe(200);
      const reader = stream.body!.getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toContain(': open');
      expect((await call('/api/logout', { method: 'POST', headers: { cookie } })).status).toBe(200);
      let rest = await reader.read();
      while (!rest.done) rest = await reader.read();
      expect(rest.done).toBe(true);
    } finally {
      await d.close();
    }
  });

  it('authenticates a direct credential as gRPC does: the certificate wins over the token beside it', () => {
    const req = (authorization: string | undefined, peer?: PeerCertificate) =>
      ({ headers: { authorization }, socket: { authorized: peer !== undefined, getPeerCertificate: () => peer } }) as unknown as IncomingMessage;
    expect(directCredential(req(`Bearer ${TOKEN}`, cert('viewer', 'vera')), TOKEN)).toMatchObject({ cred: { cert: expect.anything() }, who: { role: 'viewer', name: 'vera' } });
    expect(directCredential(req(`Bearer ${TOKEN}`), TOKEN)).toMatchObject({ cred: { token: true }, who: { role: 'admin' } });
    expect(() => directCredential(req('Bearer wrong', cert('viewer', 'vera')), TOKEN)).toThrow(/wrong cluster token/);
    expect(directCredential(req(undefined), TOKEN)).toBeUndefined();
  });


  it('mints a ticket for a direct credential only, never for a session', async () => {
    const { d, call } = await served();
    try {
      const signIn = await call('/api/session', { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
      expect(signIn.status).toBe(200);
      const cookie = signIn.headers.get('set-cookie')!.split(';')[0]!;
      expect((await call('/api/whoami', { headers: { cookie } })).status).toBe(200);
      expect((await call('/api/tickets', { method: 'POST', headers: { cookie } })).status).toBe(401);
      expect((await call('/api/tickets', { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    } finally {
      await d.close();
    }
  });
});

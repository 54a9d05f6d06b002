/**
 * WatchMembership through a real gRPC stream: the head's ReplicaGroupService
 * (its real handler, fed by a fake controller at its boundary, as
 * packages/head/src/api/stream-bounds.test.ts does) on a grpc-js server on
 * loopback, read by a raw client (what crosses the wire) and by the SDK's
 * `membership()` (what a router gets). A snapshot of 12,000 replicas whose one
 * message would pass 1 MiB crosses in parts of at most 256 KiB and comes out
 * of the SDK whole; the next version follows it. A stream that breaks after
 * some parts (a fake service in the head's place) costs the SDK that partial
 * snapshot only: the reopened stream's whole one is what it yields.
 *
 * The handler is reached as `@muster/head/api/replica-service`, an export
 * with only the `source` condition (vitest resolves it; Node refuses it).
 */
import { credentials, Metadata, Server, ServerCredentials } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { AUTH_HEADER, ErrorCode, MEMBERSHIP_PART_BYTES, membershipParts, MusterError, toGrpcError } from '@muster/common';
import { clientChannelOptions, MAX_SUBJECT_PREFIX_LENGTH, replicaSubject, serverChannelOptions } from '@muster/contracts';
import { replicaService } from '@muster/head/api/replica-service';
import { ClusterInfo, ClusterServiceService, Membership, ReplicaGroupServiceClient, ReplicaGroupServiceService, type MemberReplica, type ReplicaGroupServiceServer } from '@muster/proto';
import { connect, type Cluster } from '@muster/sdk';

const TOKEN = 'membership-parts-token';
const GROUP = 'a-group-name-of-the-longest-kind-42-chars0';

function membership(version: number, n: number): Membership {
  const replicas: MemberReplica[] = Array.from({ length: n }, (_, i) => {
    const replicaId = `r-${i.toString(16).padStart(8, '0')}`;
    return { replicaId, revision: i % 2 ? 'abcdef0123' : '0123abcdef', subject: replicaSubject('p'.repeat(MAX_SUBJECT_PREFIX_LENGTH), GROUP, replicaId) };
  });
  return {
    group: GROUP,
    version,
    replicas,
    revisionWeights: { abcdef0123: 0.1, '0123abcdef': 0.9 },
    maxInFlightPerReplica: 64,
    overflow: { group: 'spill', queuePerReplicaAbove: 4, onBackPressure: false },
    routing: { policy: 'prefix', prefixChars: 256, loadFactor: 1.25 },
    more: false,
  };
}

/** The controller's membership feed, as ReplicaGroupController.watch gives it: v1 now, v2 once `publish`ed. */
function feed(v1: Membership) {
  let publish!: (m: Membership) => void;
  const v2 = new Promise<Membership>((r) => (publish = r));
  return {
    publish: (m: Membership) => publish(m),
    rgs: {
      async *watch(_group: string, signal: AbortSignal): AsyncGenerator<Membership> {
        yield v1;
        yield await v2;
        if (!signal.aborted) await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
      },
    },
  };
}

const servers: Server[] = [];
const clusters: Cluster[] = [];
afterEach(() => {
  for (const c of clusters.splice(0)) c.close();
  for (const s of servers.splice(0)) s.forceShutdown();
});

/** A head on loopback: the real ReplicaGroupService over `rgs`, or `service` in its place. */
async function head(rgs: ReturnType<typeof feed>['rgs'], service?: Partial<ReplicaGroupServiceServer>): Promise<string> {
  const server = new Server(serverChannelOptions());
  servers.push(server);
  const ctx = { token: TOKEN, pageKey: Buffer.alloc(32), rpcCount: { add() {} }, rpcLatency: { record() {} } };
  server.addService(ReplicaGroupServiceService, (service as ReplicaGroupServiceServer | undefined) ?? replicaService(ctx as never, rgs as never));
  server.addService(ClusterServiceService, {
    getClusterInfo: (_call: unknown, cb: (e: null, r: ClusterInfo) => void) => cb(null, { ...ClusterInfo.decode(new Uint8Array()), headId: 'h1' }),
  } as never);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return `127.0.0.1:${port}`;
}

describe('WatchMembership in parts, end to end', () => {
  it('sends a 12,000-replica snapshot (over 1 MiB as one message) in parts ≤ 256 KiB; the SDK yields it whole, then the next version', async () => {
    const v1 = membership(1, 12_000);
    expect(Membership.encode(v1).finish().length).toBeGreaterThan(1024 * 1024);
    const { rgs, publish } = feed(v1);
    const address = await head(rgs);

    // On the wire: several parts, each under the bound, back to back, all of version 1.
    const raw = new ReplicaGroupServiceClient(address, credentials.createInsecure(), clientChannelOptions());
    const md = new Metadata();
    md.set(AUTH_HEADER, `Bearer ${TOKEN}`);
    const stream = raw.watchMembership({ group: GROUP }, md);
    const parts: Membership[] = [];
    for await (const p of stream as AsyncIterable<Membership>) {
      parts.push(p);
      if (!p.more) break;
    }
    stream.cancel();
    raw.close();
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) {
      expect(Membership.encode(p).finish().length).toBeLessThanOrEqual(MEMBERSHIP_PART_BYTES);
      expect(p.version).toBe(1);
    }
    expect(parts.flatMap((p) => p.replicas)).toEqual(v1.replicas);

    // Through the SDK: whole snapshots only.
    const cluster = await connect({ address, insecure: true, token: TOKEN });
    clusters.push(cluster);
    const abort = new AbortController();
    const snapshots = cluster.replicaGroups.membership(GROUP, abort.signal)[Symbol.asyncIterator]();
    const first = (await snapshots.next()).value;
    expect(first).toMatchObject({ group: GROUP, version: 1, revisionWeights: v1.revisionWeights, maxInFlightPerReplica: 64, routing: v1.routing, overflow: { group: 'spill', queuePerReplicaAbove: 4 } });
    expect(first.replicas).toEqual(v1.replicas);

    const v2 = membership(2, 12_001);
    publish(v2);
    const second = (await snapshots.next()).value;
    expect(second.version).toBe(2);
    expect(second.replicas).toEqual(v2.replicas);
    expect(cluster.replicaGroups.membershipDiscards).toEqual({ broken: 0, interleaved: 0, oversized: 0 });
    abort.abort();
    await snapshots.return?.(undefined);
  });

  it('drops a snapshot whose stream broke after some parts; the reopened stream gives a whole one', async () => {
    const v1 = membershipParts(membership(1, 12_000));
    const v2 = membershipParts(membership(2, 12_000));
    let opened = 0;
    const broken: Partial<ReplicaGroupServiceServer> = {
      watchMembership: (call) => {
        // First stream: two parts of version 1, then the stream breaks. Second: version 2, whole.
        if (++opened === 1) {
          call.write(v1[0]!);
          call.write(v1[1]!);
          call.emit('error', toGrpcError(new MusterError(ErrorCode.UNAVAILABLE, 'the head went away')));
        } else for (const p of v2) call.write(p);
      },
    };
    const address = await head(feed(membership(0, 0)).rgs, broken);
    const cluster = await connect({ address, insecure: true, token: TOKEN });
    clusters.push(cluster);
    const abort = new AbortController();
    const snapshots = cluster.replicaGroups.membership(GROUP, abort.signal)[Symbol.asyncIterator]();
    const first = (await snapshots.next()).value;
    expect(first.version).toBe(2);
    expect(first.replicas).toHaveLength(12_000);
    expect(opened).toBe(2);
    expect(cluster.replicaGroups.membershipDiscards).toEqual({ broken: 1, interleaved: 0, oversized: 0 });
    abort.abort();
    await snapshots.return?.(undefined);
  });
});

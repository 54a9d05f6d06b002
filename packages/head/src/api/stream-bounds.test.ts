/** Bounds of the placement-group waits stream and the membership stream, sent in parts (docs/events.md#slow-readers). */
import { EventEmitter } from 'node:events';
import type { ServerDuplexStream, ServerWritableStream } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { isMusterError, MEMBERSHIP_PART_BYTES } from '@muster/common';
import { Membership, type PlacementGroup, type WaitPlacementGroupsReply, type WaitPlacementGroupsRequest } from '@muster/proto';
import { serveWaits } from './placement-service.js';

/** A duplex call whose client sends when told and reads nothing: `write` is false past `highWaterMark`. */
class StalledCall extends EventEmitter {
  readonly written: WaitPlacementGroupsReply[] = [];
  constructor(private readonly highWaterMark: number) {
    super();
  }
  write(m: WaitPlacementGroupsReply): boolean {
    this.written.push(m);
    return this.written.length < this.highWaterMark;
  }
  end(): void {}
  ask(tag: number): void {
    this.emit('data', { id: `pg-${tag}`, timeoutMs: 1_000, tag } as WaitPlacementGroupsRequest);
  }
}

const asCall = (c: StalledCall) => c as unknown as ServerDuplexStream<WaitPlacementGroupsRequest, WaitPlacementGroupsReply>;
const settled = () => new Promise((r) => setImmediate(r));

describe('WaitPlacementGroups bounds', () => {
  it('refuses a wait beyond the open-wait limit by name, and answers the rest', async () => {
    const call = new StalledCall(1_000);
    const never = { wait: () => new Promise<PlacementGroup>(() => {}) };
    void serveWaits(asCall(call), never, 3);
    for (let tag = 1; tag <= 5; tag++) call.ask(tag);
    await settled();
    expect(call.written.map((r) => [r.tag, r.errorCode])).toEqual([
      [4, 'MUSTER_RESOURCE_EXHAUSTED'],
      [5, 'MUSTER_RESOURCE_EXHAUSTED'],
    ]);
    expect(call.written[0]!.errorMessage).toMatch(/more than 3 waits open on one stream/);
    call.emit('cancelled');
  });

  it('cuts a client that keeps asking without reading its answers; what it holds stays under the limit', async () => {
    const call = new StalledCall(2);
    const at = { wait: async () => ({}) as PlacementGroup };
    const served = serveWaits(asCall(call), at, 4).catch((e: unknown) => e);
    for (let tag = 1; tag <= 20; tag++) {
      call.ask(tag);
      await settled();
    }
    const err = await served;
    expect(isMusterError(err) && err.code).toBe('MUSTER_CONSUMER_TOO_SLOW');
    expect(call.written).toHaveLength(2); // the transport's share; at most 4 more waited in the head
  });
});

/**
 * A WatchMembership call on group g whose transport is always full (one message per 'drain'),
 * served by the replica service over `rgs`' feed.
 */
async function watchMembership<T>(rgs: { watch(): AsyncIterable<unknown> }) {
  const { replicaService } = await import('./replica-service.js');
  const ctx = { token: 't', rpcCount: { add() {} }, rpcLatency: { record() {} } };
  const call = Object.assign(new EventEmitter(), {
    request: { group: 'g' },
    metadata: { get: () => ['Bearer t'] },
    getAuthContext: () => ({}),
    getPath: () => '/muster.v1.ReplicaGroupService/WatchMembership',
    written: [] as T[],
    write(m: T) {
      this.written.push(m);
      return false;
    },
    end() {},
    /** What the handler failed the call with, if it did. */
    errors: [] as unknown[],
  });
  call.on('error', (e) => call.errors.push(e));
  replicaService(ctx as never, rgs as never).watchMembership(call as unknown as ServerWritableStream<never, never>);
  return call;
}

// Membership is paced, not cut: the handler sends the next snapshot only once the transport took the last.
describe('WatchMembership pacing', () => {
  it('pulls the next snapshot from the feed (which keeps only the newest) only once the transport took the last', async () => {
    const snapshots = Array.from({ length: 50 }, (_, i) => ({ group: 'g', version: i + 1, replicas: [], revisionWeights: {} }));
    let pulled = 0;
    const rgs = {
      async *watch() {
        for (const s of snapshots) {
          pulled++;
          yield s;
        }
        await new Promise(() => {});
      },
    };
    const call = await watchMembership<unknown>(rgs);
    await settled();
    await settled();
    expect(call.written).toHaveLength(1);
    expect(pulled).toBe(1); // the feed was not drained into a buffer
    call.emit('drain');
    await settled();
    expect(call.written).toHaveLength(2);
    call.emit('cancelled');
  });

  it('sends a large snapshot in parts back to back, never cut for them, and only then the next (newest) version', async () => {
    const snapshot = (version: number): Membership => ({
      group: 'g',
      version,
      replicas: Array.from({ length: 6_000 }, (_, i) => ({ replicaId: `r-${i.toString(16).padStart(8, '0')}`, revision: 'abcdef0123', subject: `${'p'.repeat(64)}.rg.g.r-${i}` })),
      revisionWeights: {},
      maxInFlightPerReplica: 32,
      overflow: undefined,
      routing: undefined,
      more: false,
    });
    // The feed keeps only the newest: while the reader is behind, versions 2 and 3 come and only 3 is kept.
    let latest: Membership | undefined = snapshot(1);
    let wake: (() => void) | undefined;
    const pulled: number[] = [];
    const rgs = {
      async *watch() {
        for (;;) {
          while (!latest) await new Promise<void>((r) => (wake = r));
          const m: Membership = latest;
          latest = undefined;
          pulled.push(m.version);
          yield m;
        }
      },
    };
    const call = await watchMembership<Membership>(rgs);
    await settled();
    expect(call.written).toHaveLength(1);
    expect(call.written[0]!.more).toBe(true);
    latest = snapshot(2);
    latest = snapshot(3);
    wake?.();
    for (let i = 0; i < 20 && call.written.filter((m) => m.version === 3).at(-1)?.more !== false; i++) {
      call.emit('drain');
      await settled();
    }
    expect(call.errors).toEqual([]); // never cut: the bound holds one snapshot's parts
    expect(pulled).toEqual([1, 3]);
    const versions = call.written.map((m) => m.version);
    const v1 = call.written.filter((m) => m.version === 1);
    expect(v1.length).toBeGreaterThan(1);
    expect(versions).toEqual([...v1.map(() => 1), ...versions.slice(v1.length).map(() => 3)]); // no interleaving
    for (const v of [1, 3]) {
      const mine = call.written.filter((m) => m.version === v);
      expect(mine.map((m) => m.more)).toEqual([...mine.slice(1).map(() => true), false]);
      expect(mine.flatMap((m) => m.replicas)).toEqual(snapshot(v).replicas);
      for (const m of mine) expect(Membership.encode(m).finish().length).toBeLessThanOrEqual(MEMBERSHIP_PART_BYTES);
    }
    call.emit('cancelled');
  });
});

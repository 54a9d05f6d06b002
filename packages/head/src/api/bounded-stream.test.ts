import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerWritableStream } from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { isMusterError } from '@muster/common';
import { createLogger } from '@muster/common/log';
import type { ClusterEvent, WatchEventsRequest } from '@muster/proto';
import { EventLog } from '../events/event-log.js';
import { EmbeddedStore } from '../state/embedded.js';
import { LEADER_KEY, StateWriter, encodeLeaderRecord } from '../state/fence.js';
import { BoundedStream } from './bounded-stream.js';
import { watchEvents } from './cluster-service.js';

/**
 * A server stream whose client reads only when told: `write` returns false
 * once `highWaterMark` messages wait (as grpc-js does), 'drain' follows a read.
 */
class SlowCall<T> extends EventEmitter {
  readonly unread: T[] = [];
  readonly read: T[] = [];
  maxUnread = 0;
  constructor(readonly request: WatchEventsRequest, private readonly highWaterMark = 8) {
    super();
  }
  write(m: T): boolean {
    this.unread.push(m);
    this.maxUnread = Math.max(this.maxUnread, this.unread.length);
    return this.unread.length < this.highWaterMark;
  }
  take(n = Infinity): T[] {
    const full = this.unread.length >= this.highWaterMark;
    const got = this.unread.splice(0, n);
    this.read.push(...got);
    if (full && this.unread.length < this.highWaterMark) this.emit('drain');
    return got;
  }
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function eventLog() {
  const dir = await mkdtemp(join(tmpdir(), 'muster-bounded-'));
  const store = await EmbeddedStore.open(dir);
  const { revision } = await store.put(LEADER_KEY, encodeLeaderRecord({ headId: 'me', address: '127.0.0.1:1', sinceMs: 0 }));
  const events = new EventLog(new StateWriter(store, 'me', revision), createLogger('test', { level: 'silent' }), { retention: 10_000, maxAgeMs: 86_400_000, subjectPrefix: 'muster' });
  await events.load();
  cleanups.push(async () => {
    events.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  return events;
}

const request = (r: Partial<WatchEventsRequest> = {}): WatchEventsRequest => ({ replay: false, afterId: '', kinds: [], markReplayEnd: true, ...r });
const asCall = (c: SlowCall<ClusterEvent>) => c as unknown as ServerWritableStream<WatchEventsRequest, ClusterEvent>;

describe('BoundedStream', () => {
  it('writes while the transport takes them, queues up to maxQueued after, flushes on drain, then cuts', async () => {
    const call = new SlowCall<number>(request(), 2);
    const out = new BoundedStream<number>(call, { what: 'numbers', maxQueued: 3, idOf: String });
    for (let i = 0; i < 5; i++) out.send(i); // 2 to the transport, 3 queued
    expect(call.unread).toEqual([0, 1]);
    expect(out.queued).toBe(3);
    call.take(); // drain: the queue moves on until the transport is full again
    expect(call.unread).toEqual([2, 3]);
    expect(out.queued).toBe(1);
    out.send(5);
    out.send(6);
    expect(out.queued).toBe(3);
    out.send(7); // one more than it may hold
    const err = await out.cut.catch((e: unknown) => e);
    expect(isMusterError(err) && err.code).toBe('MUSTER_CONSUMER_TOO_SLOW');
    expect((err as Error).message).toMatch(/consumer too slow: numbers fell more than 3 messages behind; resume from id 3/);
    expect(out.queued).toBe(0); // a cut consumer holds nothing
  });
});

describe('WatchEvents back-pressure', () => {
  it('cuts a consumer that stops reading, holding at most maxQueued events for it; resuming from its last id loses and repeats none', async () => {
    const events = await eventLog();
    const slow = new SlowCall<ClusterEvent>(request());
    const served = watchEvents(events, asCall(slow), 16).catch((e: unknown) => e);
    await waitForMarker(slow);
    const written: ClusterEvent[] = [];
    for (let i = 0; i < 100; i++) written.push(await events.append('test.event', { message: `event ${i}` }));
    const err = await served;
    expect(isMusterError(err) && err.code).toBe('MUSTER_CONSUMER_TOO_SLOW');
    // The transport was never handed more than its own high-water mark: the rest waited (≤ 16) in the head, then was dropped.
    expect(slow.maxUnread).toBe(8);
    const lastHandedOn = slow.unread.at(-1)!.id;
    expect((err as Error).message).toContain(`resume from id ${lastHandedOn}`);

    // The client reads what reached it, then opens the stream again after its last id.
    const got = slow.take().filter((e) => !e.replayEnd);
    const again = new SlowCall<ClusterEvent>(request({ afterId: got.at(-1)!.id }), 1_000);
    const resumed = watchEvents(events, asCall(again), 16);
    await waitForMarker(again);
    again.emit('cancelled');
    await resumed;
    const all = [...got, ...again.take().filter((e) => !e.replayEnd)].map((e) => e.id);
    expect(all).toEqual(written.map((e) => e.id));
  });

  it('cuts a consumer whose replay is outrun by more than maxQueued live events', async () => {
    const events = await eventLog();
    for (let i = 0; i < 50; i++) await events.append('old.event', { message: `old ${i}` });
    const slow = new SlowCall<ClusterEvent>(request({ replay: true }), 4);
    const served = watchEvents(events, asCall(slow), 8).catch((e: unknown) => e);
    // The replay waits for this reader after its first page; live events pile up meanwhile.
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 20; i++) await events.append('live.event', { message: `live ${i}` });
    const err = await served;
    expect(isMusterError(err) && err.code).toBe('MUSTER_CONSUMER_TOO_SLOW');
  });
});

async function waitForMarker(call: SlowCall<ClusterEvent>): Promise<void> {
  for (let i = 0; i < 1_000 && !call.unread.some((e) => e.replayEnd); i++) await new Promise((r) => setImmediate(r));
  expect(call.unread.some((e) => e.replayEnd)).toBe(true);
}
